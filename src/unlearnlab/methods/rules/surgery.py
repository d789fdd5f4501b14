"""``surgery`` (UNGrad) and the paired forget/retain steps it shares with ``implicit_surgery`` (EUPMU).

With g_u = ∇L_u(θ; B_f) (forget objective, minimised) and g_r = ∇L_r(θ; B_r) (retain objective), each UNGrad step
uses the direction solving

    min_d ½‖d − g_u‖²   s.t.   ⟨g_r, d⟩ ≥ −ε                                                   (P)

in closed form (KKT): λ* = max(0, (−⟨g_r, g_u⟩ − ε) / ‖g_r‖²), d = g_u + λ*·g_r. ε is the allowed first-order
retain-loss increase per unit lr (ε = 0: one-sided PCGrad; ε < 0: a required decrease). d = g_u exactly (no
``0·g_r`` addition) when the constraint is inactive or ‖g_r‖² ≤ ``tiny``. Dot products are taken in float64.
With a mask and ``mask_before_surgery`` (default) both gradients are masked before λ*, so the applied direction
satisfies (P). Cost per step: forwards over B_f and B_r, two backward passes. docs/methods.md ("UNGrad").

Paired steps (:class:`PairedSteps`, docs/methods.md "EUPMU"): b_f = max(1, round(b·n_f/(n_f + n_r))),
b_r = b − b_f. An epoch is one shuffled pass over D_r in batches of b_r (⌈n_r/b_r⌉ steps) while the forget loader
cycles, reshuffled per pass and restarted per epoch. A forget objective that draws its own labels (RL) relabels D_f
once per epoch. Options shared by both rules:

* ``joint_forward``: one forward over cat(B_f, B_r) (BatchNorm statistics over the union, as the EUPMU code's mixed
  batches) instead of two calls (per-set statistics, the default);
* ``loss_scale``: "none", or "batch_share" (the reference code: L_u·b_f/b and L_r·b_r/b);
* ``max_epochs``: the forget objective acts only in epochs e < max_epochs (a host's forget-phase budget, e.g.
  SCRUB's); later steps minimise the retain objective alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from unlearnlab.data.tensors import Batch, iterate
from unlearnlab.distributed.batches import global_rows
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.base import Job, Rule
from unlearnlab.objectives import Objective

LOSS_SCALES = ("none", "batch_share")


def split_batch(batch_size: int, n_forget: int, n_retain: int) -> tuple[int, int]:
    """(b_f, b_r) = (max(1, round(b·n_f/n)), b − b_f) with n = n_f + n_r."""
    b_f = max(1, round(batch_size * n_forget / (n_forget + n_retain)))
    if batch_size - b_f < 1:
        raise UnlearnlabError(f"batch_size={batch_size} leaves no retain sample next to {b_f} forget samples: "
                              "raise it.")
    return b_f, batch_size - b_f


class JointForward:
    """One forward of the model over cat(B_f[key], B_r[key]); calling it with either half's input tensor returns
    that half's slice of the output, so objectives run unchanged on a shared forward."""

    def __init__(self, model: nn.Module, batch_f: Batch, batch_r: Batch, key: str):
        xf, xr = batch_f[key], batch_r[key]
        out = model(torch.cat([xf, xr]))
        self._parts = {id(xf): out[: len(xf)], id(xr): out[len(xf):]}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if id(x) not in self._parts:
            raise UnlearnlabError("With joint_forward an objective may call the model only on its own batch input.")
        return self._parts[id(x)]


@dataclass
class PairedSteps(Rule):
    """Shared machinery of the surgery rules (see module docstring)."""

    joint_forward: bool = False
    loss_scale: str = "none"
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.loss_scale not in LOSS_SCALES:
            raise UnlearnlabError(f"loss_scale must be one of {', '.join(LOSS_SCALES)}; got {self.loss_scale!r}.")
        if self.max_epochs is not None and self.max_epochs < 0:
            raise UnlearnlabError(f"max_epochs must be >= 0 (or None: every epoch), got {self.max_epochs}.")

    def forgets_in(self, epoch: int) -> bool:
        return self.max_epochs is None or epoch < self.max_epochs

    def pairs(self, job: Job) -> Iterator[tuple[int, Batch, Batch]]:
        """All ``(epoch, B_f, B_r)`` of the run; sets the epoch's lr multiplier, checks divergence, reports."""
        if job.forget is None:
            raise UnlearnlabError("Surgery rules need a forget objective.")
        if self.joint_forward and job.data.family.input_field is None:
            raise UnlearnlabError(f"joint_forward needs batches with one input field; the {job.data.family.name} "
                                  "family has none: use joint_forward=False.")
        data, ctx = job.data, job.ctx
        b_f, b_r = split_batch(job.batch_size, len(data.forget), len(data.retain))
        steps = -(-len(data.retain) // b_r)
        for epoch in range(job.epochs):
            job.stepper.set_multiplier(job.schedule(epoch))
            forget_iter = job.cycle("forget", b_f, job.source("forget"))
            retain = job.sharded(iterate(data.retain, b_r, ctx.generator("retain-loader"), True, data.transform))
            for i, retain_batch in enumerate(retain):
                yield epoch, next(forget_iter), retain_batch
                ctx.report((epoch + (i + 1) / steps) / job.epochs)
            job.stepper.end_epoch(f"{self.name} epoch {epoch}")

    def losses(self, job: Job, retain: Objective, batch_f: Batch, batch_r: Batch, forget: bool = True
               ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(ℓ_u, ℓ_r)`` of one pair (ℓ_u None when the forget objective is off), scaled by batch share if asked."""
        model = job.model
        if self.joint_forward:
            model = JointForward(job.net(), batch_f, batch_r, job.data.family.input_field)
        loss_u = job.forget(model, batch_f, job.ctx) if forget else None
        loss_r = retain(model, batch_r, job.ctx)
        if self.loss_scale == "batch_share":
            n_f, n_r = global_rows(batch_f), global_rows(batch_r)  # the global batch's shares on every rank
            loss_r = loss_r * (n_r / (n_f + n_r))
            loss_u = None if loss_u is None else loss_u * (n_f / (n_f + n_r))
        return loss_u, loss_r


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
class Surgery(PairedSteps):
    """UNGrad: explicit surgery with the closed-form λ* (two backward passes per step)."""

    epsilon: float = 0.0
    mask_before_surgery: bool = True
    tiny: float = 1e-30
    name: str = "surgery"
    internal: ClassVar[frozenset[str]] = frozenset({"name", "tiny"})
    loss_scaling: ClassVar[bool] = False  # two autograd.grad calls build the direction

    def run(self, job: Job) -> None:
        params = [p for p in job.model.parameters() if p.requires_grad]
        keep = self._keep(job, params)
        retain = job.retain_objective()
        for epoch, batch_f, batch_r in self.pairs(job):
            loss_u, loss_r = self.losses(job, retain, batch_f, batch_r, self.forgets_in(epoch))
            if loss_u is None:
                job.stepper.step(loss_r, "joint")
                continue
            g_u = flat_grad(loss_u, params, retain_graph=True)
            g_r = flat_grad(loss_r, params)
            if job.dist is not None:  # autograd.grad bypasses DDP: average the ranks' shares here
                job.dist.all_mean_(g_u)
                job.dist.all_mean_(g_r)
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
