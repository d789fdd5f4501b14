"""IU: one-shot influence unlearning with the benchmark's WoodFisher surrogate (docs/methods.md, "IU").

Model in eval mode throughout (running statistics untouched), eval transforms (no augmentation), true labels, L
the family's loss:

1. mean gradients ḡ_f, ḡ_r of L over D_f and D_r (sum of batch-mean gradients × batch size / n);
2. v = n_f/(n_f + n_r)·(ḡ_f − ḡ_r);
3. k ≈ F⁻¹v by the reference recursion (``unlearn/Wfisher.py``, :func:`woodfisher_surrogate`) over per-sample
   retain gradients g_1, g_2, … in dataset order: k ← v, o ← g_1; for i ≥ 2: τ = ⟨o, g_i⟩,
   k ← k − (⟨k, g_i⟩/(N + τ))·o, o ← o − (τ/(N + τ))·o (= o·N/(N + τ)); N + 2 samples (all if n_r < N + 2);
4. θ ← θ + α·(m ⊙ k) (m = 1 without a mask).

This is the reference's cheap surrogate, not the textbook Sherman–Morrison recursion (which would keep F⁻¹g_i per
sample); ``iu`` is the surrogate by definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.data.tensors import Source, TensorData, batch_size_of, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.methods.masks import LossFn, saliency_mask
from unlearnlab.training import cross_entropy


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])


def mean_gradient(model: nn.Module, data: Source, params: list[torch.Tensor], batch_size: int,
                  loss: LossFn = cross_entropy) -> torch.Tensor:
    """Σ_b ∇L_mean(batch b)·|b| / n over one pass in dataset order (the mean per-sample gradient)."""
    total = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
    for batch in iterate(data, batch_size, shuffle=False):
        total += _flat_grad(loss(model, batch), params) * batch_size_of(batch)
    return total / max(1, len(data))


def woodfisher_surrogate(v: torch.Tensor, grads: Iterable[torch.Tensor], n_const: int = 1000) -> torch.Tensor:
    """The reference recursion (docs/methods.md, "`iu`", step 3) over ``grads`` (consumes at most N + 2 of them)."""
    k = v.clone()
    o = None
    for i, g in enumerate(grads):
        if o is None:
            o = g.clone()
        else:
            tau = torch.dot(o, g)
            k -= (torch.dot(k, g) / (n_const + tau)) * o
            o -= (tau / (n_const + tau)) * o
        if i > n_const:  # the reference stops once the 0-based index exceeds N: N + 2 samples read
            break
    return k


@dataclass
class InfluenceUnlearning(Unlearner):
    """IU: θ ← θ + α·(m ⊙ k), k the WoodFisher-surrogate F⁻¹v."""

    alpha: float
    n_const: int = 1000
    batch_size: int = 64
    mask_fraction: float | None = None

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        if len(data.retain) == 0:
            raise UnlearnlabError("IU needs a non-empty retain set (its Fisher recursion reads retain samples).")
        if not isinstance(data.retain, TensorData):
            raise UnlearnlabError("IU reads single retain samples by index: pass the retain set in memory.")
        loss = data.family.loss
        was_training = model.training
        mask = (saliency_mask(model, data.forget, self.mask_fraction, loss=loss) if self.mask_fraction is not None
                else None)
        model.eval()
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        n_f, n_r = len(data.forget), len(data.retain)
        g_f = mean_gradient(model, data.forget, params, self.batch_size, loss)
        g_r = mean_gradient(model, data.retain, params, self.batch_size, loss)
        v = n_f / (n_f + n_r) * (g_f - g_r)
        used = min(n_r, self.n_const + 2)

        def per_sample() -> Iterable[torch.Tensor]:
            for j in range(used):
                one = data.retain.gather(torch.arange(j, j + 1, device=data.retain.device))
                yield _flat_grad(loss(model, one), params)
                ctx.report((j + 1) / used)

        k = woodfisher_surrogate(v, per_sample(), self.n_const)
        if not bool(torch.isfinite(k).all()):
            raise UnlearnlabError("IU: the inverse-Fisher product is not finite; the model's gradients diverge.")
        with torch.no_grad():
            offset = 0
            for name, p in named:
                step = k[offset: offset + p.numel()].view_as(p)
                if mask is not None:
                    step = torch.where(mask[name], step, torch.zeros_like(step))
                p.add_(self.alpha * step)
                offset += p.numel()
        ctx.counters.optimizer_steps += 1
        model.train(was_training)
        return {"retain_samples_used": used, "k_norm": float(k.norm()), "v_norm": float(v.norm())}
