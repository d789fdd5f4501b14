"""The interface every unlearning method implements, and the data/context it receives.

An :class:`Unlearner` changes a model in place given :class:`UnlearnData` (D_f and D_r as batch sources, the task
family and what it found about the model) and a :class:`RunContext` (seed-derived generators, cost counters,
progress). Iterative methods are compositions (objectives × update rule + modifiers,
:mod:`unlearnlab.methods.method`); one-shot methods (retrain, influence, ...) implement :meth:`Unlearner.run`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from unlearnlab.counting import Counters, CountingHooks
from unlearnlab.data.tensors import Source, Transform
from unlearnlab.families import TaskFamily, get_family
from unlearnlab.utils import torch_generator

if TYPE_CHECKING:
    from unlearnlab.distributed.runtime import Runtime


@dataclass
class UnlearnData:
    """What a method may use: the forget and retain sets (never the test set), the family and model facts.

    ``info`` holds what the family's :meth:`~unlearnlab.families.TaskFamily.inspect` found (e.g. ``num_classes``);
    ``transform`` is the training transform of optimisation batches (``None``: as stored).
    """

    forget: Source
    retain: Source
    family: TaskFamily | str = "classification"
    info: dict[str, Any] = field(default_factory=dict)
    transform: Transform | None = None

    def __post_init__(self) -> None:
        self.family = get_family(self.family)

    @property
    def num_classes(self) -> int:
        return self.info["num_classes"]


@dataclass
class RunContext:
    """Per-run state shared by the parts of a method."""

    seed: int
    counters: Counters = field(default_factory=Counters)
    progress: Callable[[float], None] | None = None
    family: TaskFamily | str = "classification"
    #: this rank of a distributed run (None: one process; docs/scaling.md)
    dist: Runtime | None = None
    _generators: dict[str, torch.Generator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.family = get_family(self.family)

    def generator(self, component: str) -> torch.Generator:
        """A CPU generator seeded from (seed, component), one per component name for the whole run."""
        if component not in self._generators:
            self._generators[component] = torch_generator(self.seed, component)
        return self._generators[component]

    def report(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress(min(1.0, max(0.0, fraction)))


def frozen_copy(model: nn.Module, counters: Counters | None = None) -> nn.Module:
    """A deep copy in eval mode with gradients off (teachers, reference models).

    The user's own hooks stay (a pre-hook that normalises inputs must act on the teacher too); only unlearnlab's
    cost-counting hooks are removed, and with ``counters`` the copy's forwards are counted there, so a teacher's
    cost shows in the run's ``forward_samples``.
    """
    teacher = copy.deepcopy(model).eval()
    for module in teacher.modules():
        for hook_id, hook in list(module._forward_hooks.items()):
            if isinstance(getattr(hook, "__self__", None), CountingHooks):
                del module._forward_hooks[hook_id]
    for p in teacher.parameters():
        p.requires_grad_(False)
    if counters is not None:
        CountingHooks(teacher, counters)
    return teacher


class Unlearner(ABC):
    """An unlearning method with resolved hyperparameters."""

    #: batch size and mixed precision of the method's training steps (the RTE warm-up uses the same)
    batch_size: int = 64
    precision: str = "auto"

    @abstractmethod
    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        """Unlearn in place; return method-specific statistics (JSON-serialisable)."""
