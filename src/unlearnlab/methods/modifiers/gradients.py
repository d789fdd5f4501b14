"""Gradient modifiers: Gaussian gradient noise (MinNorm-OG's noisy GD) and gradient-norm clipping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.modifiers.base import Modifier

ALL_PHASES = ("forget", "retain", "joint")


@dataclass
class GradientNoise(Modifier):
    """g ← g + σ·ξ, ξ ~ N(0, I) per entry of every trainable parameter's gradient, drawn from the run's
    ``gradient-noise`` generator; first of the gradient hooks (before a mask and a clip)."""

    noise_std: float = 0.1
    order: ClassVar[int] = 10

    def __post_init__(self) -> None:
        if self.noise_std < 0:
            raise UnlearnlabError(f"noise_std must be >= 0, got {self.noise_std}.")

    def on_gradients(self, stepper, phase: str) -> None:
        if not self.noise_std:
            return
        gen = stepper.ctx.generator("gradient-noise")
        with torch.no_grad():
            for p in stepper.model.parameters():
                if p.requires_grad and p.grad is not None:
                    noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                    p.grad.add_(self.noise_std * noise.to(p.device))


@dataclass
class GradientClip(Modifier):
    """Scale the gradients of the steps of ``clip_phases`` to global ℓ2 norm at most ``clip`` (after a mask);
    ``clip=None`` does nothing."""

    clip: float | None = None
    clip_phases: tuple[str, ...] = ALL_PHASES
    order: ClassVar[int] = 30
    internal: ClassVar[frozenset[str]] = frozenset({"clip_phases"})
    fsdp: ClassVar[bool] = True  # clip_grad_norm_ takes the global norm of sharded gradients

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:
            raise UnlearnlabError(f"clip must be > 0 (or None for no clipping), got {self.clip}.")
        unknown = set(self.clip_phases) - set(ALL_PHASES)
        if unknown:
            raise UnlearnlabError(f"clip_phases {sorted(unknown)}: use phases among {', '.join(ALL_PHASES)}.")

    def on_gradients(self, stepper, phase: str) -> None:
        if self.clip is not None and phase in self.clip_phases:
            torch.nn.utils.clip_grad_norm_([p for p in stepper.model.parameters() if p.grad is not None], self.clip)
