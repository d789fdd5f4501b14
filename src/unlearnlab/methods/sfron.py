"""SFR-on (arXiv 2409.19732; reference ``unlearn/sfron.py``, baselines.md §12, dualoptim.md §8).

* Fisher-ratio mask (:func:`fisher_ratio_mask`), once before unlearning, eval mode, true labels, eval transforms:
  F_f = (1/nb_f)·Σ_b (∇θ CE_mean(batch b of D_f))², F_r likewise over D_r, m = 1[(F_f + 1e-15)/(F_r + 1e-15) ≥ τ];
  applied exactly (dualoptim §6) on forget steps only (scope ``"forget"``).
* Forget objective (:class:`WeightedAscent`): L_f = −α_t·Σ_i w_i·CE_i, w_i = (ℓ_i^λ + 1e-15)⁻¹ / Σ_j (ℓ_j^λ + 1e-15)⁻¹
  (detached), α_t = α_0·(1 + cos(πt/N_r))/2 with t the iteration of ``Interleave(1, k)`` (forget steps at t = 0, k,
  2k, …).
* Forget gradients clipped to norm ``clip`` after masking; retain steps CE, unmasked and unclipped.
* Scheduler per iteration on the global clock (``Interleave``); one SGD (``optimizers="shared"``) or DualOptim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import TensorData, iterate
from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.masks import ExactMask, Mask
from unlearnlab.methods.objectives import Objective
from unlearnlab.methods.rules import Job, Stepper
from unlearnlab.methods.rules.alternate import Interleave
from unlearnlab.training import lr_multiplier


def squared_batch_gradients(model: nn.Module, data: TensorData, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """(1/nb)·Σ_b (∇θ CE_mean(batch b))² over one pass in dataset order, model in eval mode."""
    was_training = model.training
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    batches = 0
    for x, y in iterate(data, batch_size, shuffle=False):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()), allow_unused=True)
        for n, g in zip(params, grads):
            if g is not None:
                acc[n] += g * g
        batches += 1
    model.train(was_training)
    return {n: a / max(1, batches) for n, a in acc.items()}


def ratio_mask(fisher_forget: dict[str, torch.Tensor], fisher_retain: dict[str, torch.Tensor],
               tau: float = 1.0) -> Mask:
    """m = 1[(F_f + 1e-15)/(F_r + 1e-15) ≥ τ] per entry."""
    return {n: (f + 1e-15) / (fisher_retain[n] + 1e-15) >= tau for n, f in fisher_forget.items()}


def fisher_ratio_mask(model: nn.Module, data: UnlearnData, tau: float = 1.0, batch_size: int = 256) -> Mask:
    return ratio_mask(squared_batch_gradients(model, data.forget, batch_size),
                      squared_batch_gradients(model, data.retain, batch_size), tau)


def adaptive_weights(losses: torch.Tensor, lam: float) -> torch.Tensor:
    """w_i = (ℓ_i^λ + 1e-15)⁻¹ normalised to sum 1, detached: low-loss samples weigh most."""
    inv = 1.0 / (losses.detach() ** lam + 1e-15)
    return inv / inv.sum()


@dataclass
class WeightedAscent(Objective):
    """−α_t·Σ_i w_i·CE_i with true labels; the j-th call is iteration t = j·``every``."""

    alpha0: float = 25.0
    lam: float = 0.5
    total: int = 1500
    every: int = 5
    calls: int = 0

    def alpha_t(self, t: int) -> float:
        return self.alpha0 * 0.5 * (1.0 + math.cos(math.pi * t / self.total))

    def __call__(self, model, x, y, ctx):
        losses = F.cross_entropy(model(x), y, reduction="none")
        t = self.calls * self.every
        self.calls += 1
        return -self.alpha_t(t) * (adaptive_weights(losses, self.lam) * losses).sum()


class PhaseClipStepper(Stepper):
    """A :class:`Stepper` that clips only the gradients of the phases in ``clip_phases``."""

    def __init__(self, *args, clip_phases: tuple[str, ...] = ("forget",), **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_phases = clip_phases

    def apply(self, phase: str, loss_value: torch.Tensor) -> None:
        clip = self.clip
        self.clip = clip if phase in self.clip_phases else None
        try:
            super().apply(phase, loss_value)
        finally:
            self.clip = clip


@dataclass
class SFRonUnlearner(IterativeUnlearner):
    """SFR-on: the Fisher-ratio mask (forget steps) and forget-only clipping around ``Interleave(1, k)``."""

    tau: float = 1.0
    fisher_batch_size: int = 256

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict:
        if isinstance(self.forget, WeightedAscent):
            self.forget.calls = 0
            if isinstance(self.rule, Interleave):  # α_t's horizon is the rule's N_r
                per_epoch = -(-len(data.retain) // self.batch_size)
                self.forget.total = self.rule.iterations or self.epochs * per_epoch
        m = fisher_ratio_mask(model, data, self.tau, self.fisher_batch_size)
        mask = ExactMask(model, m, "forget")
        optimizers = self.build_optimizers(model)
        base_lr = {"forget": self.forget_lr or self.lr, "retain": self.lr, "joint": self.lr}
        stepper = PhaseClipStepper(model, optimizers, {p: base_lr[p] for p in optimizers}, ctx, mask, self.clip)
        schedules = {"forget": self.forget_schedule or self.schedule, "retain": self.schedule, "joint": self.schedule}
        job = Job(
            model=model, data=data, ctx=ctx, stepper=stepper, forget=self.forget, retain=self.retain,
            epochs=self.epochs, batch_size=self.batch_size,
            forget_batch_size=self.forget_batch_size or self.batch_size,
            schedule=lambda e: lr_multiplier(self.schedule, e, self.epochs, 1, self.milestones),
            schedules={p: schedules[p] for p in optimizers}, milestones=self.milestones,
        )
        model.train()
        self.rule.run(job)
        trainable, total = sum(int(v.sum()) for v in m.values()), sum(v.numel() for v in m.values())
        return {"mask_fraction_trainable": trainable / total, "steps": dict(stepper.steps)}
