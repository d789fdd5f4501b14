"""Optimizers not shipped with PyTorch: Lion, and the shared-state pair of DualOptim's ablation.

:class:`Lion` (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023), as in ``lion_pytorch``
which the DualOptim reference uses (docs/methods.md, DualOptim "Math"). Per parameter, with gradient g,
momentum m (zeros at the first step), lr η, betas (β1, β2) and decoupled weight decay w:

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


class _SharedStateOptimizer(torch.optim.Optimizer):
    """An optimizer whose per-parameter state dict is shared with its partner (see :func:`shared_hybrid`)."""

    def share_state_with(self, other: torch.optim.Optimizer) -> None:
        self.state = other.state


class HybridAdam(_SharedStateOptimizer):
    """The forget side of DualOptim's shared ablation: an AdamW step (decoupled decay) on the shared state
    ``exp_avg`` (m), ``exp_avg_sq`` (v) and ``step`` (t)::

        t ← t + 1;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
        θ ← θ·(1 − η·w) − η·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = _init_state(self.state[p], p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                if wd:
                    p.mul_(1 - lr * wd)
                denom = (v / (1 - beta2 ** t)).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))
        return None


class HybridSGD(_SharedStateOptimizer):
    """The retain side of DualOptim's shared ablation: SGD with an exponential-moving-average momentum on the same
    ``exp_avg`` (m) the forget side uses, coupled decay::

        g' = g + w·θ;  m ← β1·m + (1 − β1)·g';  θ ← θ − η·m
    """

    def __init__(self, params, lr: float, beta1: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "beta1": beta1, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        for group in self.param_groups:
            lr, beta1, wd = group["lr"], group["beta1"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = _init_state(self.state[p], p)
                g = p.grad.add(p, alpha=wd) if wd else p.grad
                state["exp_avg"].lerp_(g, 1 - beta1)
                p.add_(state["exp_avg"], alpha=-lr)
        return None


def _init_state(state: dict, p: torch.Tensor) -> dict:
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def shared_hybrid(params: list[torch.nn.Parameter], forget_lr: float, retain_lr: float,
                  betas: tuple[float, float] = (0.9, 0.999), forget_weight_decay: float = 0.0,
                  retain_weight_decay: float = 0.0) -> tuple[HybridAdam, HybridSGD]:
    """DualOptim's shared ablation of the default pair: an AdamW-style forget optimizer and an SGD-style retain
    optimizer over the same parameters with **one** state (one momentum buffer fed by both gradient streams), so
    "dual vs shared" differs in the sharing of state alone."""
    params = list(params)
    forget = HybridAdam(params, forget_lr, betas, weight_decay=forget_weight_decay)
    retain = HybridSGD(params, retain_lr, betas[0], weight_decay=retain_weight_decay)
    retain.share_state_with(forget)
    return forget, retain
