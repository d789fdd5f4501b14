"""The classification family: batches ``{"x", "y"}``, mean cross-entropy, class-logit objectives.

Loss: CE(f(x), y) = mean_i −log softmax(f(x_i))_{y_i}. Objectives it adds to the generic ones (docs/methods.md):

* ``random_labels`` (:class:`RandomLabelCE`): CE(f(x), ỹ) with ỹ ~ Uniform{0..C−1} (may equal y), drawn fresh per
  batch (RL, SalUn) or once per epoch over D_f (``per="epoch"``, the surgery rules' relabelling);
* ``teacher_kl`` (:class:`TeacherKL`): sign·KL_T to the frozen original, SCRUB's max phase (sign −1);
* ``scrub_retain`` (:class:`ScrubRetain`): γ·CE + α·KL_T on retain batches, SCRUB's min phase;

with KL_T(x) = T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)) averaged over the batch, z_T the teacher's logits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.inputs import as_source, check_labels
from unlearnlab.data.tensors import Source, TensorData, Transform, augment_images
from unlearnlab.distributed.batches import drawn_for
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import evaluate, predictions
from unlearnlab.families.base import TaskFamily, register_family
from unlearnlab.metrics.accuracy import accuracy
from unlearnlab.objectives import GENERIC_OBJECTIVES, Objective


class Classification(TaskFamily):
    name = "classification"
    input_field = "x"
    objectives: ClassVar[dict[str, Any]] = dict(GENERIC_OBJECTIVES)

    def loss(self, model: nn.Module, batch, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(model(batch["x"]), batch["y"], reduction=reduction)

    def as_source(self, obj: Any, role: str, device: torch.device) -> Source:
        return as_source(obj, role, device)

    def transform(self, augment: bool) -> Transform | None:
        return augment_images if augment else None

    def evaluate(self, model: nn.Module, task: Any, reference: Any = None, **options: Any) -> Any:
        return evaluate(model, task, reference, **options)

    def health(self, model: nn.Module, forget: Source, retain: Source) -> dict[str, float]:
        """Top-1 accuracy (%) on up to 1,024 forget and 1,024 retain samples (stored order)."""
        out = {}
        for name, source in (("forget", forget), ("retain", retain)):
            if isinstance(source, TensorData) and len(source):
                probs, labels = predictions(model, source.subset(torch.arange(min(1024, len(source)))))
                out[name] = accuracy(probs, labels)
        return out

    def health_warnings(self, before: dict[str, float], after: dict[str, float]) -> list[str]:
        """Retain accuracy fell by more than half (collapse), or forget accuracy moved by less than 0.5 points."""
        warns = []
        if "retain" in before and after["retain"] < 0.5 * before["retain"]:
            warns.append(f"retain accuracy collapsed from {before['retain']:.1f} % to {after['retain']:.1f} %: lower "
                         "the learning rate or the number of epochs (defaults are calibrated on the digits MLP; "
                         "`unlearnlab tune` searches them for your model).")
        if "forget" in before and abs(after["forget"] - before["forget"]) < 0.5 and before["forget"] > 0:
            warns.append(f"forget accuracy did not move ({before['forget']:.1f} % → {after['forget']:.1f} %): the "
                         "method may be too weak for this model (raise the learning rate or epochs, or tune it).")
        return warns

    def inspect(self, model: nn.Module, sources: Mapping[str, Source], task: Any = None) -> dict[str, Any]:
        """``{"num_classes": C}`` after checking the model returns logits ``[batch, C]`` (C = the task's classes)
        and labels lie in [0, C)."""
        ordered = sorted(sources.items(), key=lambda kv: kv[0] != "retain")  # retain first: the probability check
        outs = [_probe(model, _head(s)) for _, s in ordered if len(s)]
        classes = outs[0].shape[1]
        expected = getattr(task, "num_classes", None)
        if expected is not None and classes != expected:
            raise UnlearnlabError(
                f"The model has {classes} outputs but the task has {expected} classes: give the model a final layer "
                f"with {expected} outputs.")
        for role, source in sources.items():
            if isinstance(source, TensorData):
                check_labels(source, classes, role)
        return {"num_classes": classes}


def _head(source: Source) -> torch.Tensor:
    """The first two inputs of ``source`` (read directly from memory; a stream yields its first batch)."""
    if isinstance(source, TensorData):
        return source.fields["x"][:2]
    return next(iter(source.batches(2, shuffle=False)))["x"]


def _probe(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's eval-mode output on ``x``; refuses non-classifier outputs and probabilities."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as err:
        raise UnlearnlabError(
            f"The model cannot take inputs of shape {tuple(x.shape[1:])}: {err}. Pass data shaped as the model "
            "expects."
        ) from err
    finally:
        for module, flag in modes:
            module.training = flag
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UnlearnlabError(f"The model returns {shape}: a classifier must return logits [batch, classes].")
    if out.shape[1] > 1 and bool(((out >= 0) & (out <= 1)).all()) and bool(
            torch.allclose(out.sum(1), torch.ones(len(out), dtype=out.dtype, device=out.device), atol=1e-4)):
        raise UnlearnlabError(
            "The model returns probabilities (outputs in [0, 1] that sum to 1 per row), not logits: the losses of "
            "unlearning (cross-entropy, KL) expect logits. Remove the final softmax layer (keep log-softmax if you "
            "need it: it is a valid logit)."
        )
    return out


@dataclass
class RandomLabelCE(Objective):
    """CE(f(x), ỹ), ỹ ~ Uniform{0..C−1} (may equal y): fresh per batch, or once per epoch with ``per="epoch"``.

    Labels come from the run's ``random-labels`` generator (CPU), C from the model's output width; a rank of a
    distributed run draws the global batch's labels and keeps its rows (:func:`~unlearnlab.distributed.batches.
    drawn_for`), so every sample gets the label it gets on one device.
    """

    per: str = "batch"
    num_classes: int | None = None
    internal: ClassVar[frozenset[str]] = frozenset({"per", "num_classes"})

    def __post_init__(self) -> None:
        if self.per not in ("batch", "epoch"):
            raise ValueError(f"RandomLabelCE per must be 'batch' or 'epoch', got {self.per!r}.")

    @property
    def relabels(self) -> bool:
        return True

    def per_epoch(self) -> RandomLabelCE:
        return dataclasses.replace(self, per="epoch")

    def bind(self, job) -> None:
        super().bind(job)
        if self.num_classes is None:
            self.num_classes = job.data.info["num_classes"]

    def start_epoch(self, source, ctx):
        if self.per != "epoch":
            return source
        if not isinstance(source, TensorData):
            raise UnlearnlabError("Relabelling once per epoch needs the forget set in memory, not streamed.")
        labels = torch.randint(0, self.num_classes, (len(source),), generator=ctx.generator("random-labels"))
        return source.replace(y=labels.to(source.y.device))

    def __call__(self, model, batch, ctx):
        if self.per == "epoch":
            return F.cross_entropy(model(batch["x"]), batch["y"])
        y, gen = batch["y"], ctx.generator("random-labels")
        labels = drawn_for(batch, lambda n: torch.randint(0, self.num_classes, (n, *y.shape[1:]), generator=gen))
        return F.cross_entropy(model(batch["x"]), labels.to(y.device))


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)), averaged over the batch (SCRUB's distillation loss)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


@dataclass
class TeacherKL(Objective):
    """``sign``·KL_T(x) to the frozen original: SCRUB's max phase uses sign −1 (move away from the teacher)."""

    temperature: float = 1.0
    sign: float = -1.0
    needs_teacher: ClassVar[bool] = True

    @property
    def can_be_negative(self) -> bool:
        return self.sign < 0

    def __call__(self, model, batch, ctx):
        x = batch["x"]
        with torch.no_grad():
            z_t = self.teacher(x)
        return self.sign * distill_kl(model(x), z_t, self.temperature)


@dataclass
class ScrubRetain(Objective):
    """γ·CE(f(x_r), y_r) + α·KL_T(x_r): SCRUB's min phase."""

    gamma: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    needs_teacher: ClassVar[bool] = True

    def __call__(self, model, batch, ctx):
        x = batch["x"]
        z_s = model(x)
        with torch.no_grad():
            z_t = self.teacher(x)
        return self.gamma * F.cross_entropy(z_s, batch["y"]) + self.alpha * distill_kl(z_s, z_t, self.temperature)


Classification.objectives.update({"random_labels": RandomLabelCE, "teacher_kl": TeacherKL,
                                  "scrub_retain": ScrubRetain})
CLASSIFICATION = register_family(Classification())
