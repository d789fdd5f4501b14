"""Device-resident data: batches are index gathers, augmentation is batched tensor work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TensorData:
    """Inputs ``x``, labels ``y`` and each row's training-set position ``index`` (``-1`` if none).

    ``index`` lets tests assert that a loader never yields a forget position.
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, index: np.ndarray | torch.Tensor | None = None) -> TensorData:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}: pass one label per input.")
        if index is None:
            idx = torch.full((len(y),), -1, dtype=torch.long)
        else:
            idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return cls(x, y.long(), idx)

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device), self.index.to(device))

    def subset(self, positions: np.ndarray | torch.Tensor) -> TensorData:
        pos = torch.as_tensor(np.asarray(positions), dtype=torch.long, device=self.x.device)
        return TensorData(self.x[pos], self.y[pos], self.index[pos.to(self.index.device)])

    @property
    def device(self) -> torch.device:
        return self.x.device


def batch_positions(
    n: int, batch_size: int, generator: torch.Generator | None, shuffle: bool = True
) -> list[torch.Tensor]:
    """Split ``range(n)`` into batches of ``batch_size`` (last partial batch kept), shuffled if asked."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def iterate(
    data: TensorData,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    augment: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``data`` as ``(x, y)`` index gathers; optional crop+flip augmentation."""
    for pos in batch_positions(len(data), batch_size, generator, shuffle):
        pos = pos.to(data.device)
        x = data.x[pos]
        if augment:
            x = crop_flip(x, generator)
        yield x, data.y[pos]


def cycle(
    data: TensorData, batch_size: int, generator: torch.Generator | None, augment: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless passes over ``data``, reshuffled per pass (the forget iterator NegGrad+ pairs with)."""
    while True:
        yield from iterate(data, batch_size, generator, True, augment)


def crop_flip(x: torch.Tensor, generator: torch.Generator | None, padding: int = 4) -> torch.Tensor:
    """RandomCrop(H, padding) + RandomHorizontalFlip on a batch ``[B, C, H, W]``, zero padding.

    The offsets and flips are drawn on the CPU generator and applied with one gather, so the cost is a few
    tensor ops per batch whatever the batch size.
    """
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_r = rows[:, None, :, None].expand(b, x.shape[1], h, padded.shape[3])
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, idx_c)
