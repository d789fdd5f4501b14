"""Class-conditional noise predictors: :class:`Denoiser` (any ε-network with its diffusion settings) and the plain
PyTorch digits network (docs/generation.md, "Models").

A :class:`Denoiser` wraps a network ``net(x_t, t, y) -> ε̂`` (same shape as x_t) with what sampling and the loss
need: the class count C (labels 0 … C−1; label C is the null class of classifier-free guidance), the image shape,
the β schedule (ᾱ stored as a buffer, so a checkpoint of another T does not load) and the class-dropout rate p.
It also carries the generator its loss draws noise, timesteps and dropout from: the family seeds it at the start
of every run (:meth:`Denoiser.seed_noise`), so runs are reproducible whatever the model did before.

:func:`digits_denoiser` builds the CI tier's network, a residual MLP on the flattened 8×8 image:
h = W_in·x; e = MLP(sinusoidal(t)) + E[y]; per block h ← h + W_2·SiLU(W_1·SiLU(LN(h)) + e); ε̂ = W_out·SiLU(LN(h)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation.diffusion import ScheduleSpec
from unlearnlab.utils import torch_generator

NOISE_COMPONENT = "diffusion-noise"


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps: [sin(t·ω_k), cos(t·ω_k)], ω_k = 10000^(−k/(dim/2)), k < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class Denoiser(nn.Module):
    """ε̂ = net(x_t, t, y) with its class count, image shape, β schedule and class-dropout rate (module docstring)."""

    def __init__(self, net: nn.Module, num_classes: int, image_shape: Sequence[int],
                 schedule: ScheduleSpec | None = None, class_dropout: float = 0.1):
        super().__init__()
        if num_classes < 2:
            raise UnlearnlabError(f"A class-conditional model needs at least 2 classes, got {num_classes}.")
        if not 0.0 <= class_dropout < 1.0:
            raise UnlearnlabError(f"class_dropout must lie in [0, 1), got {class_dropout}.")
        self.net = net
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.schedule = schedule or ScheduleSpec()
        self.class_dropout = float(class_dropout)
        self.register_buffer("alphas_bar", self.schedule.alphas_bar())
        self.noise = torch_generator(0, NOISE_COMPONENT)

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def timesteps(self) -> int:
        return self.schedule.timesteps

    def seed_noise(self, seed: int) -> None:
        """Restart the noise stream from ``seed`` (component "diffusion-noise"), on the parameters' device."""
        self.noise = torch_generator(seed, NOISE_COMPONENT, next(self.parameters()).device)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, y)

    def settings(self) -> dict[str, object]:
        """What a result row records about the model's diffusion (schedule, class count, dropout)."""
        return {**self.schedule.as_dict(), "num_classes": self.num_classes, "class_dropout": self.class_dropout,
                "image_shape": list(self.image_shape)}


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(nn.functional.silu(self.norm(h))) + e))


class DigitsNet(nn.Module):
    """The residual conditional MLP of :func:`digits_denoiser` (``net(x_t, t, y)``)."""

    def __init__(self, image_shape: Sequence[int], num_classes: int, width: int = 256, depth: int = 3,
                 time_dim: int = 64):
        super().__init__()
        dim = math.prod(image_shape)
        self.time_dim = time_dim
        self.inp = nn.Linear(dim, width)
        self.time = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.classes = nn.Embedding(num_classes + 1, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.time(timestep_features(t, self.time_dim)) + self.classes(y)
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, e)
        return self.out(nn.functional.silu(self.norm(h))).view_as(x)


def digits_denoiser(image_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, *, timesteps: int = 1000,
                    width: int = 256, depth: int = 3, class_dropout: float = 0.1, seed: int = 1) -> Denoiser:
    """The CI tier's model: :class:`DigitsNet` in a :class:`Denoiser` (PyTorch default init under ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitsNet(image_shape, num_classes, width, depth)
    return Denoiser(net, num_classes, image_shape, ScheduleSpec(timesteps), class_dropout)
