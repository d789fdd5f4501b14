"""``alternate``: forget steps on L_f over D_f and retain steps on L_r over D_r, in two schedules.

* :class:`Alternate` (epoch alternation, dualoptim §4 ``EpochAlternation``): per epoch a forget pass over D_f
  (one forget step per batch), then a retain pass over D_r. RL and SalUn (baselines §4, §7), SCRUB (§8). The
  forget pass runs only in epochs ``e < max_forget_epochs`` (SCRUB's ``max_epochs``; all by default). Without a
  retain objective this is GA with forget steps only (dualoptim's ``ForgetOnly``). Clock: epochs.
* :class:`Interleave` (dualoptim §4 ``Interleave(n_forget, k)``): iteration t = 0 … N−1 runs ``n_forget`` forget
  steps when t mod k = 0, then one retain step, each side drawing from its own endless loader (reshuffled per
  pass). SFR-on uses (1, 5): F R R R R R F R …; NegGrad+ under DualOptim uses (1, 1) with the steps weighted
  ``forget_weight``, ``retain_weight``. Clock: iterations.

Both phases may use two optimizers (DualOptim) or one shared optimizer with phase learning rates — the
:class:`~unlearnlab.methods.rules.base.Stepper` decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnlab.data.tensors import cycle
from unlearnlab.methods.rules.base import Job, Rule


@dataclass
class Alternate(Rule):
    max_forget_epochs: int | None = None
    name: str = "alternate"

    def run(self, job: Job) -> None:
        for epoch in range(job.epochs):
            job.set_clock(epoch, job.epochs)
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


@dataclass
class Interleave(Rule):
    """``n_forget`` forget steps every ``n_retain`` retain steps, for ``iterations`` retain steps.

    ``iterations=None`` runs ``epochs`` passes' worth of retain steps: N = E·⌈n_r / b⌉. The NaN check and
    progress run once per such pass ("epoch") and at the end.
    """

    n_forget: int = 1
    n_retain: int = 1
    iterations: int | None = None
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    name: str = "interleave"

    def run(self, job: Job) -> None:
        if job.forget is None or job.retain is None:
            raise ValueError("interleave needs both a forget and a retain objective.")
        per_epoch = -(-len(job.data.retain) // job.batch_size)
        total = self.iterations if self.iterations is not None else job.epochs * per_epoch
        forget = cycle(job.data.forget, job.forget_batch_size, job.ctx.generator("forget-loader"), job.data.augment)
        retain = cycle(job.data.retain, job.batch_size, job.ctx.generator("retain-loader"), job.data.augment)
        for t in range(total):
            job.set_clock(t, total, per_epoch)
            if t % self.n_retain == 0:
                for _ in range(self.n_forget):
                    x, y = next(forget)
                    job.stepper.step(self.forget_weight * job.forget(job.model, x, y, job.ctx), "forget")
            x, y = next(retain)
            loss = self.retain_weight * job.retain(job.model, x, y, job.ctx)
            extra = job.penalty(t // per_epoch)
            if extra is not None:
                loss = loss + extra
            job.stepper.step(loss, "retain")
            if (t + 1) % per_epoch == 0 or t + 1 == total:
                job.stepper.end_epoch(f"{self.name} iteration {t}")
                job.ctx.report((t + 1) / total)
