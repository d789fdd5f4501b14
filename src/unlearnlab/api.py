"""The public entry points: :func:`unlearn`, :func:`train` and :class:`UnlearnResult`.

Timing (docs/metrics.md, "RTE"): before the clock starts, W = 3 forward+backward steps with the method's batch size
run on a deep copy of the model (warm-up, discarded); the timed region covers everything the method does (masks,
teacher copies, all steps) and is synchronised on CUDA. The same warm-up and timed region serve retraining
(:func:`timed`), so run-time ratios compare like with like.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.certify.certificate import Certificate
from unlearnlab.counting import Counters, CountingHooks
from unlearnlab.data.inputs import overlapping_rows
from unlearnlab.data.tensors import Batch, Source, TensorData, iterate
from unlearnlab.distributed.runtime import Runtime, runtime
from unlearnlab.errors import DivergenceError, HealthWarning, UnlearnlabError
from unlearnlab.families import TaskFamily, family_of, get_family
from unlearnlab.methods import Method, MethodInfo, RunContext, UnlearnData, get_method
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import Precision, Recipe, TrainStats, batchnorm_singletons
from unlearnlab.training import train as train_loop
from unlearnlab.utils import tensors_sha256

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


def check_model(model: nn.Module) -> torch.device:
    """The model's device; refuses models that cannot be unlearned (no, frozen or meta parameters)."""
    params = list(model.parameters())
    if not params:
        raise UnlearnlabError("The model has no parameters: there is nothing to unlearn.")
    if any(p.is_meta for p in params):
        raise UnlearnlabError("The model's parameters are on the 'meta' device (no values): load or initialise "
                              "its weights (e.g. model.to_empty(device='cpu') and a checkpoint) first.")
    if not any(p.requires_grad for p in params):
        raise UnlearnlabError("Every parameter of the model is frozen (requires_grad=False): unfreeze the ones "
                              "unlearning may change.")
    return params[0].device


def _warmup(model: nn.Module, data: Source, batch_size: int, loss: Callable[[nn.Module, Batch], torch.Tensor],
            precision: str) -> None:
    """W forward+backward+SGD steps on a deep copy in the run's precision: allocator, kernels and the one-time import
    that the first optimizer of a process triggers (``torch._dynamo``, seconds) all happen before the clock
    starts."""
    clone = copy.deepcopy(model).train()
    opt = torch.optim.SGD(clone.parameters(), lr=0.0)
    policy = Precision(precision, next(model.parameters()).device)
    batch = next(iterate(data, batch_size, shuffle=False))
    for _ in range(WARMUP_STEPS):
        opt.zero_grad(set_to_none=True)
        with policy.autocast():
            value = loss(clone, batch)
        policy.backward(value)
        policy.unscale(opt)
        policy.step(opt)
    del clone, opt


def timed(model: nn.Module, data: Source, batch_size: int, loss: Callable[[nn.Module, Batch], torch.Tensor],
          run: Callable[[], Any], precision: str = "auto", warmup: bool = True) -> tuple[Any, float, int | None]:
    """``(run(), seconds, peak CUDA bytes)`` after the warm-up, synchronised on CUDA (see module docstring); retrains
    and methods use this same function, so their run times compare like with like. ``warmup=False`` skips the
    warm-up (an FSDP run: a whole copy of the model may not fit on the device)."""
    device = next(model.parameters()).device
    if warmup:
        with batchnorm_singletons(model):
            _warmup(model, data, batch_size, loss, precision)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = run()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return out, seconds, (torch.cuda.max_memory_allocated(device) if cuda else None)


def _method(method: str | Method | MethodInfo, hparams: dict[str, Any], profile: str,
            family: TaskFamily) -> tuple[MethodInfo, dict[str, Any]]:
    if isinstance(method, Method):
        method = MethodInfo(method.name, "composed in code", "user", "a method from unlearnlab.methods.compose",
                            method)
    info = method if isinstance(method, MethodInfo) else get_method(method)
    return info, info.resolve(hparams, profile, family)


def _sources(model_device: torch.device, task: Any, forget: Any, retain: Any, family: TaskFamily,
             allow_overlap: bool) -> tuple[Source, Source]:
    if task is not None:
        if forget is not None or retain is not None:
            raise UnlearnlabError("Pass either task= or forget=/retain=, not both.")
        return task.forget.to(model_device), task.retain.to(model_device)
    if forget is None or retain is None:
        raise UnlearnlabError("unlearn() needs task=, or both forget= and retain= data.")
    forget_src = family.as_source(forget, "forget", model_device)
    retain_src = family.as_source(retain, "retain", model_device)
    if not isinstance(forget_src, TensorData):
        raise UnlearnlabError("The forget set is held in memory (it is the deletion request): pass it as tensors, "
                              "a Dataset or a DataLoader, not StreamData.")
    if not allow_overlap and isinstance(retain_src, TensorData):
        field_name = next(iter(forget_src.fields))
        shared = overlapping_rows(forget_src, retain_src, field_name)
        if shared:
            raise UnlearnlabError(
                f"{shared} of the {len(forget_src)} forget samples also appear in the retain set (identical "
                f"'{field_name}'): a sample to forget must not be retained. Remove them from retain=, or pass "
                "allow_overlap=True if they are distinct records with identical content.")
    return forget_src, retain_src


def content_hash(*sources: Source) -> str | None:
    """SHA-256 of in-memory sources' fields (the data a certificate is bound to); None for a streamed source."""
    if not all(isinstance(s, TensorData) for s in sources):
        return None
    return tensors_sha256((f"{i}:{name}", t) for i, s in enumerate(sources) for name, t in s.fields.items())


def unlearn(
    model: nn.Module,
    task: Any = None,
    *,
    method: str | Method | MethodInfo,
    forget: Any = None,
    retain: Any = None,
    seed: int = 1,
    profile: str = "default",
    inplace: bool = False,
    progress: Callable[[float], None] | None = None,
    family: str | TaskFamily | None = None,
    allow_overlap: bool = False,
    parallel: str | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Unlearn a forget set from ``model`` with any registered method (or a composed :class:`Method`).

    Give either a task (a :class:`ForgetTask` or any object with ``forget``/``retain`` sources and a ``family``) or
    ``forget=`` and ``retain=`` data (``(x, y)`` tensors, a Dataset, a DataLoader; ``StreamData`` for a retain set
    that does not fit in memory). Hyperparameters not given take the preset's defaults (``profile="reference"`` for
    the paper's CIFAR-10 values). The model is copied unless ``inplace=True``. ``progress(fraction)`` is called as
    work advances. Raises :class:`~unlearnlab.errors.DivergenceError` when a loss or a parameter becomes NaN/inf.

    Launched as one of several processes (``torchrun``), every rank calls this with the same arguments and the run
    is shared: ``parallel="ddp"`` (default) or ``"fsdp"``, ``"none"`` for this rank alone. Each step is then the
    single-device step on the global batch, and every rank returns the same model (docs/scaling.md).
    """
    fam = get_family(family) if family is not None else family_of(task if task is not None else forget)
    info, params = _method(method, hparams, profile, fam)
    rt = _runtime(parallel, fam)
    device = check_model(model)
    if rt is not None:
        model, inplace = _placed(model, inplace, rt)
        device = next(model.parameters()).device
    forget_src, retain_src = _sources(device, task, forget, retain, fam, allow_overlap)
    if len(forget_src) == 0:
        raise UnlearnlabError("The forget set is empty: there is nothing to unlearn.")
    facts = fam.inspect(model, {"forget": forget_src, "retain": retain_src}, task)
    facts["split_hash"] = getattr(task, "split_hash", None) or content_hash(forget_src, retain_src)
    augment = bool(getattr(task, "augment", False))
    data = UnlearnData(forget_src, retain_src, fam, facts, fam.transform(augment))
    unlearner = info.build(params, fam)
    ctx = RunContext(seed=seed, progress=progress, family=fam, dist=rt)
    speaks = rt is None or rt.is_main  # one rank warns
    before = fam.health(model, forget_src, retain_src) if info.forgets and speaks else None
    work = model if inplace else copy.deepcopy(model)
    if rt is not None:
        rt.broadcast_module(work)  # every rank starts from rank 0's weights
    fam.start_run(work, ctx)
    pool = retain_src if len(retain_src) else forget_src

    def run() -> dict[str, Any]:
        with CountingHooks(work, ctx.counters), batchnorm_singletons(work):
            return unlearner.run(work, data, ctx)

    stats, seconds, peak = timed(work, pool, unlearner.batch_size, fam.loss, run, unlearner.precision,
                                 warmup=rt is None or not rt.sharded)
    if rt is not None:
        rt.sum_counters(ctx.counters)
    work.eval()
    bad = [n for n, t in [*work.named_parameters(), *work.named_buffers()]
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise DivergenceError(f"{info.name}: parameters became NaN or infinite ({', '.join(bad[:3])}"
                              f"{'…' if len(bad) > 3 else ''}): the run diverged. Lower the learning rate (or the "
                              "forget weight) and run again.")
    if before is not None:  # rank 0 alone in a distributed run
        found = [f"{info.name}: {m}" for m in fam.health_warnings(before, fam.health(work, forget_src, retain_src))]
        for message in found:
            warnings.warn(message, HealthWarning, stacklevel=2)
        if found:
            stats["warnings"] = found
    cert = stats.pop("certificate", None)
    certificate = Certificate.from_dict(cert) if cert else None
    return UnlearnResult(work, info.name, params, seconds, ctx.counters, stats, peak, certificate)


def train(model: nn.Module, data: Any, recipe: Recipe | None = None, *, seed: int = 1,
          loss_fn: Callable[[nn.Module, Batch], torch.Tensor | tuple[torch.Tensor, int | torch.Tensor]] | None = None,
          progress: Callable[[int, int], None] | None = None, family: str | TaskFamily | None = None,
          checkpoint: str | Path | TrainCheckpoint | None = None, parallel: str | None = None) -> TrainStats:
    """Train ``model`` in place on ``data`` (a source, ``(x, y)`` tensors, a Dataset or a DataLoader, as
    :func:`unlearn` takes them) with ``recipe`` (default :meth:`Recipe.default`) and ``loss_fn(model, batch)``
    (default: the family's loss, mean cross-entropy for classifiers, the answer-token mean for language models;
    ``loss_fn`` may return ``(loss, number of terms it averages)``, which a distributed run needs for a mean over
    anything but rows: :func:`unlearnlab.training.train`). With ``checkpoint`` (a file path), the
    training state is saved there after every epoch and a second call with the same arguments resumes where an
    interrupted one stopped (:func:`unlearnlab.training.train`); delete the file once you have saved the model.
    Under ``torchrun`` the ranks share the run as in :func:`unlearn` (``parallel``; with DDP the model moves to the
    rank's device; rank 0 alone writes the checkpoint)."""
    fam = get_family(family) if family is not None else family_of(data)
    rt = _runtime(parallel, fam)
    device = check_model(model)
    if rt is not None:
        model, _ = _placed(model, True, rt)
        device = next(model.parameters()).device
        rt.broadcast_module(model)  # every rank starts from rank 0's weights
    source = data if isinstance(data, (TensorData,)) or hasattr(data, "batches") else fam.as_source(
        data, "train", device)
    if checkpoint is not None and not isinstance(checkpoint, TrainCheckpoint):
        checkpoint = TrainCheckpoint(Path(checkpoint))  # a file path
    return train_loop(model, source, recipe or Recipe.default(), seed=seed, progress=progress,
                      loss_fn=loss_fn or fam.weighted_loss, checkpoint=checkpoint, dist=rt)


def _runtime(parallel: str | None, fam: TaskFamily) -> Runtime | None:
    """This rank's runtime (None in a single process); refuses a family whose runs cannot be shared."""
    rt = runtime(parallel)
    if rt is not None and not fam.distributed:
        raise UnlearnlabError(f"The {fam.name} family does not run across ranks (it sets distributed = False: "
                              "docs/scaling.md): pass parallel='none' to run on each rank alone, or start it "
                              "without torchrun.")
    return rt


def _placed(model: nn.Module, inplace: bool, rt: Runtime) -> tuple[nn.Module, bool]:
    """``(model, inplace)`` for a distributed run: under DDP the model must be on this rank's device, so it moves
    there (a copy unless ``inplace``; the run then works on that copy in place); under FSDP it stays where it is
    (the run shards a copy of it onto the device)."""
    if rt.sharded or next(model.parameters()).device == rt.device:
        return model, inplace
    return (model if inplace else copy.deepcopy(model)).to(rt.device), True
