"""Iterative methods as compositions: forget objective × retain objective × update rule + modifiers.

Modifiers: an exact weight mask (SalUn's saliency mask, :mod:`unlearnlab.methods.masks`), a decaying ℓ1
penalty (ℓ1-sparse, baselines §6: ``α_e = α·(1 − e/(E − E₀))`` for ``e < E − E₀``, else 0, over all
parameters), gradient-norm clipping, and frozen BatchNorm statistics. The per-epoch learning-rate schedule
is one of :data:`unlearnlab.training.SCHEDULES` evaluated at epoch granularity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner, frozen_copy
from unlearnlab.methods.masks import ExactMask, saliency_mask
from unlearnlab.methods.objectives import Objective
from unlearnlab.methods.rules import Job, Rule, Stepper
from unlearnlab.training import build_optimizer, lr_multiplier


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

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        for obj in (self.forget, self.retain):
            if obj is not None and obj.needs_teacher:
                obj.teacher = frozen_copy(model)
        mask = None
        if self.mask_fraction is not None:
            m = saliency_mask(model, data.forget, self.mask_fraction)
            mask = ExactMask(model, m, self.mask_scope)
            stats["mask_fraction_trainable"] = sum(int(v.sum()) for v in m.values()) / sum(v.numel() for v in m.values())
        opt = build_optimizer(model.parameters(), self.optimizer, self.lr, self.momentum, self.weight_decay)
        base_lr = {"forget": self.forget_lr or self.lr, "retain": self.lr, "joint": self.lr}
        stepper = Stepper(model, {"forget": opt, "retain": opt, "joint": opt}, base_lr, ctx, mask, self.clip)
        params = [p for p in model.parameters() if p.requires_grad]

        def penalty(epoch: int) -> torch.Tensor | None:
            weight = l1_weight(self.l1, epoch, self.epochs, self.no_l1_epochs) if self.l1 else 0.0
            return weight * sum(p.abs().sum() for p in params) if weight else None

        job = Job(
            model=model, data=data, ctx=ctx, stepper=stepper, forget=self.forget, retain=self.retain,
            epochs=self.epochs, batch_size=self.batch_size,
            forget_batch_size=self.forget_batch_size or self.batch_size,
            schedule=lambda e: lr_multiplier(self.schedule, e, self.epochs, 1, self.milestones),
            penalty=penalty,
        )
        model.train()
        if self.freeze_bn_stats:
            for mod in model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        self.rule.run(job)
        return stats
