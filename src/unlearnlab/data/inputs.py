"""Turn a user's classification data into batch sources.

Accepted: a ``(x, y)`` pair of tensors/arrays, a ``TensorData``, any map-style ``Dataset`` yielding ``(x, y)``, a
``DataLoader`` yielding ``(x, y)`` batches (read once and held on the device, so results equal those of the same
tensors), or a :class:`~unlearnlab.data.tensors.StreamData` wrapping a loader for data that does not fit in
memory (read as it goes, in the loader's order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from unlearnlab.data.tensors import Source, StreamData, TensorData
from unlearnlab.errors import UnlearnlabError


def as_source(obj: Any, name: str, device: torch.device | str) -> Source:
    """``obj`` as a source on ``device``; ``name`` ("forget", "retain", ...) labels errors."""
    if isinstance(obj, StreamData):
        if len(obj) == 0:
            raise UnlearnlabError(f"The {name} stream is empty: unlearning needs at least one {name} sample.")
        return obj.to(device)
    return as_tensor_data(obj, name, device)


def as_tensor_data(obj: Any, name: str, device: torch.device | str) -> TensorData:
    """Materialise ``obj`` as :class:`TensorData` on ``device``."""
    if isinstance(obj, TensorData):
        data = obj
    elif isinstance(obj, (tuple, list)) and len(obj) == 2:
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in obj)
        data = _checked(x, y, name)
    elif isinstance(obj, DataLoader):
        xs, ys = zip(*[(b[0], b[1]) for b in obj]) if len(obj) else ((), ())
        if not xs:
            raise UnlearnlabError(f"The {name} DataLoader yields no batches: the {name} set is empty.")
        data = _checked(torch.cat(xs), torch.cat([torch.as_tensor(y) for y in ys]), name)
    elif isinstance(obj, Dataset):
        n = len(obj)  # type: ignore[arg-type]
        if n == 0:
            raise UnlearnlabError(f"The {name} dataset is empty.")
        items = [obj[i] for i in range(n)]
        data = _checked(torch.stack([torch.as_tensor(i[0]) for i in items]),
                        torch.as_tensor([int(i[1]) for i in items]), name)
    else:
        raise UnlearnlabError(
            f"{name}= got a {type(obj).__name__}: pass a (x, y) pair of tensors, a Dataset, a DataLoader or "
            "unlearnlab.data.StreamData(loader)."
        )
    if len(data) == 0:
        raise UnlearnlabError(f"The {name} set is empty: unlearning needs at least one {name} sample.")
    return data.to(device)


def _checked(x: torch.Tensor, y: torch.Tensor, name: str) -> TensorData:
    if y.ndim != 1:
        raise UnlearnlabError(f"{name} labels have shape {tuple(y.shape)}: pass one integer class label per sample.")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise UnlearnlabError(f"{name} labels are not integers: pass class indices, not one-hot or soft labels.")
    if len(x) != len(y):
        raise UnlearnlabError(f"{name} has {len(x)} inputs but {len(y)} labels: pass one label per input.")
    return TensorData.of(x.float() if not x.is_floating_point() else x, y.long())


def check_labels(data: TensorData, num_classes: int, name: str) -> None:
    if len(data) and (int(data.y.min()) < 0 or int(data.y.max()) >= num_classes):
        raise UnlearnlabError(
            f"{name} labels span [{int(data.y.min())}, {int(data.y.max())}] but the model has {num_classes} "
            f"outputs: labels must lie in [0, {num_classes - 1}]."
        )


def overlapping_rows(a: TensorData, b: TensorData, field: str = "x") -> int:
    """How many rows of ``a`` have a row of identical content in ``b`` (compared on ``field``).

    A random projection fingerprints each row (float64), rows sharing a fingerprint are compared exactly, so the
    cost is two matrix-vector products plus the comparison of the few candidates.
    """
    xa, xb = a.fields[field], b.fields[field]
    if len(xa) == 0 or len(xb) == 0 or xa.shape[1:] != xb.shape[1:]:
        return 0
    fa, fb = xa.reshape(len(xa), -1).double(), xb.reshape(len(xb), -1).double()
    direction = torch.randn(fa.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pa, pb = (fa @ direction.to(fa.device)).cpu().numpy(), (fb @ direction.to(fb.device)).cpu().numpy()
    candidates = np.flatnonzero(np.isin(pa, pb))
    if len(candidates) == 0:
        return 0
    where = {}
    for j, v in enumerate(pb):
        where.setdefault(v, []).append(j)
    return sum(1 for i in candidates if any(torch.equal(fa[i], fb[j]) for j in where[pa[i]]))
