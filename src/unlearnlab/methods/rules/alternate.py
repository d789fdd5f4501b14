"""``alternate``: forget steps on L_f over D_f and retain steps on L_r over D_r, in two schedules.

* :class:`Alternate` (epoch alternation): per epoch a forget pass over D_f (one forget step per batch), then a
  retain pass over D_r. RL and SalUn, SCRUB. The forget pass runs only in epochs ``e < max_epochs`` (SCRUB's
  max-phase budget; every epoch by default). Without a retain objective this is GA with forget steps only.
  Clock: epochs.
* :class:`Interleave` (``Interleave(n_forget, n_retain)``): iteration t = 0 … N−1 runs ``n_forget`` forget steps
  when t mod ``n_retain`` = 0, then one retain step, each side drawing from its own endless loader (reshuffled
  per pass). SFR-on uses (1, 5): F R R R R R F R …; NegGrad+ under DualOptim uses (1, 1) with the steps weighted
  ``forget_weight``, ``retain_weight``. Clock: iterations. With ``epoch_over="forget"`` an epoch is one pass over
  D_f in forget steps (DualOptim's LLM sampler), i.e. ⌈⌈n_f/b_f⌉/n_forget⌉·n_retain iterations.

Both phases may use two optimizers (DualOptim) or one shared optimizer with phase learning rates — the
:class:`~unlearnlab.methods.rules.base.Stepper` decides (docs/methods.md, "DualOptim").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.base import Job, Rule, scaled


@dataclass
class Alternate(Rule):
    max_epochs: int | None = None
    name: str = "alternate"
    fsdp: ClassVar[bool] = True

    def phased(self, forget: bool, retain: bool) -> Rule:
        return self

    def run(self, job: Job) -> None:
        for epoch in range(job.epochs):
            job.set_clock(epoch, job.epochs)
            if job.forget is not None and (self.max_epochs is None or epoch < self.max_epochs):
                for batch in job.batches("forget"):
                    job.stepper.step(job.forget(job.model, batch, job.ctx), "forget")
            if job.retain is not None:
                for batch in job.batches("retain"):
                    loss = job.retain(job.model, batch, job.ctx)
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
    epoch_over: str = "retain"
    name: str = "interleave"
    fsdp: ClassVar[bool] = True
    internal: ClassVar[frozenset[str]] = frozenset({"name", "forget_weight", "retain_weight", "epoch_over"})

    def __post_init__(self) -> None:
        if self.epoch_over not in ("retain", "forget"):
            raise UnlearnlabError(f"epoch_over must be 'retain' or 'forget', got {self.epoch_over!r}.")
        if self.n_forget < 1 or self.n_retain < 1:
            raise UnlearnlabError(f"interleave needs n_forget >= 1 and n_retain >= 1, got ({self.n_forget}, "
                                  f"{self.n_retain}).")
        if self.iterations is not None and self.iterations < 1:
            raise UnlearnlabError(f"iterations must be >= 1 (or None for epochs × retain batches), got "
                                  f"{self.iterations}.")

    def phased(self, forget: bool, retain: bool) -> Rule:
        return self

    def total(self, job: Job) -> tuple[int, int]:
        """(N, retain steps per epoch)."""
        if self.epoch_over == "forget":
            forget_steps = -(-len(job.data.forget) // job.forget_batch_size)
            per_epoch = -(-forget_steps // self.n_forget) * self.n_retain
        else:
            per_epoch = -(-len(job.data.retain) // job.batch_size)
        return (self.iterations if self.iterations is not None else job.epochs * per_epoch), per_epoch

    def forget_clock(self, job: Job) -> tuple[int, int]:
        return self.total(job)[0], self.n_retain

    def run(self, job: Job) -> None:
        if job.forget is None or job.retain is None:
            raise UnlearnlabError("interleave needs both a forget and a retain objective.")
        total, per_epoch = self.total(job)
        forget = job.cycle("forget")
        retain = job.cycle("retain")
        for t in range(total):
            job.set_clock(t, total, per_epoch)
            if t % self.n_retain == 0:
                for _ in range(self.n_forget):
                    job.stepper.step(scaled(self.forget_weight, job.forget(job.model, next(forget), job.ctx)),
                                     "forget")
            loss = scaled(self.retain_weight, job.retain(job.model, next(retain), job.ctx))
            extra = job.penalty(t // per_epoch)
            if extra is not None:
                loss = loss + extra
            job.stepper.step(loss, "retain")
            if (t + 1) % per_epoch == 0 or t + 1 == total:
                job.stepper.end_epoch(f"{self.name} iteration {t}")
                job.ctx.report((t + 1) / total)
