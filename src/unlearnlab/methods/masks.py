"""Weight masks and their exact application (dualoptim.md §6, baselines.md §7).

A mask is one boolean tensor per parameter (True = trainable). :class:`ExactMask` guarantees that frozen
entries of the parameters *and* of the optimizer state stay bit-identical through a step, whatever the
optimizer, weight decay or momentum:

1. ``grad ← where(m, grad, 0)`` (before clipping);
2. snapshot the optimizer state tensors of parameter shape;
3. ``optimizer.step()``;
4. ``θ ← where(m, θ, θ_pin)`` and ``S ← where(m, S, S_snapshot)`` (selection, no arithmetic).

θ_pin is θ at construction for ``scope="both"``, and θ just before the step for ``scope="forget"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import TensorData, iterate

Mask = dict[str, torch.Tensor]


def saliency_mask(model: nn.Module, forget: TensorData, fraction: float = 0.5, batch_size: int = 256) -> Mask:
    """SalUn's mask: top ``floor(fraction·P)`` entries of ``|Σ_batches ∇θ(−CE_mean)|`` over D_f.

    Model in eval mode (running statistics untouched), true labels, deterministic order; ties broken by
    (−s, flat index) with a stable descending sort. Returns masks keyed by parameter name.
    """
    was_training = model.training
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for x, y in iterate(forget, batch_size, shuffle=False):
        loss = -F.cross_entropy(model(x), y)
        for (n, _), g in zip(params.items(), torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
            if g is not None:
                grads[n] += g
    model.train(was_training)
    scores = torch.cat([g.abs().flatten() for g in grads.values()])
    k = int(fraction * scores.numel())
    order = torch.sort(scores, descending=True, stable=True).indices
    flat = torch.zeros_like(scores, dtype=torch.bool)
    flat[order[:k]] = True
    masks, offset = {}, 0
    for n, p in params.items():
        masks[n] = flat[offset: offset + p.numel()].view_as(p)
        offset += p.numel()
    return masks


class ExactMask:
    """Apply a mask exactly around optimizer steps (see module docstring)."""

    def __init__(self, model: nn.Module, mask: Mask, scope: str = "both"):
        if scope not in ("both", "forget"):
            raise ValueError(f"mask scope must be 'both' or 'forget', got {scope!r}.")
        named = dict(model.named_parameters())
        unknown = set(mask) - set(named)
        if unknown:
            raise ValueError(f"Mask names parameters the model does not have: {sorted(unknown)[:5]}.")
        self.scope = scope
        self.items = [(named[n], m.to(named[n].device)) for n, m in mask.items()]
        self.pins = [p.detach().clone() for p, _ in self.items]

    def applies_to(self, phase: str) -> bool:
        return self.scope == "both" or phase != "retain"

    def mask_grads(self) -> None:
        for p, m in self.items:
            if p.grad is not None:
                p.grad = torch.where(m, p.grad, torch.zeros_like(p.grad))

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Snapshot, ``optimizer.step()``, restore frozen parameters and state entries."""
        pins = self.pins if self.scope == "both" else [p.detach().clone() for p, _ in self.items]
        snapshots = [self._state_tensors(optimizer, p) for p, _ in self.items]
        snapshots = [{k: v.clone() for k, v in s.items()} for s in snapshots]
        optimizer.step()
        with torch.no_grad():
            for (p, m), pin, before in zip(self.items, pins, snapshots):
                p.copy_(torch.where(m, p, pin))
                state = optimizer.state.get(p, {})
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape:
                        old = before.get(key, torch.zeros_like(value))
                        value.copy_(torch.where(m, value, old))

    @staticmethod
    def _state_tensors(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = optimizer.state.get(p, {})
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.shape == p.shape}
