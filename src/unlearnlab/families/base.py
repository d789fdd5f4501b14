"""The task-family interface: what depends on the modality, so that methods and rules do not.

A task family (classification, image generation, language modelling) owns how a user's data become batch sources,
the training loss its objectives build on, the named objectives it defines, how it checks a model, and its
evaluator. Methods name objectives (``"loss"``, ``"neg_loss"``, ``"random_labels"``, ...); the family resolves each
name to an objective class, so one preset (``rl``, ``salun+dualoptim``) runs on every family that defines its
objectives, and a rule never sees logits. docs/architecture.md ("Task families") and docs/extending.md.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnlab.data.tensors import Batch, Source, Transform, batch_size_of
from unlearnlab.errors import UnlearnlabError, unknown_name


class TaskFamily(ABC):
    """One modality: batches, loss, named objectives, model checks, evaluator."""

    name: ClassVar[str]
    #: the batch field a model is called on (``model(batch[input_field])``), None when the model takes several
    input_field: ClassVar[str | None] = None
    #: objective name → objective class (filled by the family module, extended by :meth:`register_objective`)
    objectives: ClassVar[dict[str, type]]
    #: whether a run can be shared across ranks (docs/scaling.md): the loss is a mean whose terms
    #: :meth:`weighted_loss` counts, the model is called through whatever wraps it, and per-sample random draws use
    #: the global batch (:func:`unlearnlab.distributed.batches.drawn_for`)
    distributed: ClassVar[bool] = True

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        """The family's training loss on ``batch``: a scalar (``"mean"``) or one value per sample (``"none"``)."""

    def weighted_loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int | torch.Tensor]:
        """``(loss, w)``: the mean training loss on ``batch`` and the number of terms it averages (default: the
        batch's rows; a family whose loss averages tokens says how many). A distributed run weighs each rank's
        share by w (docs/scaling.md)."""
        return self.loss(model, batch), batch_size_of(batch)

    @abstractmethod
    def as_source(self, obj: Any, role: str, device: torch.device) -> Source:
        """A user's data (``role`` = "forget", "retain", "test", ... names it in errors) as a batch source."""

    @abstractmethod
    def inspect(self, model: nn.Module, sources: Mapping[str, Source], task: Any = None) -> dict[str, Any]:
        """Check that ``model`` fits the family, the data (and ``task``, if given); return what objectives need
        (e.g. ``num_classes``)."""

    def start_run(self, model: nn.Module, ctx: Any) -> None:
        """Attach run-scoped state to the model a run will change, from the run's context ``ctx`` (a
        :class:`~unlearnlab.methods.base.RunContext`), before the run starts: e.g. the diffusion family seeds the
        noise stream its loss draws from. Default: nothing."""
        return None

    def transform(self, augment: bool) -> Transform | None:
        """The training transform of optimisation batches (``None``: batches as stored)."""
        return None

    def health(self, model: nn.Module, forget: Source, retain: Source) -> dict[str, float] | None:
        """Cheap utility/forgetting indicators of ``model`` (compared before and after unlearning); None: none."""
        return None

    def health_warnings(self, before: dict[str, float], after: dict[str, float]) -> list[str]:
        """Warnings when unlearning collapsed utility or did not move forgetting (from two :meth:`health`)."""
        return []

    @abstractmethod
    def evaluate(self, model: nn.Module, task: Any, reference: Any = None, **options: Any) -> Any:
        """The family's evaluation of ``model`` on ``task`` (metrics with named definitions)."""

    def objective(self, name: str) -> type:
        """The objective class registered under ``name`` for this family."""
        if name not in self.objectives:
            raise unknown_name(f"{self.name} objective", name, self.objectives)
        return self.objectives[name]

    def defines(self, names: list[str]) -> bool:
        return all(n in self.objectives for n in names)

    @classmethod
    def register_objective(cls, name: str) -> Callable[[type], type]:
        """Decorator: make an objective class available to this family's methods under ``name``."""

        def deco(objective: type) -> type:
            cls.objectives[name] = objective
            return objective

        return deco


_FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> TaskFamily:
    _FAMILIES[family.name] = family
    return family


def get_family(name: str | TaskFamily) -> TaskFamily:
    """A registered task family by name (``"classification"``, ``"generation"``, ``"language_model"``)."""
    if isinstance(name, TaskFamily):
        return name
    if name not in _FAMILIES:
        raise unknown_name("task family", name, _FAMILIES)
    return _FAMILIES[name]


def list_families(pattern: str | None = None) -> list[str]:
    return [n for n in _FAMILIES if pattern is None or fnmatch.fnmatch(n, pattern)]


def family_of(obj: Any, default: str = "classification") -> TaskFamily:
    """The family a task or data object declares (attribute ``family``), else ``default``."""
    declared = getattr(obj, "family", None)
    if declared is None:
        return get_family(default)
    if not isinstance(declared, (str, TaskFamily)):
        raise UnlearnlabError(f"{type(obj).__name__}.family must name a task family, got {declared!r}.")
    return get_family(declared)
