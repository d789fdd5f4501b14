"""``joint``: one loss per step, one optimizer.

Per step ``L = w_r·R(x_r, y_r) + w_f·F(x_f, y_f) [+ penalty_e]``. The driving loader is D_r when a retain
objective exists (the forget iterator cycles, reshuffled per pass: NegGrad+'s pairing) and D_f otherwise (GA).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnlab.data.tensors import cycle
from unlearnlab.methods.rules.base import Job, Rule


@dataclass
class Joint(Rule):
    retain_weight: float = 1.0
    forget_weight: float = 1.0
    name: str = "joint"

    def run(self, job: Job) -> None:
        drive = "retain" if job.retain is not None else "forget"
        driving = job.data.retain if drive == "retain" else job.data.forget
        paired = None
        if drive == "retain" and job.forget is not None:
            paired = cycle(job.data.forget, job.forget_batch_size, job.ctx.generator("forget-loader"),
                           job.data.augment)
        steps_per_epoch = -(-len(driving) // (job.batch_size if drive == "retain" else job.forget_batch_size))
        for epoch in range(job.epochs):
            job.stepper.set_multiplier(job.schedule(epoch))
            for i, (x, y) in enumerate(job.batches(drive)):
                if drive == "retain":
                    loss = self.retain_weight * job.retain(job.model, x, y, job.ctx)
                    if paired is not None:
                        xf, yf = next(paired)
                        loss = loss + self.forget_weight * job.forget(job.model, xf, yf, job.ctx)
                else:
                    loss = self.forget_weight * job.forget(job.model, x, y, job.ctx)
                extra = job.penalty(epoch)
                if extra is not None:
                    loss = loss + extra
                job.stepper.step(loss, "joint")
                job.ctx.report((epoch + (i + 1) / steps_per_epoch) / job.epochs)
            job.stepper.end_epoch(f"{self.name} epoch {epoch}")
