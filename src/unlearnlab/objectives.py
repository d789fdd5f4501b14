"""Objectives: ``objective(model, batch, ctx) -> scalar loss to minimise``, over batches of any task family.

An objective sees a batch (a dict of tensors) and the run context; the modality-specific part of a loss comes
from the task family (``ctx.family.loss``), so the generic objectives here serve classifiers, diffusion models and
language models alike. Family-specific objectives (random labels, distillation, NPO, ...) live with their family
and are registered there under a name. The math of every objective is in docs/methods.md.

Hooks: :meth:`Objective.bind` runs once before the rule (a teacher copy, horizons); :meth:`Objective.start_epoch`
may transform the forget or retain source at the start of each epoch (per-epoch relabelling).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from unlearnlab.components import Component
from unlearnlab.data.tensors import Batch, Source, batch_size_of

if TYPE_CHECKING:
    from unlearnlab.methods.base import RunContext
    from unlearnlab.methods.rules.base import Job


class Objective(Component, ABC):
    """Base class. ``needs_teacher`` objectives get ``teacher``: a frozen eval copy of the model before unlearning."""

    needs_teacher: ClassVar[bool] = False
    #: whether the loss is a mean of terms (samples, or tokens: :meth:`weighted`) over the batch, so that the ranks
    #: of a distributed run can combine their shares into the global-batch loss (docs/scaling.md); False refuses
    #: distributed runs
    sample_mean: ClassVar[bool] = True
    #: whether the loss depends on every parameter of the model (RMU's loss on the hidden state after a layer does
    #: not reach the later blocks): False tells a DDP run to look for parameters left without a gradient
    reaches_every_parameter: ClassVar[bool] = True
    internal: ClassVar[frozenset[str]] = frozenset({"sign", "per"})
    teacher: nn.Module | None = None

    @property
    def can_be_negative(self) -> bool:
        """Whether the loss can be ≤ 0 (a log transform of it is then undefined; EUPMU checks this)."""
        return False

    @property
    def relabels(self) -> bool:
        """Whether this objective draws labels of its own (RL), which surgery rules draw once per epoch."""
        return False

    def per_epoch(self) -> Objective:
        """This objective drawing its own labels once per epoch instead of per batch (itself if it draws none)."""
        return self

    def bind(self, job: Job) -> None:
        """Called once before the rule runs: attach the teacher (one per run, shared by the objectives)."""
        if self.needs_teacher:
            self.teacher = job.teacher()

    def start_epoch(self, source: Source, ctx: RunContext) -> Source:
        """The source this objective's side iterates in the coming epoch (default: unchanged)."""
        return source

    @abstractmethod
    def __call__(self, model: nn.Module, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """The batch loss to minimise."""

    def weighted(self, model: nn.Module, batch: Batch, ctx: RunContext) -> tuple[torch.Tensor, int | torch.Tensor]:
        """``(loss, w)``: the batch loss and w, the number of terms it averages — the batch's rows for a mean over
        samples (this default), its answer tokens for a mean over tokens. The ranks of a distributed run combine
        their shares' losses ℓ_k into the global-batch loss Σ_k w_k·ℓ_k / Σ_k w_k (docs/scaling.md)."""
        return self(model, batch, ctx), batch_size_of(batch)


class TermMean(Objective):
    """An objective that computes its loss together with the number of terms it averages — tokens, positions, or
    whatever its family's loss averages: it implements :meth:`weighted`, and calling it returns the loss alone."""

    def __call__(self, model: nn.Module, batch: Batch, ctx: RunContext) -> torch.Tensor:
        return self.weighted(model, batch, ctx)[0]

    @abstractmethod
    def weighted(self, model: nn.Module, batch: Batch, ctx: RunContext) -> tuple[torch.Tensor, int | torch.Tensor]:
        """``(loss, number of terms it averages)`` (see :meth:`Objective.weighted`)."""


@dataclass
class FamilyLoss(TermMean):
    """The family's training loss L(f, B) (``"loss"``: FT, the retain side of most methods) or its negation
    −L(f, B) (``"neg_loss"``: gradient ascent, the forget side of GA and NegGrad+)."""

    sign: float = 1.0

    def __post_init__(self) -> None:
        if self.sign not in (1.0, -1.0):
            raise ValueError(f"FamilyLoss sign must be +1 or -1, got {self.sign}.")

    @property
    def can_be_negative(self) -> bool:
        return self.sign < 0

    def weighted(self, model, batch, ctx):
        loss, weight = ctx.family.weighted_loss(model, batch)
        return (loss if self.sign > 0 else -loss), weight


def NegativeLoss() -> FamilyLoss:
    """−L(f, B): gradient ascent on the family's loss."""
    return FamilyLoss(sign=-1.0)


def adaptive_weights(losses: torch.Tensor, lam: float) -> torch.Tensor:
    """w_i = (ℓ_i^λ + 1e-15)⁻¹ normalised to sum 1, detached: low-loss samples weigh most (SFR-on)."""
    inv = 1.0 / (losses.detach() ** lam + 1e-15)
    return inv / inv.sum()


@dataclass
class WeightedAscent(Objective):
    """SFR-on's forget objective: −α_t·Σ_i w_i·ℓ_i with ℓ_i the family's per-sample loss, w_i
    :func:`adaptive_weights` (λ = ``lam``), α_t = α_0·(1 + cos(πt/N))/2, t = j·``every`` at the j-th call and N the
    rule's horizon (set in :meth:`bind` from the rule's iteration count)."""

    alpha0: float = 25.0
    lam: float = 0.5
    internal: ClassVar[frozenset[str]] = frozenset({"total", "every", "calls"})
    sample_mean: ClassVar[bool] = False  # the weights are normalised over the batch
    total: int = 1
    every: int = 1
    calls: int = 0

    @property
    def can_be_negative(self) -> bool:
        return True

    def bind(self, job: Job) -> None:
        super().bind(job)
        self.calls = 0
        self.total, self.every = job.rule.forget_clock(job)

    def alpha_t(self, t: int) -> float:
        return self.alpha0 * 0.5 * (1.0 + math.cos(math.pi * t / self.total))

    def __call__(self, model, batch, ctx):
        losses = ctx.family.loss(model, batch, reduction="none")
        t = self.calls * self.every
        self.calls += 1
        return -self.alpha_t(t) * (adaptive_weights(losses, self.lam) * losses).sum()


#: objectives every family defines (families add their own)
GENERIC_OBJECTIVES: dict[str, Any] = {"loss": FamilyLoss, "neg_loss": NegativeLoss, "weighted_ascent": WeightedAscent}
