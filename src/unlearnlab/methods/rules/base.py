"""Shared step machinery for update rules: the :class:`Stepper` and the :class:`Job` a rule runs.

:class:`Stepper` performs one optimizer step for a named phase (``"forget"``, ``"retain"`` or ``"joint"``) in a fixed
order: backward (outside autocast; loss-scaled under fp16) → unscale → the modifiers' gradient hooks in their order
(gradient noise, mask, clip) → the modifiers' pre-step hooks (mask snapshots) → optimizer step → the post-step hooks
(restore frozen entries, decay penalties) → counters (docs/architecture.md, "One step"). A step the fp16 gradient
scaler skips (non-finite gradients) advances nothing: no post-step hook, no counter, no rule state. Each phase maps to
an optimizer: the shared mode maps every phase to one object (one state), DualOptim maps ``"forget"`` and ``"retain"``
to two optimizers over the same parameters. The lr of a phase is ``base_lr[phase] × multiplier[phase]``; the
multipliers come from each phase's scheduler on the rule's global clock (:meth:`Job.set_clock`) or from
:meth:`Stepper.set_multiplier`.

In a distributed run (docs/scaling.md) :func:`unlearnlab.distributed.unlearning.prepare` sets :attr:`Job.dist`:
from then on the job's loaders yield this rank's share of each global batch and its objectives return
global-batch means; with ``dist`` None (one process) nothing here changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from unlearnlab.components import Component
from unlearnlab.data.tensors import Batch, Source, cycle, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData, frozen_copy
from unlearnlab.objectives import FamilyLoss, Objective
from unlearnlab.training import Precision, check_finite, lr_multiplier

if TYPE_CHECKING:
    from unlearnlab.distributed.runtime import Runtime
    from unlearnlab.methods.modifiers.base import Modifier


def scaled(weight: float, loss: torch.Tensor) -> torch.Tensor:
    """``weight · loss``; the loss itself when ``weight == 1`` (multiplying by 1 is exact in floating point, forward
    and backward, so skipping it changes no value and saves an operation and its backward per step)."""
    return loss if weight == 1 else weight * loss


class Stepper:
    """One optimizer step for a phase, with the modifiers' hooks and divergence tracking."""

    def __init__(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                 base_lr: dict[str, float], ctx: RunContext, modifiers: Sequence[Modifier] = (),
                 precision: Precision | None = None):
        self.model = model
        self.precision = precision or Precision("fp32", torch.device("cpu"))
        self.optimizers = optimizers
        self.base_lr = base_lr
        self.ctx = ctx
        self.modifiers = sorted(modifiers, key=lambda m: m.order)
        self.multipliers = dict.fromkeys(optimizers, 1.0)
        self.steps = dict.fromkeys(optimizers, 0)
        self.loss_sum = torch.zeros(())

    @property
    def mask(self) -> Any:
        """The exact mask in force (a mask modifier's :class:`~unlearnlab.methods.masks.ExactMask`), or None."""
        for m in self.modifiers:
            exact = getattr(m, "exact", None)
            if exact is not None:
                return exact
        return None

    def set_multiplier(self, multiplier: float) -> None:
        """Scale every phase's base lr by one factor (the rule's schedule)."""
        self.multipliers = dict.fromkeys(self.optimizers, multiplier)

    def set_multipliers(self, multipliers: dict[str, float]) -> None:
        """Scale each named phase's base lr by its own factor (per-optimizer schedulers)."""
        self.multipliers.update(multipliers)

    def lr(self, phase: str) -> float:
        return self.base_lr[phase] * self.multipliers[phase]

    def step(self, loss: torch.Tensor, phase: str) -> bool:
        """Backpropagate ``loss`` into fresh gradients, then :meth:`apply` them; returns whether a step was taken."""
        opt = self.optimizer(phase)
        opt.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        self.precision.unscale(opt)
        return self.apply(phase, loss.detach())

    def apply(self, phase: str, loss_value: torch.Tensor) -> bool:
        """Step ``phase``'s optimizer on the (unscaled) gradients already in ``.grad`` (hooks → step → hooks).

        Rules that build their direction themselves (UNGrad's surgery) write ``.grad`` and call this directly.
        ``loss_value`` feeds the per-epoch divergence check. Returns False when the fp16 scaler skipped the step.
        """
        opt = self.optimizer(phase)
        lr = self.lr(phase)
        for group in opt.param_groups:
            group["lr"] = lr
        for m in self.modifiers:
            m.on_gradients(self, phase)
        for m in self.modifiers:
            m.before_step(self, phase, opt)
        if self.loss_sum.device != loss_value.device:
            self.loss_sum = self.loss_sum.to(loss_value.device)
        self.loss_sum = self.loss_sum + loss_value
        if not self.precision.step(opt):
            return False
        for m in reversed(self.modifiers):
            m.after_step(self, phase, opt)
        self.ctx.counters.optimizer_steps += 1
        self.steps[phase] += 1
        return True

    def optimizer(self, phase: str) -> torch.optim.Optimizer:
        if phase not in self.optimizers:
            raise UnlearnlabError(
                f"Phase {phase!r} has no optimizer (phases: {', '.join(self.optimizers)}); two optimizers "
                "(DualOptim) need a rule with forget and retain phases: alternate or interleave."
            )
        return self.optimizers[phase]

    def end_epoch(self, where: str) -> None:
        """Stop the method with :class:`DivergenceError` if any loss this epoch was NaN or infinite."""
        check_finite(self.loss_sum, where)
        self.loss_sum = torch.zeros((), device=self.loss_sum.device)


@dataclass
class Job:
    """Everything a rule needs to run one method."""

    model: nn.Module
    data: UnlearnData
    ctx: RunContext
    stepper: Stepper
    forget: Objective | None
    retain: Objective | None
    rule: Rule
    epochs: int
    batch_size: int
    forget_batch_size: int
    schedule: Callable[[int], float] = lambda epoch: 1.0
    modifiers: Sequence[Modifier] = ()
    #: phase → lr schedule name (:data:`unlearnlab.training.SCHEDULES`) on the rule's global clock
    schedules: dict[str, str] = field(default_factory=dict)
    milestones: tuple[int, ...] = ()
    _teacher: nn.Module | None = None
    #: set when a distributed run prepared the job: this rank, what training forwards call (the DDP wrapper or
    #: the sharded model) and how an objective becomes this rank's share (docs/scaling.md)
    dist: Runtime | None = None
    forward: nn.Module | None = None
    sharing: Callable[[Objective], Objective] | None = None

    def teacher(self) -> nn.Module:
        """The frozen eval copy of the model as it was before unlearning (one per run, forwards counted)."""
        if self._teacher is None:
            self._teacher = frozen_copy(self.model, self.ctx.counters)
        return self._teacher

    def set_clock(self, tick: int, total: int, ticks_per_epoch: int = 1) -> None:
        """Set each phase's lr multiplier from its scheduler at ``tick`` of ``total`` (global clock).

        ``ticks_per_epoch`` converts the clock to epochs for ``multistep`` milestones (1 on an epoch clock).
        Without per-phase schedules, every phase follows :attr:`schedule` at the current epoch.
        """
        if not self.schedules:
            self.stepper.set_multiplier(self.schedule(tick // ticks_per_epoch))
            return
        self.stepper.set_multipliers({
            phase: lr_multiplier(name, tick, total, ticks_per_epoch, self.milestones)
            for phase, name in self.schedules.items()
        })

    def objective(self, side: str) -> Objective | None:
        return self.forget if side == "forget" else self.retain

    def retain_objective(self) -> Objective:
        """The retain objective, the family's loss when the method has none (surgery rules need one)."""
        if self.retain is not None:
            return self.retain
        return FamilyLoss() if self.sharing is None else self.sharing(FamilyLoss())

    def net(self) -> nn.Module:
        """What a training forward calls: the model, or its DDP wrapper in a distributed run."""
        return self.model if self.forward is None else self.forward

    def shard(self, batch: Batch) -> Batch:
        """This rank's share of a global batch (the batch itself in one process)."""
        return batch if self.dist is None else self.dist.shard(batch)

    def sharded(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """This rank's share of every batch of ``batches`` (the same iterator in one process)."""
        return batches if self.dist is None else self.dist.shard_all(batches)

    def source(self, side: str) -> Source:
        """D_f or D_r as the side's objective wants it this epoch (e.g. relabelled once per epoch)."""
        data = self.data.forget if side == "forget" else self.data.retain
        objective = self.objective(side)
        return objective.start_epoch(data, self.ctx) if objective is not None else data

    def size(self, side: str) -> int:
        return self.forget_batch_size if side == "forget" else self.batch_size

    def batches(self, side: str, batch_size: int | None = None) -> Iterator[Batch]:
        """One shuffled pass over D_f or D_r (own generator per side; the family's training transform)."""
        return self.sharded(iterate(self.source(side), batch_size or self.size(side),
                                    self.ctx.generator(f"{side}-loader"), True, self.data.transform))

    def cycle(self, side: str, batch_size: int | None = None, source: Source | None = None) -> Iterator[Batch]:
        """Endless shuffled passes over ``source`` (default: the side's data as stored)."""
        data = source if source is not None else (self.data.forget if side == "forget" else self.data.retain)
        return self.sharded(cycle(data, batch_size or self.size(side), self.ctx.generator(f"{side}-loader"),
                                  self.data.transform))

    def penalty(self, epoch: int) -> torch.Tensor | None:
        """The sum of the modifiers' loss terms at ``epoch`` (ℓ1, ridge), or None."""
        total = None
        for m in self.modifiers:
            term = m.penalty(self, epoch)
            if term is not None:
                total = term if total is None else total + term
        return total

    def before_batch(self, epoch: int, step: int, retain: Batch | None) -> None:
        """Let modifiers act on θ before a step's losses are computed (MinNorm-OG's projection)."""
        for m in self.modifiers:
            m.before_batch(self, epoch, step, retain)


class Rule(Component, ABC):
    """An update rule: drives the epochs of a :class:`Job`."""

    name: str
    internal: ClassVar[frozenset[str]] = frozenset({"name"})
    #: whether the rule's steps go through :meth:`Stepper.step` (so fp16 loss scaling can apply)
    loss_scaling: ClassVar[bool] = True
    #: whether it runs on sharded parameters (FSDP): it reads gradients and parameters only through the optimizer
    #: step and elementwise hooks, never as whole vectors (docs/scaling.md)
    fsdp: ClassVar[bool] = False

    @abstractmethod
    def run(self, job: Job) -> None:
        """Run all epochs, calling ``job.stepper.step`` for every update."""

    def phased(self, forget: bool, retain: bool) -> Rule:
        """This rule with separate forget and retain phases (what two optimizers need), for a method with a forget
        and/or a retain objective; itself if it has them."""
        raise UnlearnlabError(f"The {self.name} rule combines forget and retain gradients in one step: it cannot "
                              "take two optimizers (DualOptim).")

    def forget_clock(self, job: Job) -> tuple[int, int]:
        """``(N, every)``: the rule's horizon on its own clock and the clock ticks between forget steps (SFR-on's
        α_t). Default: epochs, one forget pass per epoch."""
        return job.epochs, 1
