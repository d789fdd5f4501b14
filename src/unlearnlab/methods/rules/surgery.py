"""``surgery`` (UNGrad, eupmu.md §2) and the paired forget/retain batching shared with ``implicit_surgery``.

With g_u = ∇L_u(θ; B_f) (forget objective, minimised) and g_r = ∇L_r(θ; B_r) (retain objective), each step
uses the direction solving

    min_d ½‖d − g_u‖²   s.t.   ⟨g_r, d⟩ ≥ −ε                                                   (P)

in closed form (KKT): λ* = max(0, (−⟨g_r, g_u⟩ − ε) / ‖g_r‖²), d = g_u + λ*·g_r. ε is the allowed first-order
retain-loss increase per unit lr (ε = 0: one-sided PCGrad; ε < 0: a required decrease). d = g_u exactly (no
``0·g_r`` addition) when the constraint is inactive or ‖g_r‖² ≤ ``tiny``. Dot products are taken in float64.
With a mask and ``mask_before_surgery`` (default) both gradients are masked before λ*, so the applied direction
satisfies (P). Cost per step: forwards over B_f and B_r, two backward passes.

Batching (docs/methods.md, "EUPMU"): b_f = max(1, round(b·n_f/(n_f + n_r))), b_r = b − b_f. An epoch is one
shuffled pass over D_r in batches of b_r (⌈n_r/b_r⌉ steps) while the forget loader cycles, reshuffled per pass
and restarted per epoch. A forget objective that draws its own labels (RL) is asked to relabel D_f once per epoch
(:meth:`~unlearnlab.objectives.Objective.start_epoch`); the surgery presets build it that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from unlearnlab.data.tensors import Batch, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.base import Job, Rule


def split_batch(batch_size: int, n_forget: int, n_retain: int) -> tuple[int, int]:
    """(b_f, b_r) = (max(1, round(b·n_f/n)), b − b_f) with n = n_f + n_r."""
    b_f = max(1, round(batch_size * n_forget / (n_forget + n_retain)))
    if batch_size - b_f < 1:
        raise UnlearnlabError(f"batch_size={batch_size} leaves no retain sample next to {b_f} forget samples: "
                              "raise it.")
    return b_f, batch_size - b_f


def paired_batches(job: Job, name: str) -> Iterator[tuple[Batch, Batch]]:
    """All ``(B_f, B_r)`` pairs of the run; sets the epoch's lr multiplier, checks divergence, reports."""
    if job.forget is None:
        raise UnlearnlabError("Surgery rules need a forget objective.")
    data, ctx = job.data, job.ctx
    b_f, b_r = split_batch(job.batch_size, len(data.forget), len(data.retain))
    steps = -(-len(data.retain) // b_r)
    for epoch in range(job.epochs):
        job.stepper.set_multiplier(job.schedule(epoch))
        forget_iter = job.cycle("forget", b_f, job.source("forget"))
        retain = iterate(data.retain, b_r, ctx.generator("retain-loader"), True, data.transform)
        for i, retain_batch in enumerate(retain):
            yield next(forget_iter), retain_batch
            ctx.report((epoch + (i + 1) / steps) / job.epochs)
        job.stepper.end_epoch(f"{name} epoch {epoch}")


def surgery_direction(g_u: torch.Tensor, g_r: torch.Tensor, epsilon: float,
                      tiny: float = 1e-30) -> tuple[torch.Tensor, float]:
    """(d, λ*) for flat gradients: d = g_u if λ* = 0, else g_u + λ*·g_r (see module docstring)."""
    sq = torch.dot(g_r.double(), g_r.double())
    if float(sq) <= tiny:
        return g_u, 0.0
    lam = max(0.0, float((-torch.dot(g_r.double(), g_u.double()) - epsilon) / sq))
    return (g_u, 0.0) if lam == 0.0 else (g_u + lam * g_r, lam)


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor], retain_graph: bool = False) -> torch.Tensor:
    """∇loss over ``params`` as one vector (zeros for parameters the loss does not reach)."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])


@dataclass
class Surgery(Rule):
    """UNGrad: explicit surgery with the closed-form λ* (two backward passes per step)."""

    epsilon: float = 0.0
    mask_before_surgery: bool = True
    tiny: float = 1e-30
    name: str = "surgery"

    def run(self, job: Job) -> None:
        params = [p for p in job.model.parameters() if p.requires_grad]
        keep = self._keep(job, params)
        retain = job.retain_objective()
        for batch_f, batch_r in paired_batches(job, self.name):
            loss_u = job.forget(job.model, batch_f, job.ctx)
            loss_r = retain(job.model, batch_r, job.ctx)
            g_u = flat_grad(loss_u, params, retain_graph=True)
            g_r = flat_grad(loss_r, params)
            if keep is not None:
                g_u, g_r = g_u * keep, g_r * keep
            d, _ = surgery_direction(g_u, g_r, self.epsilon, self.tiny)
            for p, g in zip(params, d.split([p.numel() for p in params])):
                p.grad = g.view_as(p).clone()
            job.stepper.apply("joint", loss_u.detach() + loss_r.detach())

    def _keep(self, job: Job, params: list[torch.Tensor]) -> torch.Tensor | None:
        """The flat 0/1 mask over ``params`` when gradients are masked before the surgery, else None."""
        mask = job.stepper.mask
        if mask is None or not self.mask_before_surgery or not mask.applies_to("joint"):
            return None
        by_param = {id(p): m for p, m in mask.items}
        return torch.cat([by_param.get(id(p), torch.ones_like(p, dtype=torch.bool)).flatten().to(p.dtype)
                          for p in params])
