"""A rank's share of a global batch, and random draws that give every row the value of a single-device run.

In a run over N ranks every rank forms the same global batch as a single-device run (same generator, same
permutation, same transform), then keeps rows ``[start, start + n_k)`` with the first ``B mod N`` ranks holding
⌈B/N⌉ rows and the others ⌊B/N⌋ (``torch.tensor_split``'s split). Each rank's loss is the mean over its rows (or
over its rows' answer tokens), and :meth:`unlearnlab.distributed.runtime.Runtime.global_mean` turns it into the
global-batch mean (docs/scaling.md, "What a distributed run guarantees"). A rank whose share is empty (a global
batch of fewer than N rows, e.g. the last one of a pass) holds row 0 as a stand-in with weight 0: it runs the same
forward and backward as the other ranks (the collectives need every rank) and contributes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from unlearnlab.data.tensors import Batch, batch_size_of


class Shard(dict):
    """A rank's rows of a global batch of ``total`` rows: its fields hold rows ``[start, start + len)`` of it;
    ``weight`` is how many of them count (0 for a stand-in row, else all of them)."""

    __slots__ = ("start", "total", "weight")

    def __init__(self, fields: Batch, start: int, total: int, weight: int):
        super().__init__(fields)
        self.start, self.total, self.weight = start, total, weight


def split_rows(total: int, rank: int, world: int) -> tuple[int, int]:
    """``(start, n)`` of ``rank``'s rows of a batch of ``total`` rows (``torch.tensor_split`` sizes)."""
    base, extra = divmod(total, world)
    n = base + (1 if rank < extra else 0)
    return rank * base + min(rank, extra), n


def shard_of(batch: Batch, rank: int, world: int, device: torch.device | None = None) -> Shard:
    """``rank``'s :class:`Shard` of the global ``batch`` (moved to ``device`` when given)."""
    total = batch_size_of(batch)
    start, n = split_rows(total, rank, world)
    weight = n
    if n == 0:
        start, n = 0, 1  # the stand-in row
    fields = {k: v[start:start + n] for k, v in batch.items()}
    if device is not None:
        fields = {k: v.to(device, non_blocking=True) for k, v in fields.items()}
    return Shard(fields, start, total, weight)


def global_rows(batch: Batch) -> int:
    """Rows of the global batch ``batch`` belongs to (its own size on one device)."""
    return batch.total if isinstance(batch, Shard) else batch_size_of(batch)


def drawn_for(batch: Batch, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """``draw(n)`` for the rows of ``batch`` (leading dimension n).

    On a :class:`Shard` it draws for the whole global batch and keeps this rank's rows, so the generator advances
    as on one device and every row gets the value it gets there (random labels, wrong labels).
    """
    if isinstance(batch, Shard):
        return draw(batch.total)[batch.start:batch.start + batch_size_of(batch)]
    return draw(batch_size_of(batch))
