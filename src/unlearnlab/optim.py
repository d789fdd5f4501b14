"""Optimizers not shipped with PyTorch.

:class:`Lion` (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023), as in ``lion_pytorch``
which the DualOptim reference uses (dualoptim.md §2). Per parameter, with gradient g, momentum m (zeros
at the first step), lr η, betas (β1, β2) and decoupled weight decay w:

    θ ← θ·(1 − η·w)
    c = β1·m + (1 − β1)·g
    θ ← θ − η·sign(c)
    m ← β2·m + (1 − β2)·g
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class Lion(torch.optim.Optimizer):
    """Sign-of-interpolated-momentum optimizer; state ``exp_avg`` (= m) per parameter."""

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"Lion needs lr > 0, got {lr}.")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion needs betas in [0, 1), got {betas}.")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m = state["exp_avg"]
                if wd:
                    p.mul_(1 - lr * wd)
                p.add_(torch.lerp(p.grad, m, beta1).sign_(), alpha=-lr)
                m.lerp_(p.grad, 1 - beta2)
        return loss
