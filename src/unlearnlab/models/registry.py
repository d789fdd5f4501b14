"""A small model registry.

Every model starts with a fixed :class:`Normalize` module holding the dataset's public normalisation
constants, so inputs stay in pixel space ``[0, 1]`` everywhere else (docs/data.md, "Pixel space and
normalisation"; docs/models.md, "How a model is built").
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError, unknown_name

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register_model(*names: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(input_shape, num_classes, **kw) -> nn.Module`` under ``names``."""

    def deco(fn: Builder) -> Builder:
        for name in names:
            _REGISTRY[name] = fn
        return fn

    return deco


def list_models(pattern: str | None = None) -> list[str]:
    return [n for n in sorted(_REGISTRY) if pattern is None or fnmatch.fnmatch(n, pattern)]


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel, with constants stored as non-trainable buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def create(
    name: str,
    task: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 1,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` for ``task`` (a ForgetTask or ImageDataset) or explicit shapes.

    Parameters are initialised from ``seed`` (so two calls with one seed give identical weights) and moved to
    ``device`` (default: the task's device, else CPU).
    """
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY, "unlearnlab models")
    if task is not None:
        input_shape = input_shape or task.input_shape
        num_classes = num_classes or task.num_classes
        mean = mean or task.mean
        std = std or task.std
        device = device or getattr(task, "device", None)
    if input_shape is None or num_classes is None:
        raise UnlearnlabError("create() needs a task, or both input_shape=(C, H, W) and num_classes.")
    channels = input_shape[0]
    mean = tuple(mean) if mean is not None else (0.0,) * channels
    std = tuple(std) if std is not None else (1.0,) * channels
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = _REGISTRY[name](tuple(input_shape), int(num_classes), **kwargs)
    model = nn.Sequential(Normalize(mean, std), body)
    model.unlearnlab_name = name  # recorded in checkpoints
    return model.to(device or "cpu")


def output_layer(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of a model (the classification head)."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise UnlearnlabError("The model has no nn.Linear layer, so its output head cannot be located.")
    return last


def check_output_size(model: nn.Module, input_shape: Sequence[int], num_classes: int) -> None:
    """Refuse a model whose output width does not match the task's class count."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise UnlearnlabError(
            f"The model outputs shape {tuple(out.shape)} for one input but the task has {num_classes} classes: "
            f"give the model a final layer with {num_classes} outputs."
        )
