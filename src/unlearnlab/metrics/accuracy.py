"""Softmax probabilities of a model and the accuracy metrics built on them (docs/metrics.md).

UA = 100 − Acc(D_f), RA = Acc(D_r), TA = Acc(D_test), FA = Acc(D_f), all in %, computed from the
eval-mode model on eval-transformed inputs. Accuracy is top-1: argmax over every output column (C
columns, or C + 1 for an unpruned Boundary-Expanding model).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError

ArrayLike = np.ndarray | torch.Tensor


def as_numpy(values: ArrayLike, dtype: type | None = None) -> np.ndarray:
    """A NumPy view/copy of a NumPy array or a (possibly CUDA, grad-requiring) torch tensor."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def check_probs_labels(probs: np.ndarray, labels: np.ndarray, what: str = "probs") -> None:
    """Raise if ``probs`` is not [N, C] with N ≥ 1 or ``labels`` is not N integers in [0, C)."""
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise UnlearnlabError(f"{what} must be a non-empty [N, C] array, got shape {probs.shape}.")
    if labels.shape != (probs.shape[0],):
        raise UnlearnlabError(f"labels for {what} must have shape ({probs.shape[0]},), got {labels.shape}.")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise UnlearnlabError(
            f"labels for {what} must lie in [0, {probs.shape[1]}), got [{labels.min()}, {labels.max()}]."
        )


def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Softmax probabilities p(x) = softmax(f(x)) of ``model`` on ``x``, shape [N, C], float32 on CPU.

    The model runs in eval mode under ``torch.no_grad()`` in batches ``x[i:i + batch_size]`` (``x`` must
    already be on the model's device); logits are cast to float32 before the softmax. Every submodule's
    train/eval flag is restored afterwards, so a model with, e.g., frozen BatchNorm layers keeps them frozen.
    """
    if len(x) == 0:
        raise UnlearnlabError("predict_probs got an empty input; pass at least one sample.")
    if batch_size < 1:
        raise UnlearnlabError(f"batch_size must be >= 1, got {batch_size}.")
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                torch.softmax(model(x[i : i + batch_size]).float(), dim=-1).cpu()
                for i in range(0, len(x), batch_size)
            ]
    finally:
        for module, training in modes.items():
            module.training = training
    return torch.cat(chunks)


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy in %: 100 · mean_i [argmax_k probs[i, k] = labels[i]] (logits work the same)."""
    p = as_numpy(probs)
    y = as_numpy(labels).astype(np.int64)
    check_probs_labels(p, y)
    return float(100.0 * np.mean(p.argmax(axis=1) == y))


def unlearning_accuracy(forget_probs: ArrayLike, forget_labels: ArrayLike) -> float:
    """UA in %: 100 − Acc(D_f), from the probabilities (or logits) of the forget set."""
    return 100.0 - accuracy(forget_probs, forget_labels)
