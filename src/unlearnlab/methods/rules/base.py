"""Shared step machinery for update rules.

:class:`Stepper` performs one optimizer step in the order fixed by specs/README.md §2.9:
backward → mask gradients → clip → step (with exact mask restore) → per-step schedule, for a named phase
(``"forget"``, ``"retain"`` or ``"joint"``). Each phase maps to an optimizer: the shared mode maps every phase
to one object (one state), DualOptim maps ``"forget"`` and ``"retain"`` to two optimizers over the same
parameters (dualoptim.md §1). The lr of a phase is ``base_lr[phase] × multiplier[phase]``; the multipliers
come from each phase's scheduler evaluated on the rule's global clock (:meth:`Job.set_clock`, dualoptim §5:
epochs for epoch alternation, iterations for interleaving) or, for rules that set one factor for all
phases, from :meth:`Stepper.set_multiplier`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from unlearnlab.data.tensors import iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.masks import ExactMask
from unlearnlab.methods.objectives import Objective
from unlearnlab.training import check_finite, lr_multiplier


class Stepper:
    """One optimizer step for a phase, with masking, clipping and divergence tracking."""

    def __init__(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                 base_lr: dict[str, float], ctx: RunContext, mask: ExactMask | None = None,
                 clip: float | None = None):
        self.model = model
        self.optimizers = optimizers
        self.base_lr = base_lr
        self.ctx = ctx
        self.mask = mask
        self.clip = clip
        self.multipliers = dict.fromkeys(optimizers, 1.0)
        self.steps = dict.fromkeys(optimizers, 0)
        self.loss_sum = torch.zeros(())

    def set_multiplier(self, multiplier: float) -> None:
        """Scale every phase's base lr by one factor (the rule's schedule)."""
        self.multipliers = dict.fromkeys(self.optimizers, multiplier)

    def set_multipliers(self, multipliers: dict[str, float]) -> None:
        """Scale each named phase's base lr by its own factor (per-optimizer schedulers)."""
        self.multipliers.update(multipliers)

    def step(self, loss: torch.Tensor, phase: str) -> None:
        """Backpropagate ``loss`` into fresh gradients, then :meth:`apply` them."""
        opt = self._optimizer(phase)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.apply(phase, loss.detach())

    def apply(self, phase: str, loss_value: torch.Tensor) -> None:
        """Step ``phase``'s optimizer on the gradients already in ``.grad`` (mask → clip → step → restore).

        Rules that build their direction themselves (UNGrad's surgery) write ``.grad`` and call this directly.
        ``loss_value`` feeds the per-epoch divergence check.
        """
        opt = self._optimizer(phase)
        for group in opt.param_groups:
            group["lr"] = self.base_lr[phase] * self.multipliers[phase]
        masked = self.mask is not None and self.mask.applies_to(phase)
        if masked:
            self.mask.mask_grads()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.clip)
        if masked:
            self.mask.step(opt)
        else:
            opt.step()
        self.ctx.counters.optimizer_steps += 1
        self.steps[phase] += 1
        self.loss_sum = self.loss_sum.to(loss_value.device) + loss_value

    def _optimizer(self, phase: str) -> torch.optim.Optimizer:
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
    epochs: int
    batch_size: int
    forget_batch_size: int
    schedule: Callable[[int], float] = lambda epoch: 1.0
    penalty: Callable[[int], torch.Tensor | None] = field(default=lambda epoch: None)
    #: phase → lr schedule name (:data:`unlearnlab.training.SCHEDULES`) on the rule's global clock
    schedules: dict[str, str] = field(default_factory=dict)
    milestones: tuple[int, ...] = ()

    def set_clock(self, tick: int, total: int, ticks_per_epoch: int = 1) -> None:
        """Set each phase's lr multiplier from its scheduler at ``tick`` of ``total`` (dualoptim §5, global clock).

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

    def batches(self, which: str):
        """One shuffled pass over D_f or D_r (own generator per side; augmentation if the task has it)."""
        data = self.data.forget if which == "forget" else self.data.retain
        size = self.forget_batch_size if which == "forget" else self.batch_size
        return iterate(data, size, self.ctx.generator(f"{which}-loader"), True, self.data.augment)


class Rule(ABC):
    """An update rule: drives the epochs of a :class:`Job`."""

    name: str

    @abstractmethod
    def run(self, job: Job) -> None:
        """Run all epochs, calling ``job.stepper.step`` for every update."""
