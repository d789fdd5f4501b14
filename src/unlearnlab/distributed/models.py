"""How a rank holds the model during a distributed run: replicated under DDP, fully sharded under FSDP.

* **DDP** (``parallel="ddp"``): the rank keeps the whole model; forwards go through
  :class:`torch.nn.parallel.DistributedDataParallel`, which averages the gradients over ranks during backward.
  Buffers are synchronised once, not at each forward (``forward_sync_buffers=False``): BatchNorm statistics are each
  rank's.
* **FSDP** (``parallel="fsdp"``): a copy of the model is sharded with FSDP2 (``torch.distributed.fsdp.
  fully_shard``): every parameter, its gradient and every optimizer state exist on a rank as a 1/N slice
  (``DTensor``), gathered for a unit's forward and backward and freed after; gradients are reduce-scattered and
  averaged. Units: the modules a Hugging Face model names in ``_no_split_modules`` (its transformer blocks), else
  every module that holds parameters itself; then the root. At the end the full weights are gathered on every rank
  and written back into the caller's (unsharded) model. This side lives in :mod:`unlearnlab.distributed.fsdp`,
  imported by FSDP runs only (FSDP2 and DTensor take seconds to import).

Both average gradients over the N ranks, so a rank's loss must carry the weight N·w_k/W of its share (w_k the
terms its loss averages, W their sum over ranks: :meth:`unlearnlab.distributed.runtime.Runtime.global_mean`).
docs/scaling.md explains when to use which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Replica:
    """The model of one rank during a run.

    ``model`` is the caller's plain model, ``module`` the one whose parameters the optimizers step (``model``
    itself under DDP, its sharded copy under FSDP) and ``forward`` what the training forwards call (the DDP
    wrapper, or the sharded copy).
    """

    model: nn.Module
    module: nn.Module
    forward: nn.Module
    #: averages tensors over the ranks, in place
    average: Callable[[Iterable[torch.Tensor]], None]
    #: the full state dict of ``module`` on every rank (set for a sharded ``module``)
    gather: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None

    def finish(self) -> None:
        """Write the run's weights back into ``model`` (gathered from the shards under FSDP) and average its
        floating-point buffers over the ranks (BatchNorm running statistics, which each rank updated from its own
        shares), so that every rank ends with the same model."""
        if self.gather is not None:
            self.model.load_state_dict(self.gather(self.module))
        self.average(b for b in self.model.buffers() if b.is_floating_point())


def unwrapped(model: nn.Module) -> nn.Module:
    """The module a DDP wrapper holds, else ``model`` itself: a family reads the model's own attributes (a
    denoiser's schedule and noise stream) there while calling ``model``, so that backward averages the gradients."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def replicate(model: nn.Module, device: torch.device, average: Callable[[Iterable[torch.Tensor]], None],
              partial: bool = False) -> Replica:
    """``model`` (already on ``device``) wrapped in DDP; its weights and buffers start as rank 0's. ``partial``:
    some losses reach only part of the parameters (RMU's hidden-state losses), so DDP looks for the parameters a
    backward left without a gradient (they keep none, as on one device)."""
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                  forward_sync_buffers=False, find_unused_parameters=partial)
    return Replica(model, model, ddp, average)
