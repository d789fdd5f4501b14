"""Shared step machinery for update rules.

:class:`Stepper` performs one optimizer step in the order fixed by specs/README.md §2.9:
backward → mask gradients → clip → step (with exact mask restore) → per-step schedule, for a named phase
(``"forget"``, ``"retain"`` or ``"joint"``). Each phase maps to an optimizer; a shared-optimizer rule maps
every phase to the same object. The learning rate of each phase is ``base_lr[phase] × schedule(epoch)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from unlearnlab.data.tensors import iterate
from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.masks import ExactMask
from unlearnlab.methods.objectives import Objective
from unlearnlab.training import check_finite


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
        self.multiplier = 1.0
        self.loss_sum = torch.zeros(())

    def set_multiplier(self, multiplier: float) -> None:
        """Scale every phase's base lr (the rule's schedule)."""
        self.multiplier = multiplier

    def step(self, loss: torch.Tensor, phase: str) -> None:
        opt = self.optimizers[phase]
        for group in opt.param_groups:
            group["lr"] = self.base_lr[phase] * self.multiplier
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
        self.loss_sum = self.loss_sum.to(loss.device) + loss.detach()

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
