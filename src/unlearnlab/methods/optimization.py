"""Optimisation settings of an iterative method: epochs, batch sizes, learning rates, schedules and optimizers.

``optimizers`` (docs/methods.md, "DualOptim"): ``"shared"`` (default) is one ``optimizer`` for every phase, the
forget phase at ``forget_lr`` (if given); ``"shared-<kind>"`` is the same with an explicit kind (one state fed by
both gradient streams); ``"<forget>+<retain>"`` (``adamw+sgd``, ``adamw+adamw``, ``lion+sgd``, …) is DualOptim:
two optimizers over the same parameters, the forget one stepped only by forget gradients (lr ``forget_lr``, decay
``forget_weight_decay``, ``forget_betas``), the retain one only by retain gradients (``lr``, ``momentum``,
``weight_decay``, ``betas``). Kinds: sgd, adam, adamw, lion. ``"shared-hybrid"`` is DualOptim's shared ablation of
the default pair: the same AdamW-style forget and SGD-style retain updates, but on **one** state (one momentum
buffer fed by both streams, :func:`unlearnlab.optim.shared_hybrid`), so a "dual vs shared" comparison changes the
sharing of state alone. Each optimizer follows its own lr schedule (``forget_schedule``, default ``schedule``) on
the rule's global clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.components import Component
from unlearnlab.errors import UnlearnlabError
from unlearnlab.optim import shared_hybrid
from unlearnlab.training import OPTIMIZERS, PRECISIONS, SCHEDULES, build_optimizer

HYBRID = "shared-hybrid"


def parse_optimizers(spec: str, shared_kind: str = "sgd") -> tuple[str, str, bool]:
    """``(forget kind, retain kind, shared?)`` of an ``optimizers`` value (see module docstring)."""
    if spec == HYBRID:
        return "adamw", "sgd", False
    if spec == "shared":
        kinds, shared = (shared_kind, shared_kind), True
    elif spec.startswith("shared-"):
        kinds, shared = (spec[len("shared-"):],) * 2, True
    else:
        kinds, shared = tuple(spec.split("+")), False
    if len(kinds) != 2 or not set(kinds) <= set(OPTIMIZERS):
        raise UnlearnlabError(
            f"Unknown optimizers {spec!r}: use 'shared', 'shared-<kind>' or '<forget>+<retain>' with kinds "
            f"{', '.join(OPTIMIZERS)} (e.g. 'adamw+sgd')."
        )
    return kinds[0], kinds[1], shared


def _positive(name: str, value: Any, integer: bool = False, zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or not (value >= 0 if zero else value > 0):
        kind = "an integer >= 1" if integer else ("a number >= 0" if zero else "a number > 0")
        raise UnlearnlabError(f"{name} must be {kind}, got {value!r}.")


@dataclass
class Optimization(Component):
    """How an iterative method optimises (see module docstring)."""

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    optimizer: str = "sgd"
    optimizers: str = "shared"
    forget_lr: float | None = None
    forget_batch_size: int | None = None
    betas: tuple[float, float] | None = None
    forget_weight_decay: float | None = None
    forget_betas: tuple[float, float] | None = None
    forget_schedule: str | None = None
    #: mixed precision of the forwards (docs/architecture.md): "auto" = bf16 on CUDA, fp32 on CPU
    precision: str = "auto"

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs, integer=True)
        _positive("batch_size", self.batch_size, integer=True)
        _positive("lr", self.lr, zero=True)  # lr 0: only the modifiers act (e.g. MinNorm-OG's projection)
        if self.forget_lr is not None:
            _positive("forget_lr", self.forget_lr, zero=True)
        if self.forget_batch_size is not None:
            _positive("forget_batch_size", self.forget_batch_size, integer=True)
        for key in ("schedule", "forget_schedule"):
            value = getattr(self, key)
            if value is not None and value not in SCHEDULES:
                raise UnlearnlabError(f"{key} must be one of {', '.join(SCHEDULES)}, got {value!r}.")
        if self.precision not in PRECISIONS:
            raise UnlearnlabError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise UnlearnlabError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.weight_decay < 0 or self.momentum < 0:
            raise UnlearnlabError(f"weight_decay and momentum must be >= 0 (got {self.weight_decay}, "
                                  f"{self.momentum}).")
        if self.dual and self.forget_lr is None:
            raise UnlearnlabError(
                f"optimizers={self.optimizers!r} (DualOptim) needs forget_lr: the forget optimizer's lr has no safe "
                "default (the paper searches 1e-5 … 1e-3 for AdamW, Lion ÷ 3); pass forget_lr=... .")

    @property
    def forget_rate(self) -> float:
        """The forget phase's lr: ``forget_lr`` when given, else ``lr``."""
        return self.lr if self.forget_lr is None else self.forget_lr

    @property
    def dual(self) -> bool:
        """Two optimizers (DualOptim): the rule must have separate forget and retain phases."""
        return not parse_optimizers(self.optimizers, self.optimizer)[2]

    def build(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        """Phase → optimizer: one shared object for every phase, or a forget and a retain optimizer."""
        forget_kind, retain_kind, shared = parse_optimizers(self.optimizers, self.optimizer)
        params = list(model.parameters())
        decay = self.weight_decay if self.forget_weight_decay is None else self.forget_weight_decay
        if self.optimizers == HYBRID:
            forget_opt, retain_opt = shared_hybrid(params, self.forget_rate, self.lr, self.forget_betas or (0.9, 0.999),
                                                   decay, self.weight_decay)
            return {"forget": forget_opt, "retain": retain_opt}
        retain = build_optimizer(params, retain_kind, self.lr, self.momentum, self.weight_decay, self.betas)
        if shared:
            return {"forget": retain, "retain": retain, "joint": retain}
        forget = build_optimizer(params, forget_kind, self.forget_rate, self.momentum, decay,
                                 self.forget_betas)
        return {"forget": forget, "retain": retain}

    def base_lrs(self, phases: list[str]) -> dict[str, float]:
        table = {"forget": self.forget_rate, "retain": self.lr, "joint": self.lr}
        return {p: table[p] for p in phases}

    def schedules(self, phases: list[str]) -> dict[str, str]:
        table = {"forget": self.forget_schedule or self.schedule, "retain": self.schedule, "joint": self.schedule}
        return {p: table[p] for p in phases}
