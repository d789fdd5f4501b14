"""``alternate``: per epoch a forget pass over D_f, then a retain pass over D_r.

RL and SalUn (baselines §4, §7) and SCRUB (§8) in their reference code. The forget pass runs only in epochs
``e < max_forget_epochs`` (SCRUB's ``max_epochs``; all epochs by default). The phases may use different
optimizers (DualOptim) or one shared optimizer with phase learning rates — the :class:`Stepper` decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnlab.methods.rules.base import Job, Rule


@dataclass
class Alternate(Rule):
    max_forget_epochs: int | None = None
    name: str = "alternate"

    def run(self, job: Job) -> None:
        for epoch in range(job.epochs):
            job.stepper.set_multiplier(job.schedule(epoch))
            if job.forget is not None and (self.max_forget_epochs is None or epoch < self.max_forget_epochs):
                for x, y in job.batches("forget"):
                    job.stepper.step(job.forget(job.model, x, y, job.ctx), "forget")
            if job.retain is not None:
                for x, y in job.batches("retain"):
                    loss = job.retain(job.model, x, y, job.ctx)
                    extra = job.penalty(epoch)
                    if extra is not None:
                        loss = loss + extra
                    job.stepper.step(loss, "retain")
            job.stepper.end_epoch(f"{self.name} epoch {epoch}")
            job.ctx.report((epoch + 1) / job.epochs)
