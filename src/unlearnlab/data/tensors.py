"""Batch sources: device-resident tensors (batches are index gathers) and streamed DataLoaders.

A **batch** is a ``dict`` of tensors with one leading batch dimension: ``{"x", "y"}`` for classification,
``{"input_ids", "attention_mask", "labels"}`` for a language model, images and classes for a diffusion model.
A **source** yields such batches: :class:`TensorData` holds every field in memory (on the compute device) and
gathers batches by index; :class:`StreamData` reads a user's ``DataLoader`` as it goes, for data that does not fit
in memory. Rules and objectives see only batches (docs/architecture.md, "Task families and batches").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Batch = dict[str, torch.Tensor]
#: a training transform: ``(batch, generator) -> batch`` (e.g. random crop + flip of the images)
Transform = Callable[[Batch, "torch.Generator | None"], Batch]


class TensorData:
    """Equal-length tensors under names, plus each row's training-set position ``index`` (``-1`` if none).

    ``TensorData(x, y, index)`` is the classification form (fields ``x`` and ``y``); ``TensorData.of_fields``
    builds any other. ``index`` lets tests assert that a loader never yields a forget position.
    """

    __slots__ = ("fields", "index")

    def __init__(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 index: torch.Tensor | None = None, *, fields: Mapping[str, torch.Tensor] | None = None):
        if fields is None:
            fields = {"x": x, "y": y}
        elif x is not None or y is not None:
            raise ValueError("Give x/y or fields=, not both.")
        sizes = {name: len(t) for name, t in fields.items()}
        if not sizes:
            raise ValueError("A TensorData needs at least one field.")
        if len(set(sizes.values())) != 1:
            raise ValueError(f"Fields have different lengths {sizes}: every field needs one row per sample.")
        n = next(iter(sizes.values()))
        self.fields: dict[str, torch.Tensor] = dict(fields)
        self.index = torch.full((n,), -1, dtype=torch.long) if index is None else index

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, index: np.ndarray | torch.Tensor | None = None) -> TensorData:
        """Classification data: inputs ``x`` and integer labels ``y`` (cast to int64)."""
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}: pass one label per input.")
        idx = None if index is None else torch.as_tensor(np.asarray(index), dtype=torch.long)
        return cls(x, y.long(), idx)

    @classmethod
    def of_fields(cls, fields: Mapping[str, torch.Tensor], index: np.ndarray | torch.Tensor | None = None
                  ) -> TensorData:
        idx = None if index is None else torch.as_tensor(np.asarray(index), dtype=torch.long)
        return cls(fields=fields, index=idx)

    @property
    def x(self) -> torch.Tensor:
        return self._field("x")

    @property
    def y(self) -> torch.Tensor:
        return self._field("y")

    def _field(self, name: str) -> torch.Tensor:
        if name not in self.fields:
            raise KeyError(f"This data has no field {name!r} (fields: {', '.join(self.fields)}).")
        return self.fields[name]

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.fields.items())
        return f"TensorData({shapes})"

    def replace(self, **fields: torch.Tensor) -> TensorData:
        """The same rows with some fields replaced (e.g. relabelled ``y``)."""
        return TensorData(fields={**self.fields, **fields}, index=self.index)

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(fields={k: v.to(device) for k, v in self.fields.items()}, index=self.index.to(device))

    def subset(self, positions: np.ndarray | torch.Tensor) -> TensorData:
        pos = torch.as_tensor(np.asarray(positions), dtype=torch.long, device=self.device)
        return TensorData(fields={k: v[pos] for k, v in self.fields.items()},
                          index=self.index[pos.to(self.index.device)])

    def gather(self, pos: torch.Tensor) -> Batch:
        """The batch of rows ``pos`` (positions on this data's device)."""
        return {k: v[pos] for k, v in self.fields.items()}

    @property
    def device(self) -> torch.device:
        return next(iter(self.fields.values())).device

    @property
    def in_memory(self) -> bool:
        return True

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                transform: Transform | None = None) -> Iterator[Batch]:
        """One pass in batches of ``batch_size`` (last partial batch kept), shuffled with ``generator``."""
        for pos in batch_positions(len(self), batch_size, generator, shuffle, self.device):
            batch = self.gather(pos)
            yield batch if transform is None else transform(batch, generator)


class StreamData:
    """A user's ``DataLoader`` read as it goes (never materialised), re-chunked to the requested batch size.

    The loader decides the order (its own sampler and generator): ``shuffle`` and the run's generator do not
    apply, so a run on streamed data is reproducible only if the loader is. Batches may be ``(x, y)`` pairs or
    dicts of tensors; they are moved to ``device``. ``len()`` is the number of samples of the loader's dataset.
    """

    def __init__(self, loader: Any, device: torch.device | str = "cpu", size: int | None = None):
        self.loader = loader
        self.device = torch.device(device)
        try:
            self._len = int(size) if size is not None else len(loader.dataset)
        except TypeError as err:
            raise ValueError("A streamed DataLoader needs a dataset with len(), or pass size=.") from err

    def __len__(self) -> int:
        return self._len

    @property
    def in_memory(self) -> bool:
        return False

    def to(self, device: torch.device | str) -> StreamData:
        return StreamData(self.loader, device, self._len)

    def _raw(self) -> Iterator[Batch]:
        for item in self.loader:
            if isinstance(item, Mapping):
                batch = dict(item)
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                batch = {"x": item[0], "y": item[1]}
            else:
                raise ValueError(f"A streamed DataLoader yielded a {type(item).__name__}: yield (x, y) pairs or "
                                 "dicts of tensors.")
            yield {k: torch.as_tensor(v).to(self.device, non_blocking=True) for k, v in batch.items()}

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                transform: Transform | None = None) -> Iterator[Batch]:
        """One pass over the loader in batches of exactly ``batch_size`` (the last one may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        pending: list[Batch] = []
        held = 0
        for batch in self._raw():
            pending.append(batch)
            held += len(next(iter(batch.values())))
            while held >= batch_size:
                merged = _concat(pending)
                out = {k: v[:batch_size] for k, v in merged.items()}
                rest = {k: v[batch_size:] for k, v in merged.items()}
                held -= batch_size
                pending = [rest] if held else []
                yield out if transform is None else transform(out, generator)
        if held:
            merged = _concat(pending)
            yield merged if transform is None else transform(merged, generator)


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


Source = TensorData | StreamData


def batch_positions(
    n: int, batch_size: int, generator: torch.Generator | None, shuffle: bool = True,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Split ``range(n)`` into batches of ``batch_size`` (last partial batch kept), shuffled if asked.

    The order is drawn on the CPU (the generator's device) and moved to ``device`` once per pass, not per batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if device is not None:
        order = order.to(device)
    return list(order.split(batch_size))


def iterate(data: Source, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
            transform: Transform | None = None) -> Iterator[Batch]:
    """One pass over ``data`` (see :meth:`TensorData.batches`)."""
    return data.batches(batch_size, generator, shuffle, transform)


def cycle(data: Source, batch_size: int, generator: torch.Generator | None,
          transform: Transform | None = None) -> Iterator[Batch]:
    """Endless passes over ``data``, reshuffled per pass (the forget iterator NegGrad+ pairs with)."""
    while True:
        yield from data.batches(batch_size, generator, True, transform)


def batch_size_of(batch: Batch) -> int:
    """The number of samples in ``batch`` (length of its first field)."""
    return len(next(iter(batch.values())))


def crop_flip(x: torch.Tensor, generator: torch.Generator | None, padding: int = 4) -> torch.Tensor:
    """RandomCrop(H, padding) + RandomHorizontalFlip on a batch ``[B, C, H, W]``, zero padding.

    The offsets and flips are drawn on the CPU generator and applied with one gather, so the cost is a few
    tensor ops per batch whatever the batch size.
    """
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_r = rows[:, None, :, None].expand(b, x.shape[1], h, padded.shape[3])
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, idx_c)


def augment_images(batch: Batch, generator: torch.Generator | None) -> Batch:
    """The standard image training transform: :func:`crop_flip` of ``batch["x"]``."""
    return {**batch, "x": crop_flip(batch["x"], generator)}
