"""``joint``: one loss per step, one optimizer.

Per step ``L = w_r·R(B_r) + w_f·F(B_f) [+ penalty_e]``. The driving loader is D_r when a retain objective exists
(the forget iterator cycles, reshuffled per pass: NegGrad+'s pairing) and D_f otherwise (GA). With
``epoch_over="forget"`` D_f drives and the retain iterator cycles, so an epoch is one pass over D_f (the LLM
trainers' pairing: each forget batch with the next retain batch). NegGrad+ sets ``beta`` = β: w_r = β,
w_f = 1 − β.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.alternate import Alternate, Interleave
from unlearnlab.methods.rules.base import Job, Rule


@dataclass
class Joint(Rule):
    retain_weight: float = 1.0
    forget_weight: float = 1.0
    beta: float | None = None
    epoch_over: str = "retain"
    name: str = "joint"
    internal: ClassVar[frozenset[str]] = frozenset({"name", "retain_weight", "forget_weight", "beta", "epoch_over"})

    def __post_init__(self) -> None:
        if self.epoch_over not in ("retain", "forget"):
            raise UnlearnlabError(f"epoch_over must be 'retain' or 'forget', got {self.epoch_over!r}.")
        if self.beta is not None:
            if not 0.0 <= self.beta <= 1.0:
                raise UnlearnlabError(f"beta must lie in [0, 1] (retain weight β, forget weight 1 − β), got "
                                      f"{self.beta}.")
            self.retain_weight, self.forget_weight = self.beta, 1 - self.beta

    def phased(self, forget: bool, retain: bool) -> Rule:
        if forget and retain:
            return Interleave(1, 1, forget_weight=self.forget_weight, retain_weight=self.retain_weight,
                              epoch_over=self.epoch_over)
        if forget:
            return Alternate()
        return super().phased(forget, retain)

    def run(self, job: Job) -> None:
        drive = "retain" if job.retain is not None and self.epoch_over == "retain" else "forget"
        side = "forget" if drive == "retain" else "retain"
        paired = job.cycle(side) if job.objective(side) is not None else None
        driving = job.data.retain if drive == "retain" else job.data.forget
        steps_per_epoch = -(-len(driving) // job.size(drive))
        for epoch in range(job.epochs):
            job.stepper.set_multiplier(job.schedule(epoch))
            for i, batch in enumerate(job.batches(drive)):
                if drive == "retain":
                    loss = self.retain_weight * job.retain(job.model, batch, job.ctx)
                    if paired is not None:
                        loss = loss + self.forget_weight * job.forget(job.model, next(paired), job.ctx)
                else:
                    loss = self.forget_weight * job.forget(job.model, batch, job.ctx)
                    if paired is not None:
                        loss = loss + self.retain_weight * job.retain(job.model, next(paired), job.ctx)
                extra = job.penalty(epoch)
                if extra is not None:
                    loss = loss + extra
                job.stepper.step(loss, "joint")
                job.ctx.report((epoch + (i + 1) / steps_per_epoch) / job.epochs)
            job.stepper.end_epoch(f"{self.name} epoch {epoch}")
