"""One rank of a distributed run: its process group, device and parallel mode, and the few collectives the
training loop and the update rules call.

:func:`runtime` returns None in a single process, so every caller keeps its single-device path untouched (no
collective, no extra synchronisation); under ``torchrun`` it joins (or starts) the default process group — NCCL
on CUDA, gloo on the CPU — and returns a :class:`Runtime`. The semantics it guarantees, and why they make a step
equal to the single-device step on the global batch, are in docs/scaling.md.
"""

from __future__ import annotations

import atexit
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from unlearnlab.counting import Counters
from unlearnlab.data.tensors import Batch
from unlearnlab.distributed.batches import Shard, shard_of
from unlearnlab.distributed.env import Launch, launched
from unlearnlab.distributed.models import Replica, replicate
from unlearnlab.errors import UnlearnlabError

#: ``parallel=`` values: replicated model, fully sharded model, or this rank alone
PARALLEL = ("ddp", "fsdp", "none")
_default: str | None = None


class _GlobalMean(torch.autograd.Function):
    """Value: the global-batch mean L = Σ_k w_k·ℓ_k / W, W = Σ_k w_k (one all-reduce of the pair (w_k·ℓ_k, w_k)).
    Gradient to the rank's loss ℓ_k: scaled by N·w_k/W, so that the ranks' average (what DDP and FSDP apply) is
    Σ_k (w_k/W)·∇ℓ_k = ∇L. w_k is how many terms ℓ_k averages: the rank's rows, or its answer tokens for a mean
    over tokens (docs/scaling.md, "Same loss")."""

    @staticmethod
    def forward(ctx: Any, loss: torch.Tensor, weight: int | torch.Tensor, world: int) -> torch.Tensor:
        w = torch.as_tensor(weight, dtype=torch.float64, device=loss.device)
        pair = torch.stack([loss.detach().double() * w, w])
        dist.all_reduce(pair)
        ctx.scale = (world * w / pair[1]).to(loss.dtype)
        return (pair[0] / pair[1]).to(loss.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return grad * ctx.scale, None, None


class Runtime:
    """This rank of a run over ``world`` ranks, computing on ``device`` with ``parallel`` ("ddp" or "fsdp")."""

    def __init__(self, rank: int, world: int, device: torch.device, parallel: str):
        self.rank, self.world, self.device, self.parallel = rank, world, device, parallel

    def __repr__(self) -> str:
        return f"Runtime(rank={self.rank}, world={self.world}, device={self.device}, parallel={self.parallel!r})"

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes results, checkpoints, certificates, logs and the model cache."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.parallel == "fsdp"

    # ------------------------------------------------------------------------------------------- batches
    def shard(self, batch: Batch) -> Shard:
        """This rank's rows of the global ``batch``, on this rank's device."""
        return shard_of(batch, self.rank, self.world, self.device)

    def shard_all(self, batches: Iterable[Batch]) -> Iterator[Shard]:
        for batch in batches:
            yield self.shard(batch)

    def global_mean(self, loss: torch.Tensor, batch: Batch, weight: int | torch.Tensor | None = None
                    ) -> torch.Tensor:
        """The mean of a loss over the global batch, from this rank's mean ``loss`` over its share ``batch``.

        ``weight`` is how many terms ``loss`` averages (default: the share's rows; an answer-token count for a
        mean over tokens); a stand-in share weighs 0 whatever it says. A batch that is not a :class:`Shard` is
        the same on every rank: its loss is returned as it is (the ranks' gradients agree and their average is
        that gradient).
        """
        if not isinstance(batch, Shard):
            return loss
        return _GlobalMean.apply(loss, batch.weight if weight is None or batch.weight == 0 else weight, self.world)

    # ------------------------------------------------------------------------------------------- models
    def replicate(self, model: nn.Module, partial: bool = False) -> Replica:
        """``model`` as this rank holds it for a run (DDP wrapper or sharded copy, docs/scaling.md); ``partial``:
        some of its losses leave parameters without a gradient (see :func:`~unlearnlab.distributed.models.replicate`;
        FSDP needs no notice)."""
        if self.sharded:
            from unlearnlab.distributed import fsdp  # FSDP2 and DTensor take seconds to import: FSDP runs only pay it

            return fsdp.shard(model, self.world, self.device, self.average_)
        return replicate(model, self.device, self.average_, partial)

    def shard_in_place(self, module: nn.Module) -> nn.Module:
        """Shard ``module`` itself with FSDP2 (a frozen teacher: it is no one's copy, and must not stay whole)."""
        from unlearnlab.distributed import fsdp  # see replicate

        return fsdp.shard_in_place(module, self.world, self.device)

    def broadcast_module(self, model: nn.Module) -> None:
        """Every rank's ``model`` takes rank 0's parameters and buffers (one broadcast per tensor)."""
        with torch.no_grad():
            self.broadcast_([*model.parameters(), *model.buffers()])

    def own_checkpoint(self, checkpoint: Any) -> Any:
        """The training checkpoint this rank reads and writes: rank 0's alone (None on the others). An FSDP run
        refuses one (its optimizer states are sharded)."""
        if checkpoint is not None and self.sharded:
            raise UnlearnlabError("Training checkpoints are not written for FSDP runs (their optimizer states are "
                                  "sharded over the ranks): train without checkpoint=, or with parallel='ddp'.")
        return checkpoint if self.is_main else None

    def resume_state(self, saved: dict[str, Any] | None) -> dict[str, Any] | None:
        """Rank 0's resumable training state (``saved``, or None) on every rank, so that all resume alike."""
        return saved if self.sharded else self.broadcast_object(saved)

    # ------------------------------------------------------------------------------------------- collectives
    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite each tensor in place with rank 0's (staged through this rank's device, bool as uint8)."""
        for tensor in tensors:
            buf = tensor.detach()
            staged = buf.to(self.device, torch.uint8 if buf.dtype == torch.bool else buf.dtype)
            dist.broadcast(staged, src=0)
            if staged is not buf:
                buf.copy_(staged.to(buf.device, buf.dtype))

    def average_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Each tensor ← its average over ranks, in place (staged through this rank's device)."""
        for tensor in tensors:
            buf = tensor.detach()
            staged = buf.to(self.device)
            self.all_mean_(staged)
            if staged is not buf:
                buf.copy_(staged.to(buf.device))

    def all_mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` ← its average over ranks, in place (gradients that autograd.grad computed outside DDP)."""
        dist.all_reduce(tensor)
        return tensor.div_(self.world)

    def broadcast_object(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for small control messages)."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def global_max(self, value: int) -> int:
        """The largest of the ranks' ``value``s, on every rank: a check on a global batch that its shares make
        (a length limit) then fails on every rank or on none, as it does on one device."""
        box = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return int(box.item())

    def secure_seed(self) -> int:
        """A seed drawn by rank 0 from the operating system's entropy, the same on every rank, stored nowhere."""
        value = torch.tensor([secrets.randbits(63) if self.is_main else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(value, src=0)
        return int(value.item())

    def sum_counters(self, counters: Counters) -> None:
        """Samples through forwards and backwards summed over ranks (optimizer steps are every rank's)."""
        value = torch.tensor([counters.forward_samples, counters.backward_samples], dtype=torch.int64,
                             device=self.device)
        dist.all_reduce(value)
        counters.forward_samples, counters.backward_samples = (int(v) for v in value.tolist())


def is_main() -> bool:
    """Whether this process is the one that writes: rank 0 of a distributed run, or a single process. Guard your
    own saves with it under torchrun (every rank holds the same result)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    launch = launched()
    return launch is None or launch.rank == 0


def use(parallel: str | None) -> None:
    """Set the mode :func:`runtime` takes when a call gives none (the CLI's ``--parallel``); None: ``"ddp"``."""
    global _default
    _check(parallel)
    _default = parallel


def runtime(parallel: str | None = None) -> Runtime | None:
    """This rank's :class:`Runtime` when the process is one of several (``WORLD_SIZE`` > 1, or a process group
    the caller initialised), else None. ``parallel``: "ddp" (default), "fsdp", or "none" (this rank alone)."""
    _check(parallel)
    mode = parallel or _default or "ddp"
    if mode == "none":
        return None
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() == 1:
            return None
        launch = launched() or Launch(dist.get_rank(), dist.get_world_size(), dist.get_rank())
    else:
        launch = launched()
        if launch is None:
            return None
        _initialise(launch)
    return Runtime(launch.rank, launch.world_size, launch.device, mode)


def _check(parallel: str | None) -> None:
    if parallel is not None and parallel not in PARALLEL:
        raise UnlearnlabError(f"parallel={parallel!r}: use 'ddp' (the model fits on one device), 'fsdp' (it does "
                              "not: parameters, gradients and optimizer states sharded) or 'none' (this rank alone).")


def _initialise(launch: Launch) -> None:
    """Join the default process group (NCCL on CUDA, gloo on the CPU); it is destroyed when the process exits."""
    device = launch.device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_available():
        raise UnlearnlabError("This PyTorch build has no torch.distributed: install a build with it to run under "
                              "torchrun.")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=launch.rank,
                            world_size=launch.world_size)
    atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group (if this process is in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
