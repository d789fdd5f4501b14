"""Forget specifications, the train/val/test/forget split, and its hash.

Split rules (docs/data.md, "Splits (`make_task`)", which also says why they are chosen):

* validation: per class in order, ``floor(0.1·n_c)`` positions of the training pool drawn with one
  ``numpy.random.RandomState(val_seed)``; train = the rest of the pool in ascending order;
* ``random:F`` (a fraction, written with a decimal point, ``0 < F < 1``), ``random:N`` (a count N >= 2) or
  ``random:count=N`` (any count; ``random:1`` is refused as ambiguous): forget positions =
  ``RandomState(seed − 1).choice(n_train, n_f, replace=False)`` with ``n_f = round(F·n_train)``; D_f keeps
  train order, D_r is the rest in train order;
* ``class:K[,K...]``: D_f = every training image of those classes; the test set drops them;
* ``indices:FILE.npy``: a 1-D integer array of the dataset's own training-sample numbers (0-based, as the
  dataset's files number them), e.g. a deletion request; a number that fell into the validation split is an
  error (the original model never trained on it).

The split hash is SHA-256 over a header (dataset, forget spec, val seed, version) and the little-endian int64
arrays of train, val, test and forget indices, in that order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnlab.data.datasets import ImageDataset, load_dataset, stratified_pick
from unlearnlab.data.inputs import as_tensor_data
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import default_device

SPLIT_VERSION = 1
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class ForgetSpec:
    """A parsed forget specification: ``kind`` in {random, class, indices} and its argument."""

    kind: str
    fraction: float | None = None
    count: int | None = None
    classes: tuple[int, ...] = ()
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> ForgetSpec:
        kind, sep, arg = text.partition(":")
        fix = ("Use 'random:0.1' (a fraction), 'random:130' (a count; 'random:count=1' for one sample), 'class:3' "
               "(or 'class:3,5') or 'indices:FILE.npy'.")
        if not sep or not arg:
            raise UnlearnlabError(f"Forget spec {text!r} has no argument. {fix}")
        if kind == "random":
            return cls._random(text, arg, fix)
        if kind == "class":
            try:
                classes = tuple(sorted({int(c) for c in arg.split(",")}))
            except ValueError:
                raise UnlearnlabError(f"Class list {arg!r} must be integers separated by commas. {fix}") from None
            return cls("class", classes=classes)
        if kind == "indices":
            return cls("indices", path=arg)
        raise UnlearnlabError(f"Unknown forget kind {kind!r} in {text!r}. {fix}")

    @classmethod
    def _random(cls, text: str, arg: str, fix: str) -> ForgetSpec:
        """``random:0.1`` (a fraction: written with a decimal point, in (0, 1)), ``random:130`` (a count of at
        least 2) or ``random:count=N`` (any count, also 1); ``random:1`` is ambiguous and refused."""
        if arg.startswith("count="):
            try:
                count = int(arg.removeprefix("count="))
            except ValueError:
                raise UnlearnlabError(f"Forget count {arg!r} is not an integer. {fix}") from None
            if count < 1:
                raise UnlearnlabError(f"Forget count {count} must be at least 1. {fix}")
            return cls("random", count=count)
        try:
            value = float(arg)
        except ValueError:
            raise UnlearnlabError(f"Forget fraction {arg!r} is not a number. {fix}") from None
        if arg.strip().lstrip("+").isdigit():  # written as an integer: a count
            if int(arg) == 1:
                raise UnlearnlabError(
                    f"Forget spec {text!r} is ambiguous: one sample, or 100 % of the training set? Write "
                    "'random:count=1' to forget one random sample, or a fraction with a decimal point below 1 "
                    "(e.g. 'random:0.1' for 10 %).")
            if int(arg) >= 2:
                return cls("random", count=int(arg))
        if not 0 < value < 1:
            raise UnlearnlabError(
                f"Forget fraction {value} is outside (0, 1): give a fraction such as 0.1, or a whole "
                "count of samples such as 130 (or random:count=1 for a single sample)."
            )
        return cls("random", fraction=value)

    def __str__(self) -> str:
        if self.kind == "given":
            return "given"
        if self.kind == "random":
            if self.fraction is not None:
                return f"random:{self.fraction}"
            return f"random:{self.count}" if self.count != 1 else "random:count=1"
        if self.kind == "class":
            return "class:" + ",".join(map(str, self.classes))
        return f"indices:{self.path}"


@dataclass
class ForgetTask:
    """D, D_f, D_r, D_val, D_test of one forgetting problem, resident on ``device``.

    ``train`` is D = D_f ∪ D_r in train order; ``forget_positions`` index into it. ``*.index`` tensors hold
    train-list positions (val/test rows hold −1), so a loader can be checked for forget positions.
    """

    dataset: str
    forget_spec: ForgetSpec
    seed: int
    val_seed: int
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    train: TensorData
    forget: TensorData
    retain: TensorData
    val: TensorData
    test: TensorData
    forget_positions: np.ndarray
    split_hash: str
    data_hash: str
    forgotten_classes: tuple[int, ...] = field(default_factory=tuple)
    family: str = "classification"

    @property
    def device(self) -> torch.device:
        return self.train.device

    def forget_histogram(self) -> dict[int, int]:
        """Class → number of samples in D_f."""
        classes, counts = np.unique(self.forget.y.cpu().numpy(), return_counts=True)
        return {int(c): int(n) for c, n in zip(classes, counts)}

    def describe(self) -> str:
        hist = ", ".join(f"{c}: {n}" for c, n in self.forget_histogram().items())
        return (
            f"{self.dataset} · forget {self.forget_spec} · seed {self.seed} · |D_f|={len(self.forget)} "
            f"(classes {{{hist}}}) |D_r|={len(self.retain)} |D_val|={len(self.val)} |D_test|={len(self.test)} · "
            f"split {self.split_hash[:8]}"
        )


def _hash(header: str, *arrays: np.ndarray) -> str:
    h = hashlib.sha256(header.encode())
    for a in arrays:
        h.update(b"|")
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return h.hexdigest()


def _forget_positions(spec: ForgetSpec, y_train: np.ndarray, num_classes: int, seed: int,
                      numbers: np.ndarray, val_numbers: np.ndarray) -> np.ndarray:
    """Positions in the train list of D_f; ``numbers`` are the train list's own sample numbers (indices spec)."""
    n = len(y_train)
    if spec.kind == "random":
        n_f = spec.count if spec.count is not None else round(spec.fraction * n)
        if n_f < 1:
            raise UnlearnlabError(
                f"The forget set is empty: {spec} of {n} training samples rounds to 0. "
                "Use a larger fraction or a count >= 1."
            )
        if n_f >= n:
            raise UnlearnlabError(
                f"The forget set ({n_f}) would be the whole training set ({n}): nothing would be retained. "
                "Use a fraction below 1."
            )
        return np.sort(np.random.RandomState(seed - 1).choice(n, n_f, replace=False))
    if spec.kind == "class":
        present = set(np.unique(y_train).tolist())
        bad = [c for c in spec.classes if c not in present or not 0 <= c < num_classes]
        if bad:
            raise UnlearnlabError(
                f"Class {bad} is not a class of this dataset (classes 0..{num_classes - 1}): "
                f"pick forget classes from that range, e.g. 'class:{min(present)}'."
            )
        pos = np.flatnonzero(np.isin(y_train, spec.classes))
        if len(pos) == n:
            raise UnlearnlabError("Forgetting these classes would remove every training sample: keep one class.")
        return pos
    idx = _load_indices(Path(spec.path), int(max(numbers.max(initial=-1), val_numbers.max(initial=-1))) + 1)
    in_val = idx[np.isin(idx, val_numbers)]
    if len(in_val):
        raise UnlearnlabError(
            f"{spec.path}: sample(s) {in_val[:5].tolist()} are in the validation split (val_seed), which the "
            "original model never trains on: there is nothing to forget there. Remove them from the file.")
    where = {int(v): i for i, v in enumerate(numbers)}
    missing = [int(i) for i in idx if int(i) not in where]
    if missing:
        raise UnlearnlabError(f"{spec.path}: sample number(s) {missing[:5]} are not training samples of this "
                              "dataset.")
    pos = np.sort(np.array([where[int(i)] for i in idx], dtype=np.int64))
    if len(pos) == n:
        raise UnlearnlabError(f"{spec.path} names every training sample: nothing would be retained.")
    return pos


def _load_indices(path: Path, n: int) -> np.ndarray:
    """The 1-D integer array in ``path`` (``.npy``), each in [0, n), no duplicates."""
    if not path.is_file():
        raise UnlearnlabError(f"Forget index file {path} does not exist: save one with numpy.save(path, idx).")
    if path.suffix not in (".npy", ".npz"):
        raise UnlearnlabError(f"Forget index file {path} is not a .npy file: save the indices with "
                              "numpy.save('forget.npy', idx).")
    try:
        idx = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UnlearnlabError(f"Forget index file {path} is not a readable NumPy .npy file ({err}): save the "
                              "indices with numpy.save(path, numpy.array([...]))).") from None
    if not isinstance(idx, np.ndarray):  # an .npz archive
        idx.close()
        raise UnlearnlabError(f"Forget index file {path} is an .npz archive: save one array with numpy.save(path, "
                              "idx) (a .npy file).")
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise UnlearnlabError(
            f"{path} holds a {idx.dtype} array of shape {idx.shape}: it must be a 1-D integer array of the "
            "dataset's training-sample numbers."
        )
    if len(idx) == 0:
        raise UnlearnlabError(f"{path} is empty: the forget set needs at least one index.")
    out = idx[(idx < 0) | (idx >= n)]
    if len(out):
        raise UnlearnlabError(
            f"{path} has {len(out)} index(es) outside [0, {n}) (e.g. {out[:3].tolist()}): indices are the "
            f"dataset's own training-sample numbers (0 … {n - 1})."
        )
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise UnlearnlabError(
            f"{path} repeats indices {uniq[counts > 1][:5].tolist()}: remove the duplicates "
            "(e.g. numpy.unique)."
        )
    return np.sort(idx.astype(np.int64))


@dataclass(frozen=True)
class Split:
    """The positions of one split (train-list positions for D_f and D_r) and its data and split hashes."""

    train: np.ndarray
    val: np.ndarray
    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    data_hash: str
    split_hash: str


def plan_split(ds: ImageDataset, spec: ForgetSpec, seed: int, val_seed: int = 1) -> Split:
    """The split of ``ds`` for ``spec`` and ``seed`` (module docstring), without building any tensor."""
    if int(seed) < 1:
        raise UnlearnlabError(f"Seeds are integers >= 1 (got {seed}); seed s samples with RandomState(s - 1).")
    y_pool = ds.y_train.numpy()
    val_pos = stratified_pick(y_pool, VAL_FRACTION, np.random.RandomState(val_seed))
    train_pos = np.setdiff1d(np.arange(len(y_pool)), val_pos)
    train_src = ds.train_index if ds.train_index is not None else np.arange(len(y_pool))
    forget_pos = _forget_positions(spec, y_pool[train_pos], ds.num_classes, seed, train_src[train_pos],
                                   train_src[val_pos])
    retain_pos = np.setdiff1d(np.arange(len(train_pos)), forget_pos)
    test_src = ds.test_index if ds.test_index is not None else np.arange(len(ds.y_test))
    test_keep = np.arange(len(ds.y_test))
    if spec.kind == "class":
        test_keep = np.flatnonzero(~np.isin(ds.y_test.numpy(), spec.classes))

    header = f"unlearnlab-split v{SPLIT_VERSION}|{ds.name}|val_seed={val_seed}"
    data_hash = _hash(header, train_src[train_pos], train_src[val_pos], test_src)
    split_hash = _hash(f"{header}|{spec}", train_src[train_pos], train_src[val_pos], test_src[test_keep], forget_pos)
    return Split(train_pos, val_pos, forget_pos, retain_pos, test_keep, data_hash, split_hash)


def make_task(
    dataset: str | ImageDataset | None = None,
    forget: Any = "random:0.1",
    seed: int = 1,
    val_seed: int = 1,
    device: torch.device | str | None = None,
    root: str | Path | None = None,
    *,
    retain: Any = None,
    test: Any = None,
    val: Any = None,
    num_classes: int | None = None,
) -> ForgetTask:
    """Build the forgetting task: split the dataset's training pool, choose D_f, move tensors to ``device``.

    With ``retain=`` and ``test=`` (and optionally ``val=``), ``forget`` is data, not a spec: the task is built
    from the user's own parts (:func:`task_from_arrays`).
    """
    if retain is not None or test is not None:
        if retain is None or test is None:
            raise UnlearnlabError("A task from your own data needs forget=, retain= and test= (val= is optional).")
        return task_from_arrays(forget, retain, test, val, num_classes=num_classes,
                                name=dataset if isinstance(dataset, str) else "user", device=device)
    if dataset is None:
        raise UnlearnlabError("make_task() needs a dataset name (e.g. 'digits'), or forget=, retain=, test= data.")
    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(dataset, root)
    spec = forget if isinstance(forget, ForgetSpec) else ForgetSpec.parse(forget)
    device = torch.device(device) if device is not None else default_device()
    parts = plan_split(ds, spec, seed, val_seed)
    train = TensorData.of(ds.x_train[parts.train], ds.y_train[parts.train], np.arange(len(parts.train))).to(device)
    return ForgetTask(
        dataset=ds.name,
        forget_spec=spec,
        seed=int(seed),
        val_seed=val_seed,
        num_classes=ds.num_classes,
        input_shape=ds.input_shape,
        mean=ds.mean,
        std=ds.std,
        augment=ds.augment,
        train=train,
        forget=train.subset(parts.forget),
        retain=train.subset(parts.retain),
        val=TensorData.of(ds.x_train[parts.val], ds.y_train[parts.val]).to(device),
        test=TensorData.of(ds.x_test[parts.test], ds.y_test[parts.test]).to(device),
        forget_positions=parts.forget,
        split_hash=parts.split_hash,
        data_hash=parts.data_hash,
        forgotten_classes=spec.classes,
    )


def task_from_arrays(forget: Any, retain: Any, test: Any, val: Any = None, *, num_classes: int | None = None,
                     name: str = "user", device: torch.device | str | None = None) -> ForgetTask:
    """A :class:`ForgetTask` from a user's own parts: ``forget``, ``retain``, ``test`` (and optionally ``val``) as
    ``(x, y)`` tensors/arrays, Datasets or DataLoaders. D = D_f followed by D_r; the split hash is a SHA-256 of the
    parts' contents, so two runs on the same arrays share cached models and rows."""
    device = torch.device(device) if device is not None else default_device()
    parts = {"forget": forget, "retain": retain, "test": test}
    data = {k: as_tensor_data(v, k, "cpu") for k, v in parts.items()}
    data["val"] = as_tensor_data(val, "val", "cpu") if val is not None else data["test"].subset(np.arange(0))
    shapes = {k: tuple(v.x.shape[1:]) for k, v in data.items() if len(v)}
    if len(set(shapes.values())) > 1:
        raise UnlearnlabError(f"The parts have different input shapes {shapes}: every part needs the same shape.")
    classes = int(max(int(v.y.max()) for v in data.values() if len(v))) + 1
    if num_classes is not None and num_classes < classes:
        raise UnlearnlabError(f"num_classes={num_classes} but the labels go up to {classes - 1}.")
    train = TensorData.of(torch.cat([data["forget"].x, data["retain"].x]), torch.cat([data["forget"].y,
                          data["retain"].y]), np.arange(len(data["forget"]) + len(data["retain"])))
    n_f = len(data["forget"])
    digest = hashlib.sha256(f"unlearnlab-arrays v{SPLIT_VERSION}|{name}".encode())
    for key in ("forget", "retain", "val", "test"):
        digest.update(key.encode())
        digest.update(data[key].x.contiguous().numpy().tobytes())
        digest.update(data[key].y.numpy().astype("<i8").tobytes())
    split = digest.hexdigest()
    train = train.to(device)
    return ForgetTask(
        dataset=name, forget_spec=ForgetSpec("given"), seed=1, val_seed=0, num_classes=num_classes or classes,
        input_shape=shapes["retain"], mean=(0.0,), std=(1.0,), augment=False, train=train,
        forget=train.subset(np.arange(n_f)), retain=train.subset(np.arange(n_f, len(train))),
        val=data["val"].to(device), test=data["test"].to(device), forget_positions=np.arange(n_f), split_hash=split,
        data_hash=split)
