"""``min_norm``: the loop the MinNorm-OG paper runs its method and every one of its baselines in.

One epoch = one pass over the forget batches (only their count matters when the method has no forget objective).
Each step takes the next batch of the retain stream: D_r (or the accessible subset D′_r of the
:class:`~unlearnlab.methods.modifiers.RetainSubset` modifier) in batches of B, reshuffled on exhaustion, the last
partial batch dropped iff |D_r| > B. Per step, after the modifiers' ``before_batch`` hook (MinNorm-OG's projection,
which sees the whole global batch on every rank of a distributed run):

    L = w_r·J(B_r) [unless a max-epoch] + F(B_f) [if a forget objective, and not a min-epoch] + penalties

then one optimizer step. With ``alternate`` (the paper's SCRUB variant) epoch t is a max-epoch iff t is odd and
t < T − T_GD (``num_gd_epochs``): it steps only the forget objective; the other epochs only the retain one.
docs/methods.md ("MinNorm-OG" and its baselines).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from unlearnlab.data.tensors import Batch, Source, batch_positions
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.base import Job, Rule, scaled


def retain_stream(data: Source, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Batches of B over ``data``, reshuffled on exhaustion, last partial dropped iff |data| > B."""
    drop_last = len(data) > batch_size
    while True:
        for pos in batch_positions(len(data), batch_size, generator, True):
            if drop_last and len(pos) < batch_size:
                continue
            yield data.gather(pos.to(data.device))


@dataclass
class MinNormLoop(Rule):
    """The paper's loop (see module docstring)."""

    retain_weight: float = 1.0
    alternate: bool = False
    num_gd_epochs: int = 0
    name: str = "min_norm"
    fsdp: ClassVar[bool] = True
    internal: ClassVar[frozenset[str]] = frozenset({"name", "retain_weight", "alternate"})

    def __post_init__(self) -> None:
        if self.num_gd_epochs < 0:
            raise UnlearnlabError(f"num_gd_epochs (T_GD) must be >= 0, got {self.num_gd_epochs}.")
        self._stats: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        """``num_gd_epochs`` matters to the loop only when it alternates (otherwise it is the projection's)."""
        return super().options() if self.alternate else {}

    def max_epoch(self, epoch: int, epochs: int) -> bool:
        return self.alternate and epoch % 2 == 1 and epoch < epochs - self.num_gd_epochs

    def run(self, job: Job) -> None:
        model, ctx, stepper = job.model, job.ctx, job.stepper
        retain_data = job.data.retain
        if len(retain_data) == 0 and self.retain_weight:
            raise UnlearnlabError("The min_norm loop needs a non-empty retain set.")
        if len(retain_data) and not retain_data.in_memory:
            raise UnlearnlabError("The min_norm loop draws retain batches by index: pass D_r in memory.")
        stream = retain_stream(retain_data, job.batch_size, ctx.generator("retain-loader")) if len(retain_data) \
            else None
        n_fb = math.ceil(len(job.data.forget) / job.forget_batch_size)
        st = self._stats = {"forget_batches_per_epoch": n_fb}
        if self.alternate:
            st.update(max_epochs=0, min_epochs=0)
        loss = torch.zeros(())
        for epoch in range(job.epochs):
            stepper.set_multiplier(job.schedule(epoch))
            forget_batches = job.batches("forget") if job.forget is not None else iter([None] * n_fb)
            maximise = self.max_epoch(epoch, job.epochs)
            for i, forget_batch in enumerate(forget_batches):
                retain_batch = next(stream) if stream is not None else None
                job.before_batch(epoch, i, retain_batch)
                loss = torch.zeros((), device=next(model.parameters()).device)
                if self.retain_weight and not maximise:
                    loss = loss + scaled(self.retain_weight, job.retain(model, job.shard(retain_batch), ctx))
                if job.forget is not None and (maximise or not self.alternate):
                    loss = loss + job.forget(model, forget_batch, ctx)
                extra = job.penalty(epoch)
                if extra is not None:
                    loss = loss + extra
                if not loss.requires_grad:
                    raise UnlearnlabError("The min_norm loop has nothing to optimise: no retain, forget or penalty "
                                          "term.")
                stepper.step(loss, "joint")
                ctx.report((epoch + (i + 1) / n_fb) / job.epochs)
            if self.alternate:
                st["max_epochs" if maximise else "min_epochs"] += 1
            stepper.end_epoch(f"{self.name} epoch {epoch}")
        st["final_loss"] = float(loss.detach()) if job.epochs and n_fb else 0.0

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)
