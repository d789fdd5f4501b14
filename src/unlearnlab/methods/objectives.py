"""Forget and retain objectives: ``objective(model, x, y, ctx) -> scalar loss to minimise``.

Notation (specs/README.md legend): CE = mean cross-entropy over the batch; KL_T(x) =
T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)) averaged over the batch, z_T the frozen teacher's logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.methods.base import RunContext


class Objective(ABC):
    """Base class. ``needs_teacher`` objectives receive ``teacher`` (a frozen eval copy of the original)."""

    needs_teacher = False
    teacher: nn.Module | None = None

    @property
    def can_be_negative(self) -> bool:
        """Whether the loss can be ≤ 0 (a log transform of it is then undefined; EUPMU checks this)."""
        return False

    @abstractmethod
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """The batch loss to minimise."""


@dataclass
class CrossEntropy(Objective):
    """CE(f(x), y): FT, the retain side of most methods."""

    def __call__(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y)


@dataclass
class NegativeCrossEntropy(Objective):
    """−CE(f(x), y) with the true labels: gradient ascent (GA, NegGrad+ forget side)."""

    can_be_negative = True  # type: ignore[assignment]

    def __call__(self, model, x, y, ctx):
        return -F.cross_entropy(model(x), y)


@dataclass
class RandomLabelCE(Objective):
    """CE(f(x), ỹ), ỹ ~ Uniform{0..C−1} drawn fresh per batch (may equal y): RL, SalUn (baselines §4)."""

    num_classes: int

    def __call__(self, model, x, y, ctx):
        labels = torch.randint(0, self.num_classes, y.shape, generator=ctx.generator("random-labels"))
        return F.cross_entropy(model(x), labels.to(y.device))


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)), averaged over the batch (SCRUB's DistillKL)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


@dataclass
class TeacherKL(Objective):
    """``sign``·KL_T(x) to the frozen original: SCRUB's max phase uses sign −1 (move away from the teacher)."""

    temperature: float = 1.0
    sign: float = -1.0
    needs_teacher = True

    @property
    def can_be_negative(self) -> bool:
        return self.sign < 0

    def __call__(self, model, x, y, ctx):
        with torch.no_grad():
            z_t = self.teacher(x)
        return self.sign * distill_kl(model(x), z_t, self.temperature)


@dataclass
class ScrubRetain(Objective):
    """γ·CE(f(x_r), y_r) + α·KL_T(x_r): SCRUB's min phase (baselines §8)."""

    gamma: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    needs_teacher = True

    def __call__(self, model, x, y, ctx):
        z_s = model(x)
        with torch.no_grad():
            z_t = self.teacher(x)
        return self.gamma * F.cross_entropy(z_s, y) + self.alpha * distill_kl(z_s, z_t, self.temperature)
