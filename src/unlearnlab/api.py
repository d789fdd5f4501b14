"""The public entry points: :func:`unlearn` and :class:`UnlearnResult`.

Timing follows evaluation.md §5: before the clock starts, W = 3 forward+backward steps with the method's
batch size run on a deep copy of the model (warm-up, discarded); the timed region covers everything the
method does (masks, teacher copies, all steps) and is synchronised on CUDA.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.certify.certificate import Certificate
from unlearnlab.data.forget import ForgetTask
from unlearnlab.data.inputs import as_tensor_data, check_labels
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext, UnlearnData, get_method
from unlearnlab.training import Counters, CountingHooks

WARMUP_STEPS = 3


@dataclass
class UnlearnResult:
    """The unlearned model and how it was obtained."""

    model: nn.Module
    method: str
    hparams: dict[str, Any]
    seconds: float
    counters: Counters
    stats: dict[str, Any] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    certificate: Any = None

    @property
    def rte_minutes(self) -> float:
        return self.seconds / 60.0

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds,
                "rte_minutes": self.rte_minutes, **self.counters.as_dict(),
                "peak_memory_bytes": self.peak_memory_bytes, **self.stats}


def _num_outputs(model: nn.Module, sample: torch.Tensor) -> int:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample[:1])
    except RuntimeError as err:
        raise UnlearnlabError(
            f"The model cannot take inputs of shape {tuple(sample.shape[1:])}: {err}. Pass data shaped as the "
            "model expects."
        ) from err
    finally:
        model.train(was)
    if out.ndim != 2:
        raise UnlearnlabError(f"The model returns shape {tuple(out.shape)}: a classifier must return [batch, classes].")
    return out.shape[1]


def _warmup(model: nn.Module, data: UnlearnData, batch_size: int) -> None:
    """W forward+backward+SGD steps on a deep copy: allocator, kernels and the one-time import that the first
    optimizer of a process triggers (``torch._dynamo``, seconds) all happen before the clock starts."""
    clone = copy.deepcopy(model).train()
    opt = torch.optim.SGD(clone.parameters(), lr=0.0)
    pool = data.retain if len(data.retain) else data.forget
    x, y = pool.x[:batch_size], pool.y[:batch_size]
    for _ in range(WARMUP_STEPS):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(clone(x), y).backward()
        opt.step()
    del clone, opt


def unlearn(
    model: nn.Module,
    task: ForgetTask | None = None,
    *,
    method: str,
    forget: Any = None,
    retain: Any = None,
    seed: int = 1,
    profile: str = "default",
    inplace: bool = False,
    progress: Any = None,
    **hparams: Any,
) -> UnlearnResult:
    """Unlearn a forget set from ``model`` with any registered method.

    Give either a :class:`ForgetTask` or ``forget=`` and ``retain=`` data (``(x, y)`` tensors, a Dataset or a
    DataLoader). Hyperparameters not given take the preset's defaults (``profile="reference"`` for the paper's
    CIFAR-10 values). The model is copied unless ``inplace=True``. ``progress(fraction)`` is called as work
    advances. Raises :class:`~unlearnlab.errors.DivergenceError` on a NaN/inf loss.
    """
    info = get_method(method)
    params = info.resolve(hparams, profile)
    device = next(model.parameters()).device
    if task is not None:
        if forget is not None or retain is not None:
            raise UnlearnlabError("Pass either task= or forget=/retain=, not both.")
        forget_data, retain_data = task.forget.to(device), task.retain.to(device)
        augment = task.augment
    else:
        if forget is None or retain is None:
            raise UnlearnlabError("unlearn() needs task=, or both forget= and retain= data.")
        forget_data = as_tensor_data(forget, "forget", device)
        retain_data = as_tensor_data(retain, "retain", device)
        augment = False
    if len(forget_data) == 0:
        raise UnlearnlabError("The forget set is empty: there is nothing to unlearn.")
    num_classes = _num_outputs(model, forget_data.x)
    if task is not None and num_classes != task.num_classes:
        raise UnlearnlabError(
            f"The model has {num_classes} outputs but the task has {task.num_classes} classes: give the model a "
            f"final layer with {task.num_classes} outputs."
        )
    check_labels(forget_data, num_classes, "forget")
    check_labels(retain_data, num_classes, "retain")

    work = model if inplace else copy.deepcopy(model)
    data = UnlearnData(forget_data, retain_data, num_classes, augment)
    unlearner = info.build(params, num_classes)
    ctx = RunContext(seed=seed, progress=progress)
    _warmup(work, data, unlearner.batch_size)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    with CountingHooks(work, ctx.counters):
        start = time.perf_counter()
        stats = unlearner.run(work, data, ctx)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    work.eval()
    cert = stats.pop("certificate", None)
    certificate = Certificate.from_dict(cert) if cert else None
    return UnlearnResult(work, info.name, params, seconds, ctx.counters, stats, peak, certificate)
