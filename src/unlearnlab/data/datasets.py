"""Dataset registry.

A dataset is loaded as an :class:`ImageDataset`: a training pool and a test set as float32 tensors in
``[0, 1]`` with shape ``[N, C, H, W]``, integer labels, and the normalisation constants that the models
apply *inside* themselves (transforms never normalise; docs/data.md, "Pixel space and normalisation").

``digits`` (scikit-learn's 1,797 8×8 handwritten digits) is embedded and needs no files. Its test set is
carved once, independent of every seed (docs/data.md, "`digits`"): per class in order, ``floor(0.2·n_c)``
indices drawn with one ``numpy.random.RandomState(0)`` (355 images); the remaining 1,442 images, in
ascending index, form the pool from which :func:`unlearnlab.data.forget.make_task` draws the validation set.
The standard datasets read their official on-disk formats from a local root (see
:mod:`unlearnlab.data.formats`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearnlab.errors import unknown_name


@dataclass(frozen=True)
class ImageDataset:
    """A training pool and a test set in memory.

    ``x_*`` are float32 ``[N, C, H, W]`` in ``[0, 1]``; ``y_*`` int64. ``train_index`` / ``test_index``
    give each row's index in the source's own numbering (used by split hashes). ``augment`` says whether the
    standard training augmentation (random crop with padding 4 + horizontal flip) applies to this dataset.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


Loader = Callable[[Path | None, bool], ImageDataset]
_REGISTRY: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root, download) -> ImageDataset`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = fn
        return fn

    return deco


def list_datasets(pattern: str | None = None) -> list[str]:
    """Registered dataset names, optionally filtered by a shell-style pattern."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


_CACHE: dict[tuple[str, str | None], ImageDataset] = {}


def load_dataset(name: str, root: str | Path | None = None, download: bool = False) -> ImageDataset:
    """Load a registered dataset (memoised per process)."""
    if name not in _REGISTRY:
        raise unknown_name("dataset", name, _REGISTRY, "unlearnlab datasets")
    key = (name, None if root is None else str(root))
    if key not in _CACHE:
        _CACHE[key] = _REGISTRY[name](None if root is None else Path(root), download)
    return _CACHE[key]


def stratified_pick(labels: np.ndarray, fraction: float, rng: np.random.RandomState) -> np.ndarray:
    """Per class ``c`` in increasing order, draw ``floor(fraction·n_c)`` positions without replacement.

    One generator is consumed class by class (``rng.choice(idx_c, k, replace=False)``), as the SalUn data
    code draws its validation set. Returns the chosen positions sorted ascending.
    """
    picked = []
    for c in np.unique(labels):
        idx_c = np.flatnonzero(labels == c)
        k = int(np.floor(fraction * len(idx_c)))
        picked.append(rng.choice(idx_c, k, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


#: one scalar mean and std over all 1,797 digits images (docs/data.md, "Pixel space and normalisation")
DIGITS_MEAN = 0.30526
DIGITS_STD = 0.37605


@register_dataset("digits")
def _load_digits(root: Path | None = None, download: bool = False) -> ImageDataset:
    """scikit-learn's bundled 8×8 digits, pixels/16, the fixed test split of docs/data.md ("`digits`")."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    test = stratified_pick(y, 0.2, np.random.RandomState(0))
    train = np.setdiff1d(np.arange(len(y)), test)
    return ImageDataset(
        name="digits",
        x_train=torch.from_numpy(x[train]),
        y_train=torch.from_numpy(y[train]),
        x_test=torch.from_numpy(x[test]),
        y_test=torch.from_numpy(y[test]),
        num_classes=10,
        mean=(DIGITS_MEAN,),
        std=(DIGITS_STD,),
        augment=False,
        train_index=train,
        test_index=test,
    )
