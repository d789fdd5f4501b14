"""``joint``: one loss per step, one optimizer.

Per step ``L = w_r·R(B_r) + w_f·F(B_f) [+ penalty_e]``. The driving loader is D_r when a retain objective exists
(the forget iterator cycles, reshuffled per pass: NegGrad+'s pairing) and D_f otherwise (GA). With
``epoch_over="forget"`` D_f drives and the retain iterator cycles, so an epoch is one pass over D_f (the LLM
trainers' pairing: each forget batch with the next retain batch). NegGrad+ sets ``beta`` = β: w_r = β,
w_f = 1 − β.

Budget: ``epochs`` passes over the driving loader (the lr multiplier set once per epoch), or, with ``iterations``
= N, exactly N steps drawn from the endlessly cycling driving loader (reshuffled per pass), the lr multiplier of
each step from the phase's schedule at step t of N (the diffusion presets' "1,000 iterations", docs/generation.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.alternate import Alternate, Interleave
from unlearnlab.methods.rules.base import Job, Rule, scaled


@dataclass
class Joint(Rule):
    retain_weight: float = 1.0
    forget_weight: float = 1.0
    beta: float | None = None
    iterations: int | None = None
    epoch_over: str = "retain"
    name: str = "joint"
    fsdp: ClassVar[bool] = True
    internal: ClassVar[frozenset[str]] = frozenset({"name", "retain_weight", "forget_weight", "beta", "iterations",
                                                    "epoch_over"})

    def __post_init__(self) -> None:
        if self.epoch_over not in ("retain", "forget"):
            raise UnlearnlabError(f"epoch_over must be 'retain' or 'forget', got {self.epoch_over!r}.")
        if self.beta is not None:
            if not 0.0 <= self.beta <= 1.0:
                raise UnlearnlabError(f"beta must lie in [0, 1] (retain weight β, forget weight 1 − β), got "
                                      f"{self.beta}.")
            self.retain_weight, self.forget_weight = self.beta, 1 - self.beta
        if self.iterations is not None and not (isinstance(self.iterations, int) and self.iterations >= 1):
            raise UnlearnlabError(f"iterations must be an integer >= 1 (or None for epochs), got "
                                  f"{self.iterations!r}.")

    def phased(self, forget: bool, retain: bool) -> Rule:
        if forget and retain:
            return Interleave(1, 1, iterations=self.iterations, forget_weight=self.forget_weight,
                              retain_weight=self.retain_weight, epoch_over=self.epoch_over)
        if forget:
            return Alternate()
        return super().phased(forget, retain)

    def forget_clock(self, job: Job) -> tuple[int, int]:
        """One forget term per step: N = ``iterations`` steps, or the epochs."""
        return (self.iterations, 1) if self.iterations is not None else super().forget_clock(job)

    def run(self, job: Job) -> None:
        drive = "retain" if job.retain is not None and self.epoch_over == "retain" else "forget"
        side = "forget" if drive == "retain" else "retain"
        paired = job.cycle(side) if job.objective(side) is not None else None
        driving = job.data.retain if drive == "retain" else job.data.forget
        steps_per_epoch = -(-len(driving) // job.size(drive))
        if self.iterations is not None:
            self._run_iterations(job, drive, paired, steps_per_epoch)
            return
        for epoch in range(job.epochs):
            job.stepper.set_multiplier(job.schedule(epoch))
            for i, batch in enumerate(job.batches(drive)):
                job.stepper.step(self._loss(job, drive, batch, paired, epoch), "joint")
                job.ctx.report((epoch + (i + 1) / steps_per_epoch) / job.epochs)
            job.stepper.end_epoch(f"{self.name} epoch {epoch}")

    def _run_iterations(self, job: Job, drive: str, paired, steps_per_epoch: int) -> None:
        """``iterations`` steps on the cycling driving loader; NaN check once per pass and at the end."""
        total = self.iterations
        batches = job.cycle(drive)
        for t in range(total):
            job.set_clock(t, total, steps_per_epoch)
            job.stepper.step(self._loss(job, drive, next(batches), paired, t // steps_per_epoch), "joint")
            if (t + 1) % steps_per_epoch == 0 or t + 1 == total:
                job.stepper.end_epoch(f"{self.name} iteration {t}")
                job.ctx.report((t + 1) / total)

    def _loss(self, job: Job, drive: str, batch, paired, epoch: int):
        """w_r·R(B_r) [+ w_f·F(next forget batch)], or w_f·F(B_f) [+ w_r·R(next retain batch)] when D_f drives,
        plus the modifiers' penalty at ``epoch``."""
        if drive == "retain":
            loss = scaled(self.retain_weight, job.retain(job.model, batch, job.ctx))
            if paired is not None:
                loss = loss + scaled(self.forget_weight, job.forget(job.model, next(paired), job.ctx))
        else:
            loss = scaled(self.forget_weight, job.forget(job.model, batch, job.ctx))
            if paired is not None:
                loss = loss + scaled(self.retain_weight, job.retain(job.model, next(paired), job.ctx))
        extra = job.penalty(epoch)
        return loss if extra is None else loss + extra
