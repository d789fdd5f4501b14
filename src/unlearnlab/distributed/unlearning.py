"""The unlearning side of a distributed run: which method parts run under FSDP, the objectives as one rank
computes them, the preparation of a :class:`~unlearnlab.methods.rules.base.Job`, and a Jacobian whose columns
the ranks share (docs/scaling.md, "What each rule does across ranks").

After the objectives are bound (a teacher is a plain frozen copy) and the modifiers set up (a mask is chosen on
the whole D_f, the same way on every rank), :func:`prepare` wraps the model (DDP, or a sharded copy under FSDP),
broadcasts rank 0's masks so they are bit-identical everywhere, shards a teacher under FSDP, and replaces each
objective by a :class:`RankObjective`. From then on the job's loaders yield this rank's share of every global
batch (:meth:`Job.batches`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from unlearnlab.data.tensors import Batch
from unlearnlab.distributed.batches import split_rows
from unlearnlab.distributed.models import Replica
from unlearnlab.distributed.runtime import Runtime
from unlearnlab.errors import UnlearnlabError
from unlearnlab.training import autocast_dtype

if TYPE_CHECKING:
    from unlearnlab.methods.rules.base import Job


class RankObjective:
    """An objective as one rank computes it: its forwards go through the run's wrapper (DDP, so that backward
    averages the gradients) and its value is the global-batch mean (:meth:`Runtime.global_mean`), each rank's
    share weighted by the terms its loss averages (:meth:`~unlearnlab.objectives.Objective.weighted`: rows, or
    answer tokens). Every other attribute is the objective's own."""

    def __init__(self, objective: Any, runtime: Runtime, replica: Replica):
        self.objective, self.runtime, self.replica = objective, runtime, replica

    def __call__(self, model: Any, batch: Batch, ctx: Any) -> torch.Tensor:
        forward = self.replica.forward if model is self.replica.module else model
        loss, weight = self.objective.weighted(forward, batch, ctx)
        return self.runtime.global_mean(loss, batch, weight)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objective, name)

    def __repr__(self) -> str:
        return f"RankObjective({self.objective!r})"


def check(job: Job, runtime: Runtime, precision: str) -> None:
    """Refuse, naming the part and the fix, what cannot run across ranks with the semantics it has on one device."""
    for objective in (job.forget, job.retain):
        if objective is not None and not getattr(objective, "sample_mean", True):
            raise UnlearnlabError(
                f"{type(objective).__name__} is not a mean of per-sample losses (its weights are normalised over "
                "the batch), so a rank's share cannot be combined into the global-batch loss: run this method in "
                "a single process (parallel='none').")
    if not runtime.sharded:
        return
    parts = [("rule", job.rule), *(("modifier", m) for m in job.modifiers)]
    refused = [f"the {kind} {type(part).__name__}" for kind, part in parts if not getattr(part, "fsdp", False)]
    if refused:
        raise UnlearnlabError(
            f"parallel='fsdp' cannot run {', '.join(refused)}: it needs whole gradients or parameters (surgery "
            "directions, masks chosen from full gradients, parameter noise and clipping, projections, penalties). "
            "Use parallel='ddp' (the model must fit on one device), or a method without it (docs/scaling.md).")
    if autocast_dtype(precision, runtime.device) == torch.float16:
        raise UnlearnlabError("parallel='fsdp' with precision='fp16': each rank would see the loss scaler's inf/NaN "
                              "check on its own shard only. Use precision='bf16' (or 'fp32').")


def prepare(job: Job, runtime: Runtime, precision: str) -> Replica:
    """Wrap ``job``'s model for ``runtime`` and switch the job to per-rank batches and objectives (see module
    docstring); returns the :class:`Replica`, whose ``finish()`` writes the weights back at the end."""
    check(job, runtime, precision)
    for modifier in job.modifiers:
        exact = getattr(modifier, "exact", None)
        if exact is not None:  # chosen the same way on every rank; rank 0's makes them bit-identical
            runtime.broadcast_(mask for _, mask in exact.items)
    if runtime.sharded:
        teachers = {id(t): t for t in (getattr(o, "teacher", None) for o in (job.forget, job.retain)) if t is not None}
        for teacher in teachers.values():
            runtime.shard_in_place(teacher)
    partial = any(not getattr(o, "reaches_every_parameter", True) for o in (job.forget, job.retain) if o is not None)
    replica = runtime.replicate(job.model, partial)
    job.model = replica.module
    job.forward = replica.forward

    def share(objective: Any) -> RankObjective:
        return RankObjective(objective, runtime, replica)

    job.forget = None if job.forget is None else share(job.forget)
    job.retain = None if job.retain is None else share(job.retain)
    job.sharing = share
    job.dist = runtime
    return replica


def split_columns(runtime: Runtime, columns: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
                  ) -> torch.Tensor:
    """``columns(x)`` (a d × M matrix whose columns are ordered sample-last: M = G·n for n rows of ``x``)
    computed across ranks: each rank takes its ``tensor_split`` share of the rows, the blocks are all-gathered and
    put back in order. Every rank ends with the same matrix. Valid when column (g, i) depends on row i alone (no
    layer couples the samples); with fewer rows than ranks every rank computes the whole matrix."""
    n = len(x)
    if n < runtime.world:
        return columns(x)
    start, count = split_rows(n, runtime.rank, runtime.world)
    part = columns(x[start:start + count])
    d, groups = part.shape[0], part.shape[1] // count
    widest = -(-n // runtime.world)
    padded = part.new_zeros(d, groups, widest)
    padded[:, :, :count] = part.reshape(d, groups, count)
    blocks = [torch.empty_like(padded) for _ in range(runtime.world)]
    dist.all_gather(blocks, padded)
    kept = [blocks[k][:, :, :split_rows(n, k, runtime.world)[1]] for k in range(runtime.world)]
    return torch.cat(kept, dim=2).reshape(d, groups * n)
