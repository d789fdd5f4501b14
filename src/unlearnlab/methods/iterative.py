"""Iterative methods as compositions: forget objective × retain objective × update rule + modifiers.

Modifiers: an exact weight mask (SalUn's saliency mask, :mod:`unlearnlab.methods.masks`), a decaying ℓ1
penalty (ℓ1-sparse, baselines §6: ``α_e = α·(1 − e/(E − E₀))`` for ``e < E − E₀``, else 0, over all
parameters), gradient-norm clipping, and frozen BatchNorm statistics.

Optimizers (``optimizers``, dualoptim.md §7): ``"shared"`` (default) is one ``optimizer`` for every phase, the
forget phase at ``forget_lr`` (if given); ``"shared-<kind>"`` is the same with an explicit kind (the DualOptim
ablation: one state fed by both gradient streams); ``"<forget>+<retain>"`` (``adamw+sgd``, ``adamw+adamw``,
``lion+sgd``, ``lion+lion``, ...) is DualOptim: two optimizers over the same parameters, the forget one stepped
only by forget gradients (lr ``forget_lr``, decay ``forget_weight_decay``, ``forget_betas``), the retain one
only by retain gradients (``lr``, ``momentum``, ``weight_decay``, ``betas``). Kinds: sgd, adam, adamw, lion.
Each optimizer has its own lr scheduler (``forget_schedule``, default ``schedule``; one of
:data:`unlearnlab.training.SCHEDULES`) on the rule's global clock (epochs or iterations, dualoptim §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner, frozen_copy
from unlearnlab.methods.masks import ExactMask, saliency_mask
from unlearnlab.methods.objectives import Objective
from unlearnlab.methods.rules import Job, Rule, Stepper
from unlearnlab.training import OPTIMIZERS, build_optimizer, lr_multiplier


def parse_optimizers(spec: str, shared_kind: str = "sgd") -> tuple[str, str, bool]:
    """``(forget kind, retain kind, shared?)`` of an ``optimizers`` value (see module docstring)."""
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


def l1_weight(alpha: float, epoch: int, epochs: int, no_l1_epochs: int = 0) -> float:
    """ℓ1-sparse's per-epoch weight α_e = α·(1 − e/(E − E₀)) for e < E − E₀, else 0."""
    active = epochs - no_l1_epochs
    return alpha * (1 - epoch / active) if epoch < active else 0.0


@dataclass
class IterativeUnlearner(Unlearner):
    forget: Objective | None
    retain: Objective | None
    rule: Rule
    epochs: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    forget_batch_size: int | None = None
    forget_lr: float | None = None
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    mask_fraction: float | None = None
    mask_scope: str = "both"
    l1: float = 0.0
    no_l1_epochs: int = 0
    clip: float | None = None
    freeze_bn_stats: bool = False
    optimizers: str = "shared"
    betas: tuple[float, float] | None = None
    forget_weight_decay: float | None = None
    forget_betas: tuple[float, float] | None = None
    forget_schedule: str | None = None

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        """Phase → optimizer: one shared object for every phase, or a forget and a retain optimizer."""
        forget_kind, retain_kind, shared = parse_optimizers(self.optimizers, self.optimizer)
        params = list(model.parameters())
        retain = build_optimizer(params, retain_kind, self.lr, self.momentum, self.weight_decay, self.betas)
        if shared:
            return {"forget": retain, "retain": retain, "joint": retain}
        decay = self.weight_decay if self.forget_weight_decay is None else self.forget_weight_decay
        forget = build_optimizer(params, forget_kind, self.forget_lr or self.lr, self.momentum, decay,
                                 self.forget_betas)
        return {"forget": forget, "retain": retain}

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        for obj in (self.forget, self.retain):
            if obj is not None and obj.needs_teacher:
                obj.teacher = frozen_copy(model, ctx.counters)
        mask = None
        if self.mask_fraction is not None:
            m = saliency_mask(model, data.forget, self.mask_fraction)
            mask = ExactMask(model, m, self.mask_scope)
            trainable, total = sum(int(v.sum()) for v in m.values()), sum(v.numel() for v in m.values())
            stats["mask_fraction_trainable"] = trainable / total
        optimizers = self.build_optimizers(model)
        base_lr = {"forget": self.forget_lr or self.lr, "retain": self.lr, "joint": self.lr}
        stepper = Stepper(model, optimizers, {p: base_lr[p] for p in optimizers}, ctx, mask, self.clip)
        schedules = {"forget": self.forget_schedule or self.schedule, "retain": self.schedule, "joint": self.schedule}
        params = [p for p in model.parameters() if p.requires_grad]

        def penalty(epoch: int) -> torch.Tensor | None:
            weight = l1_weight(self.l1, epoch, self.epochs, self.no_l1_epochs) if self.l1 else 0.0
            return weight * sum(p.abs().sum() for p in params) if weight else None

        job = Job(
            model=model, data=data, ctx=ctx, stepper=stepper, forget=self.forget, retain=self.retain,
            epochs=self.epochs, batch_size=self.batch_size,
            forget_batch_size=self.forget_batch_size or self.batch_size,
            schedule=lambda e: lr_multiplier(self.schedule, e, self.epochs, 1, self.milestones),
            penalty=penalty, schedules={p: schedules[p] for p in optimizers}, milestones=self.milestones,
        )
        model.train()
        if self.freeze_bn_stats:
            for mod in model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        self.rule.run(job)
        stats["steps"] = dict(stepper.steps)
        return stats
