"""MinNorm-OG's loss J and the objectives of its paper's own baselines (docs/methods.md, "MinNorm-OG baselines").

J: for a classifier, Σ over heads of the mean CE on logits clamped to [−``logit_clamp``, ``logit_clamp``]; for a
regression model (``loss_type="regression"``), the MSE. A model may return one tensor or a tuple of heads, and
labels then have one column per head. The teacher θ* of NPO and the SCRUB variant is frozen in eval mode (the
reference code's train-mode teacher is the compatibility flag ``teacher_train_mode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import Batch
from unlearnlab.distributed.batches import drawn_for
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families.classification import distill_kl
from unlearnlab.methods.minnorm import LOSS_TYPES, head_labels, heads_of
from unlearnlab.objectives import Objective


@dataclass
class PaperLoss(Objective):
    """J: classifier = Σ_heads mean CE on logits clamped to [−clamp, clamp]; regression = MSE. ``sign`` −1: −J."""

    loss_type: str = "classifier"
    logit_clamp: float | None = 30.0
    sign: float = 1.0

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise UnlearnlabError(f"Unknown loss_type {self.loss_type!r}: use one of {', '.join(LOSS_TYPES)}.")

    @property
    def can_be_negative(self) -> bool:
        return self.sign < 0

    def __call__(self, model, batch, ctx):
        x, y = batch["x"], batch["y"]
        out = model(x)
        if self.loss_type == "regression":
            return self.sign * F.mse_loss(out, y.to(out.dtype).view_as(out))
        heads = heads_of(out)
        labels = head_labels(y, len(heads))
        loss = 0.0
        for h, z in enumerate(heads):
            if self.logit_clamp is not None:
                z = z.clamp(-self.logit_clamp, self.logit_clamp)
            loss = loss + F.cross_entropy(z, labels[:, h])
        return self.sign * loss


def clamp_logits(z: torch.Tensor, clamp: float | None) -> torch.Tensor:
    return z if clamp is None else z.clamp(-clamp, clamp)


def teacher_heads(teacher: nn.Module, x: torch.Tensor, train_mode: bool = False) -> tuple[torch.Tensor, ...]:
    """The frozen teacher's logits per head, without gradient; eval mode unless ``train_mode`` (compat flag)."""
    if teacher is None:
        raise UnlearnlabError("This objective needs a teacher (the frozen original); none was attached.")
    teacher.train(train_mode)
    with torch.no_grad():
        return heads_of(teacher(x))


def npo_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """(2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β) for one head, π = softmax probability of the label y.

    Computed stably as (2/β)·mean softplus(β·(log π_θ − log π_θ*)).
    """
    log_ratio = (F.log_softmax(student, 1).gather(1, labels[:, None])
                 - F.log_softmax(teacher, 1).gather(1, labels[:, None])).flatten()
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


@dataclass
class PaperNPO(Objective):
    """NPO : Σ_heads (2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β), β = λ_reg.

    Student logits clamped to ±``logit_clamp``; teacher θ* frozen, eval mode, no gradient .
    """

    beta: float = 0.1
    logit_clamp: float | None = 30.0
    needs_teacher: ClassVar[bool] = True

    def __post_init__(self):
        if not self.beta > 0:
            raise UnlearnlabError(f"NPO: beta (reg_coef) must be > 0, got {self.beta}.")

    def __call__(self, model, batch, ctx):
        x, y = batch["x"], batch["y"]
        heads = heads_of(model(x))
        labels = head_labels(y, len(heads))
        t_heads = teacher_heads(self.teacher, x)
        return sum(npo_loss(clamp_logits(z, self.logit_clamp), t, labels[:, h], self.beta)
                   for h, (z, t) in enumerate(zip(heads, t_heads)))


@dataclass
class PaperDistill(Objective):
    """``ce_weight``·J(B) + ``kl_weight``·Σ_heads KL(p_teacher ‖ p_student) on one student forward (SCRUB).

    KL = ``kl_div(log_softmax(student), softmax(teacher), reduction="batchmean")`` (``distill_kl`` at T = 1);
    student logits clamped, teacher frozen in eval mode (``teacher_train_mode`` reproduces the reference).
    Min phase: ce_weight 1, kl_weight λ_reg; max phase: ce_weight 0, kl_weight −λ_GA.
    """

    kl_weight: float = 1.0
    ce_weight: float = 0.0
    logit_clamp: float | None = 30.0
    teacher_train_mode: bool = False
    needs_teacher: ClassVar[bool] = True

    @property
    def can_be_negative(self) -> bool:
        return self.kl_weight < 0

    def stats(self) -> dict[str, Any]:
        return {"compat": ["teacher_train_mode"]} if self.teacher_train_mode else {}

    def __call__(self, model, batch, ctx):
        x, y = batch["x"], batch["y"]
        heads = [clamp_logits(z, self.logit_clamp) for z in heads_of(model(x))]
        t_heads = teacher_heads(self.teacher, x, self.teacher_train_mode)
        loss = self.kl_weight * sum(distill_kl(z, t, 1.0) for z, t in zip(heads, t_heads))
        if self.ce_weight:
            labels = head_labels(y, len(heads))
            loss = loss + self.ce_weight * sum(F.cross_entropy(z, labels[:, h]) for h, z in enumerate(heads))
        return loss


def wrong_labels(y: torch.Tensor, classes: int, generator: torch.Generator, batch: Batch | None = None
                 ) -> torch.Tensor:
    """A label ≠ y per example, uniform over the other ``classes`` − 1: (y + U{1..C−1}) mod C.

    With ``batch`` (the batch ``y`` comes from) a rank of a distributed run draws for the global batch and keeps its
    rows (:func:`~unlearnlab.distributed.batches.drawn_for`): the labels of a single-device run.
    """
    if classes < 2:
        raise UnlearnlabError("A wrong label needs at least 2 classes.")
    if batch is None:
        offset = torch.randint(1, classes, y.shape, generator=generator)
    else:
        offset = drawn_for(batch, lambda n: torch.randint(1, classes, (n, *y.shape[1:]), generator=generator))
    return (y + offset.to(y.device)) % classes


@dataclass
class PaperWrongLabel(Objective):
    """``weight``·Σ_heads CE(f(x), ỹ), ỹ a wrong label per head, drawn uniformly per example per step (SalUn)."""

    weight: float = 1.0
    logit_clamp: float | None = 30.0

    def __call__(self, model, batch, ctx):
        heads = heads_of(model(batch["x"]))
        labels = head_labels(batch["y"], len(heads))
        gen = ctx.generator("wrong-labels")
        return self.weight * sum(
            F.cross_entropy(clamp_logits(z, self.logit_clamp), wrong_labels(labels[:, h], z.shape[1], gen, batch))
            for h, z in enumerate(heads))
