"""Recipes and the one training loop used for original models, retrains and fine-tuning.

A :class:`Recipe` fixes optimizer, learning rate and its schedule, momentum, weight decay, epochs, batch size
and augmentation. :func:`train` minimises a loss (the family's; mean cross-entropy for classifiers) over a batch
source with it.
Learning-rate schedules are multipliers of the base rate evaluated per optimizer step at progress
``t = step / total_steps`` (epoch ``e = step // steps_per_epoch``):

* ``constant``: 1;
* ``multistep``: ``gamma ** #{m in milestones : m <= e}`` (epoch milestones, as MultiStepLR per epoch);
* ``cosine``: ``(1 + cos(π t)) / 2`` (to 0 at the end);
* ``onecycle``: optax's ``linear_onecycle_schedule`` with its defaults — piecewise linear through
  (0, 1/25), (⌊0.3N⌋, 1), (⌊0.85N⌋, 1/25), (N, 1/2.5e5), constant afterwards (the certified methods' fine-tuning
  schedule: docs/certificates.md, "Noise-free fine-tuning").
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.counting import Counters
from unlearnlab.data.tensors import Batch, Source, augment_images, batch_size_of, iterate
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.optim import Lion
from unlearnlab.train_state import TrainCheckpoint, capture, fingerprint, restore
from unlearnlab.utils import torch_generator

if TYPE_CHECKING:
    from unlearnlab.distributed.runtime import Runtime

SCHEDULES = ("constant", "multistep", "cosine", "onecycle")
OPTIMIZERS = ("sgd", "adam", "adamw", "lion")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Recipe:
    """How to train a model from scratch or fine-tune it."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 60
    batch_size: int = 64
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    augment: bool = False
    #: "auto" = bf16 autocast on CUDA (fp16 + GradScaler where bf16 is unsupported), fp32 on CPU
    precision: str = "auto"
    #: clip the global ℓ2 norm of the gradients to this value before each step (None: no clipping; the diffusion
    #: recipes use 1.0, docs/generation.md)
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UnlearnlabError(f"Unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}.")
        if self.schedule not in SCHEDULES:
            raise UnlearnlabError(f"Unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}.")
        if self.optimizer not in OPTIMIZERS:
            raise UnlearnlabError(f"Unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}.")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise UnlearnlabError("A recipe needs epochs >= 1, batch_size >= 1 and lr > 0.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UnlearnlabError(f"grad_clip must be > 0 (or None for no clipping), got {self.grad_clip}.")

    @classmethod
    def default(cls, task: object | None = None) -> Recipe:
        """The small-scale recipe: SGD 0.05, momentum 0.9, wd 5e-4, 60 epochs, cosine.

        Datasets with standard augmentation (CIFAR) get the reference recipe instead: SGD 0.1, batch 256,
        182 epochs, MultiStep(91, 136), crop + flip. Both, and how they relate: docs/models.md, "Original models:
        the default recipe".
        """
        if task is not None and getattr(task, "augment", False):
            return cls(lr=0.1, epochs=182, batch_size=256, schedule="multistep", milestones=(91, 136), augment=True)
        return cls()

    def to_dict(self) -> dict:
        """The recipe as plain values; ``grad_clip`` appears only when set, so recipes without clipping keep the
        dict (and :attr:`hash`, the cache key) they had before the field existed."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        if d["grad_clip"] is None:
            del d["grad_clip"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UnlearnlabError(f"Unknown recipe key(s) {sorted(unknown)}: allowed keys are {sorted(known)}.")
        d = dict(d)
        defaults = cls()
        for key, value in d.items():  # type-check against the defaults: a YAML "five" must not reach a comparison
            default = getattr(defaults, key)
            if key == "milestones":
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(m, int) and not isinstance(m, bool) for m in value)
            elif key == "grad_clip":
                ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, type(default)) and not isinstance(value, bool)
            if not ok:
                raise UnlearnlabError(f"Recipe key {key!r} expects a {type(default).__name__} "
                                      f"(default {default!r}), got {value!r}.")
            if isinstance(default, float) or (key == "grad_clip" and value is not None):
                d[key] = float(value)
        if "milestones" in d:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def replace(self, **changes: object) -> Recipe:
        return dataclasses.replace(self, **changes)

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def onecycle_multiplier(step: int, total_steps: int) -> float:
    """optax ``linear_onecycle_schedule`` defaults as a multiplier of the peak lr (see module docstring)."""
    xs = [0, math.floor(0.3 * total_steps), math.floor(0.85 * total_steps), total_steps]
    return float(np.interp(step, xs, [1 / 25, 1.0, 1 / 25, 1 / 2.5e5]))


def lr_multiplier(schedule: str, step: int, total_steps: int, steps_per_epoch: int,
                  milestones: Iterable[int] = (), gamma: float = 0.1) -> float:
    """The schedule's multiplier of the base lr at optimizer step ``step`` (0-based)."""
    t = step / max(1, total_steps)
    if schedule == "constant":
        return 1.0
    if schedule == "multistep":
        epoch = step // max(1, steps_per_epoch)
        return gamma ** sum(1 for m in milestones if m <= epoch)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "onecycle":
        return onecycle_multiplier(step, total_steps)
    raise UnlearnlabError(f"Unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}.")


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict], name: str, lr: float,
                    momentum: float = 0.0, weight_decay: float = 0.0,
                    betas: tuple[float, float] | None = None) -> torch.optim.Optimizer:
    """SGD (coupled decay, momentum), Adam (coupled decay), AdamW or Lion (decoupled decay).

    ``betas=None`` takes the optimizer's own default: (0.9, 0.999) for Adam/AdamW, (0.9, 0.99) for Lion
    (:class:`unlearnlab.optim.Lion`).
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name in ("adam", "adamw"):
        kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return kind(params, lr=lr, betas=betas or (0.9, 0.999), weight_decay=weight_decay)
    if name == "lion":
        return Lion(params, lr=lr, betas=betas or (0.9, 0.99), weight_decay=weight_decay)
    raise UnlearnlabError(f"Unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}.")


class LrSchedule:
    """The recipe's schedule written straight into the optimizer: after k optimizer steps every group's lr is
    base_lr·m(k). The lr is written only when m changes (a constant schedule never writes); the state is the step
    count, so a resumed training continues the same schedule."""

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: Callable[[int], float]):
        self.optimizer = optimizer
        self.multiplier = multiplier
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.steps = 0
        self.current: float | None = None
        self._write()

    def _write(self) -> None:
        m = self.multiplier(self.steps)
        if m != self.current:
            for group, base in zip(self.optimizer.param_groups, self.base):
                group["lr"] = base * m
            self.current = m

    def step(self) -> None:
        self.steps += 1
        self._write()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.base, self.current = int(state["steps"]), [float(b) for b in state["base"]], None
        self._write()


def check_finite(loss_sum: torch.Tensor, where: str) -> None:
    """Raise :class:`DivergenceError` when an accumulated loss is NaN or infinite."""
    if not bool(torch.isfinite(loss_sum)):
        raise DivergenceError(
            f"The loss became {loss_sum.item()} during {where}: the run diverged. Lower the learning rate "
            "(or the forget weight) and run again."
        )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None = full fp32). "auto" is bf16 on CUDA (fp16 where
    bf16 is unsupported) and fp32 elsewhere; fp16 is always run with a gradient scaler (:class:`Precision`)."""
    if precision not in PRECISIONS:
        raise UnlearnlabError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type != "cuda":
            return None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


class Precision:
    """One mixed-precision policy for training and unlearning: autocast of the forwards, backward outside it, and
    for fp16 a gradient scaler whose skipped steps (inf/NaN gradients) advance nothing (docs/architecture.md)."""

    def __init__(self, precision: str, device: torch.device):
        self.device = device
        self.dtype = autocast_dtype(precision, device)
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for the forwards (nothing at all in fp32, so the fp32 path costs nothing extra).

        The weight-cast cache is off: a rule runs many optimizer steps inside one autocast block, and a cached
        low-precision copy of a weight would keep serving the value from before the steps (every forward would
        see the starting weights)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)

    def backward(self, loss: torch.Tensor) -> None:
        if self.dtype is None:
            loss.backward()
            return
        with torch.autocast(self.device.type, enabled=False):
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Undo the loss scale in ``.grad`` before anything reads the gradients (masks, clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """``optimizer.step()``; with a scaler, skipped when the gradients are not finite. Returns whether it
        stepped."""
        if self.scaler is None:
            optimizer.step()
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= before


@contextlib.contextmanager
def batchnorm_singletons(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers that would see one value per channel (a batch of one sample, e.g. the last batch of a pass
    or a single deleted record) normalise with their running statistics instead of failing; other batches are
    unaffected. Active for the block (training and unlearning wrap their loops in it)."""
    handles = []

    def before(module: nn.Module, args: tuple) -> None:
        x = args[0]
        module._unlearnlab_was_training = module.training  # type: ignore[attr-defined]
        if module.training and x.dim() >= 2 and x.numel() // x.shape[1] == 1:
            module.training = False

    def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        module.training = module._unlearnlab_was_training  # type: ignore[attr-defined]

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model(batch["x"])`` against ``batch["y"]`` (the classification family's loss)."""
    return F.cross_entropy(model(batch["x"]), batch["y"])


@dataclass
class TrainStats:
    seconds: float
    epochs: int
    final_loss: float
    counters: Counters = field(default_factory=Counters)


def train(
    model: nn.Module,
    data: Source,
    recipe: Recipe,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor | tuple[torch.Tensor, int | torch.Tensor]] | None = None,
    checkpoint: TrainCheckpoint | None = None,
    dist: Runtime | None = None,
    streams: Mapping[str, torch.Generator] | None = None,
) -> TrainStats:
    """Minimise ``loss_fn`` (default: mean cross-entropy) on the batch source ``data`` with ``recipe``.

    Returns timing and counters. ``progress(done_epochs, total_epochs)`` is called after every epoch. Raises
    :class:`DivergenceError` on a non-finite loss. Mixed precision follows ``recipe.precision`` (autocast; a
    GradScaler for fp16); on CUDA, image models and batches use the channels-last memory format. The public
    :func:`unlearnlab.train` also takes ``(x, y)`` tensors, Datasets and DataLoaders.

    With ``checkpoint``, the loop's whole state is saved there after every epoch but the last (at most once per
    its ``min_interval`` seconds; :mod:`unlearnlab.train_state`), and a call that finds a state of the same
    training resumes after its epoch: the result is the model an uninterrupted call would have produced
    (bit-identical on the CPU; with ``StreamData``, only if the user's loader is reproducible). ``streams`` names
    further generators ``loss_fn`` draws from (a diffusion model's noise): their states are saved and restored
    with the rest. Seconds and counters include the epochs trained before the interruption. The caller deletes
    the state once the model is saved (:meth:`TrainCheckpoint.clear`).

    With ``dist`` (a rank of a distributed run) each step is the single-device step on the global batch: the rank
    trains on its share through DDP or FSDP, and ``model`` ends with the run's weights on every rank
    (docs/scaling.md). ``loss_fn`` may return ``(loss, w)`` with w the number of terms its mean averages (a
    family's :meth:`~unlearnlab.families.base.TaskFamily.weighted_loss`: answer tokens for a language model); a
    plain loss is taken as a mean over the batch's rows. Rank 0 alone reads and writes ``checkpoint``; every rank
    resumes from its state (DDP only).
    """
    if len(data) == 0:
        raise UnlearnlabError("Cannot train on an empty dataset.")
    loss_fn = loss_fn or cross_entropy
    device = next(model.parameters()).device
    data = data.to(device)
    gen = torch_generator(seed, "train-loader")
    channels_last = device.type == "cuda" and _image_field(data)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    replica = None if dist is None else dist.replicate(model)
    net, trained = (model, model) if replica is None else (replica.forward, replica.module)
    opt = build_optimizer(trained.parameters(), recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay)
    steps_per_epoch = math.ceil(len(data) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    sched = LrSchedule(
        opt, lambda s: lr_multiplier(recipe.schedule, s, total, steps_per_epoch, recipe.milestones, recipe.gamma)
    )
    counters = Counters()
    compute = device if dist is None else dist.device  # FSDP: the shards' device, wherever ``model`` lives
    precision = Precision(recipe.precision, compute)
    first, trained_before = 0, 0.0
    if dist is not None:
        checkpoint = dist.own_checkpoint(checkpoint)
    identity = None if checkpoint is None else fingerprint(model, recipe.to_dict(), seed, len(data),
                                                           tuple(streams or ()))
    saved = None if checkpoint is None else checkpoint.load(identity)
    if dist is not None:
        saved = dist.resume_state(saved)
    if saved is not None:
        restore(saved, model, opt, sched, precision.scaler, gen, streams)
        first, trained_before, counters = saved["epoch"], saved["seconds"], Counters(**saved["counters"])
        if checkpoint is not None:
            checkpoint.note(f"resuming training from epoch {first} of {recipe.epochs} ({checkpoint.path.name})")
        if progress is not None:
            progress(first, recipe.epochs)
    model.train()
    trained.train()
    start = time.perf_counter() - trained_before
    saved_at = time.perf_counter()
    loss_sum = torch.zeros((), device=compute)
    transform = augment_images if recipe.augment else None
    with batchnorm_singletons(trained):
        for epoch in range(first, recipe.epochs):
            loss_sum = torch.zeros((), device=compute)
            batches = iterate(data, recipe.batch_size, gen, True, transform)
            for batch in (batches if dist is None else dist.shard_all(batches)):
                if channels_last:
                    batch = {**batch, "x": batch["x"].contiguous(memory_format=torch.channels_last)}
                with precision.autocast():
                    loss = loss_fn(net, batch)
                    loss, weight = loss if isinstance(loss, tuple) else (loss, None)
                    if dist is not None:
                        loss = dist.global_mean(loss, batch, weight)
                opt.zero_grad(set_to_none=True)
                precision.backward(loss)
                precision.unscale(opt)  # the clip reads true gradients
                _clip(trained, recipe.grad_clip)
                rows = batch_size_of(batch)  # one forward and one backward of the batch per step
                counters.forward_samples += rows
                counters.backward_samples += rows
                if precision.step(opt):  # a skipped fp16 step advances nothing, the schedule included
                    sched.step()
                    counters.optimizer_steps += 1
                loss_sum += loss.detach()
            check_finite(loss_sum, f"training epoch {epoch}")
            if (checkpoint is not None and epoch + 1 < recipe.epochs
                    and time.perf_counter() - saved_at >= checkpoint.min_interval):
                checkpoint.save(capture(model, opt, sched, precision.scaler, gen, epoch + 1, counters.as_dict(),
                                        time.perf_counter() - start, identity, streams))
                saved_at = time.perf_counter()
            if progress is not None:
                progress(epoch + 1, recipe.epochs)
    if replica is not None:
        replica.finish()
        dist.sum_counters(counters)
    if compute.type == "cuda":
        torch.cuda.synchronize(compute)
    return TrainStats(time.perf_counter() - start, recipe.epochs, float(loss_sum) / steps_per_epoch, counters)


def _clip(model: nn.Module, max_norm: float | None) -> None:
    """Scale the gradients to global ℓ2 norm at most ``max_norm`` (nothing when None)."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


def _image_field(data: Source) -> bool:
    """Whether the source's batches carry a 4-D image field ``x`` (channels-last applies)."""
    fields = getattr(data, "fields", None)
    return fields is not None and "x" in fields and fields["x"].ndim == 4
