"""Weight masks and their exact application (docs/methods.md, "Masks").

A mask is one boolean tensor per parameter (True = trainable). Three rules choose it, each from gradients of the
family's loss L (cross-entropy for classifiers) over a pass in dataset order, without augmentation:

* :func:`saliency_mask` (SalUn): the top ``floor(fraction·P)`` entries of ``|Σ_batches ∇θ(−L)|`` over D_f, model in
  eval mode, ties broken by (−score, flat index);
* :func:`fisher_ratio_mask` (SFR-on): ``m = 1[(F_f + 1e-15)/(F_r + 1e-15) ≥ τ]`` with ``F = (1/nb)·Σ_b (∇θ L_b)²``
  per side, eval mode;
* :func:`median_threshold_mask` (MinNorm-OG's SalUn variant): ``|g| ≥`` the lower median of all ``|g|``.

:class:`ExactMask` guarantees that frozen entries of the parameters *and* of the optimizer state stay
bit-identical through a step, whatever the optimizer, weight decay or momentum:

1. ``grad ← where(m, grad, 0)`` (before clipping);
2. snapshot θ_pin and the optimizer state tensors of parameter shape;
3. ``optimizer.step()``;
4. ``θ ← where(m, θ, θ_pin)`` and ``S ← where(m, S, S_snapshot)`` (selection, no arithmetic).

θ_pin is θ at construction for ``scope="both"``, and θ just before the step for ``scope="forget"`` (masks that act
on forget steps only).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from unlearnlab.data.tensors import Batch, Source, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.training import cross_entropy
from unlearnlab.utils import preserved_buffers, train_mode

Mask = dict[str, torch.Tensor]
#: ``loss(model, batch) -> scalar``
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def summed_gradients(model: nn.Module, data: Source, loss: LossFn, batch_size: int = 256,
                     square: bool = False) -> tuple[dict[str, torch.Tensor], int]:
    """``(Σ_b g_b or Σ_b g_b², number of batches)`` over one pass in dataset order, g_b = ∇θ loss(batch b)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    batches = 0
    for batch in iterate(data, batch_size, shuffle=False):
        grads = torch.autograd.grad(loss(model, batch), list(params.values()), allow_unused=True)
        for n, g in zip(params, grads):
            if g is not None:
                acc[n] += g * g if square else g
        batches += 1
    return acc, batches


def in_eval_mode(model: nn.Module, fn: Callable[[], object]) -> object:
    """``fn()`` with the model in eval mode; every module's own training flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return fn()
    finally:
        for module, flag in flags:
            module.training = flag


def top_fraction(scores: dict[str, torch.Tensor], fraction: float) -> Mask:
    """Exactly ``floor(fraction·P)`` ones at the largest scores; ties by (−score, flat index), stable sort."""
    if not 0.0 < fraction <= 1.0:
        raise UnlearnlabError(f"mask_fraction must lie in (0, 1], got {fraction}.")
    flat_scores = torch.cat([s.flatten() for s in scores.values()])
    k = int(fraction * flat_scores.numel())
    order = torch.sort(flat_scores, descending=True, stable=True).indices
    flat = torch.zeros_like(flat_scores, dtype=torch.bool)
    flat[order[:k]] = True
    masks, offset = {}, 0
    for n, s in scores.items():
        masks[n] = flat[offset: offset + s.numel()].view_as(s)
        offset += s.numel()
    return masks


def saliency_mask(model: nn.Module, forget: Source, fraction: float = 0.5, batch_size: int = 256,
                  loss: LossFn = cross_entropy) -> Mask:
    """SalUn's mask: top ``floor(fraction·P)`` entries of ``|Σ_batches ∇θ(−L)|`` over D_f (eval mode)."""
    grads, _ = in_eval_mode(model, lambda: summed_gradients(
        model, forget, lambda m, b: -loss(m, b), batch_size))  # type: ignore[misc]
    return top_fraction({n: g.abs() for n, g in grads.items()}, fraction)


def squared_batch_gradients(model: nn.Module, data: Source, batch_size: int = 256,
                            loss: LossFn = cross_entropy) -> dict[str, torch.Tensor]:
    """F = (1/nb)·Σ_b (∇θ L_b)² over one pass in dataset order, model in eval mode."""
    acc, batches = in_eval_mode(model, lambda: summed_gradients(model, data, loss, batch_size, square=True))
    return {n: a / max(1, batches) for n, a in acc.items()}


def ratio_mask(fisher_forget: dict[str, torch.Tensor], fisher_retain: dict[str, torch.Tensor],
               tau: float = 1.0) -> Mask:
    """m = 1[(F_f + 1e-15)/(F_r + 1e-15) ≥ τ] per entry."""
    return {n: (f + 1e-15) / (fisher_retain[n] + 1e-15) >= tau for n, f in fisher_forget.items()}


def fisher_ratio_mask(model: nn.Module, forget: Source, retain: Source, tau: float = 1.0, batch_size: int = 256,
                      loss: LossFn = cross_entropy) -> Mask:
    """SFR-on's mask: :func:`ratio_mask` of the forget and retain :func:`squared_batch_gradients`."""
    return ratio_mask(squared_batch_gradients(model, forget, batch_size, loss),
                      squared_batch_gradients(model, retain, batch_size, loss), tau)


def paper_saliency_mask(model: nn.Module, forget: Source, batch_size: int, loss: LossFn) -> tuple[Mask, float]:
    """MinNorm-OG's SalUn variant: Σ over forget batches (dataset order) of ∇loss at the current θ, model in training
    mode (as the paper's code), every buffer restored; then :func:`median_threshold_mask`."""
    with train_mode(model), preserved_buffers(model):
        grads, _ = summed_gradients(model, forget, loss, batch_size)
    return median_threshold_mask(grads)


def median_threshold_mask(grads: dict[str, torch.Tensor]) -> tuple[Mask, float]:
    """``(mask, thr)``: thr = torch.median of |g| over all entries (the lower median), mask = |g| ≥ thr."""
    thr = torch.median(torch.cat([g.detach().abs().flatten() for g in grads.values()]))
    return {n: g.detach().abs() >= thr for n, g in grads.items()}, float(thr)


def trainable_fraction(mask: Mask) -> float:
    return sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())


class ExactMask:
    """Apply a mask exactly around optimizer steps (see module docstring)."""

    def __init__(self, model: nn.Module, mask: Mask, scope: str = "both"):
        if scope not in ("both", "forget"):
            raise UnlearnlabError(f"mask scope must be 'both' or 'forget', got {scope!r}.")
        named = dict(model.named_parameters())
        unknown = set(mask) - set(named)
        if unknown:
            raise UnlearnlabError(f"Mask names parameters the model does not have: {sorted(unknown)[:5]}.")
        self.scope = scope
        self.items = [(named[n], m.to(named[n].device)) for n, m in mask.items()]
        self.pins = [p.detach().clone() for p, _ in self.items]

    def applies_to(self, phase: str) -> bool:
        return self.scope == "both" or phase != "retain"

    def mask_grads(self) -> None:
        for p, m in self.items:
            if p.grad is not None:
                p.grad = torch.where(m, p.grad, torch.zeros_like(p.grad))

    def snapshot(self, optimizer: torch.optim.Optimizer) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """(θ_pin, optimizer-state copies) to restore after the step."""
        pins = self.pins if self.scope == "both" else [p.detach().clone() for p, _ in self.items]
        states = [{k: v.clone() for k, v in self._state_tensors(optimizer, p).items()} for p, _ in self.items]
        return pins, states

    def restore(self, optimizer: torch.optim.Optimizer,
                saved: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]) -> None:
        """Put frozen parameter and state entries back (selection, no arithmetic)."""
        pins, states = saved
        with torch.no_grad():
            for (p, m), pin, before in zip(self.items, pins, states):
                p.copy_(torch.where(m, p, pin))
                state = optimizer.state.get(p, {})
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape:
                        old = before.get(key, torch.zeros_like(value))
                        value.copy_(torch.where(m, value, old))

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Snapshot, ``optimizer.step()``, restore frozen parameters and state entries."""
        saved = self.snapshot(optimizer)
        optimizer.step()
        self.restore(optimizer, saved)

    @staticmethod
    def _state_tensors(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = optimizer.state.get(p, {})
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.shape == p.shape}
