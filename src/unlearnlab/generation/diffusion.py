"""Diffusion math of the generation family: β schedule, forward noising, the ε-loss (docs/generation.md, "Diffusion").

* Linear schedule: β_t = β_start + (β_end − β_start)·t/(T − 1), t = 0 … T−1 (1e-4 → 0.02 by default),
  ᾱ_t = Π_{s ≤ t} (1 − β_s), computed in float64.
* Forward process: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, ε ~ N(0, I), images x_0 in [−1, 1].
* Antithetic timesteps: for a batch of n, draw m = ⌊n/2⌋ + 1 values u ~ U{0 … T−1} and use the first n of
  (u_1 … u_m, T−1−u_1 … T−1−u_m), so the two halves of a batch sit at mirrored noise levels.
* Class dropout (classifier-free guidance training): each label is replaced by the null class C with probability p.
* ε-loss of sample i: ℓ_i = Σ_pixels (ε_i − ε̂(x_t, t, ỹ_i))², the squared error summed over every pixel and
  channel; ``reduction="mean"`` averages ℓ_i over the batch (the reference DDPM code's loss, so its learning rates,
  gradient clip 1.0 and the SalUn weight α = 1e-3 keep their meaning).

Noise, timesteps and dropout are drawn from one ``torch.Generator`` passed in, so a run is reproducible. A rank of
a distributed run draws them for the whole global batch and keeps its rows (``rows``, docs/scaling.md), so every
sample gets the noise, timestep and dropout it gets on one device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from unlearnlab.errors import UnlearnlabError

#: ``rows(draw)``: ``draw(n)`` for the rows of a batch — n = its size on one device; in a distributed run the
#: global batch's size, this rank's rows kept (:func:`unlearnlab.distributed.batches.drawn_for`)
Rows = Callable[[Callable[[int], torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class ScheduleSpec:
    """The linear β schedule's settings: T steps from ``beta_start`` to ``beta_end``."""

    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if not isinstance(self.timesteps, int) or isinstance(self.timesteps, bool) or self.timesteps < 2:
            raise UnlearnlabError(f"timesteps must be an integer >= 2, got {self.timesteps!r}.")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise UnlearnlabError(f"The β schedule needs 0 < beta_start <= beta_end < 1, got {self.beta_start} → "
                                  f"{self.beta_end}.")

    def betas(self) -> torch.Tensor:
        """β_t, t = 0 … T−1, float64."""
        return torch.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=torch.float64)

    def alphas_bar(self) -> torch.Tensor:
        """ᾱ_t = Π_{s ≤ t}(1 − β_s), float64."""
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def as_dict(self) -> dict[str, float | int | str]:
        return {"schedule": "linear", "timesteps": self.timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end}


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (how every unlearnlab dataset stores them) → the diffusion space [−1, 1]: 2x − 1."""
    return images * 2.0 - 1.0


def to_image_space(x: torch.Tensor) -> torch.Tensor:
    """Diffusion space → images in [0, 1]: clamp((x + 1)/2, 0, 1)."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def antithetic_timesteps(n: int, timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """n timesteps (int64, on the generator's device): u_1 … u_m and T−1−u_1 … T−1−u_m, the first n kept."""
    u = torch.randint(0, timesteps, (n // 2 + 1,), generator=generator, device=generator.device)
    return torch.cat([u, timesteps - 1 - u])[:n]


def own_rows(x: torch.Tensor) -> Rows:
    """Draws for the rows of ``x`` itself (a single-device batch)."""
    return lambda draw: draw(len(x))


def drop_classes(y: torch.Tensor, null_class: int, p: float, generator: torch.Generator,
                 rows: Rows | None = None) -> torch.Tensor:
    """Each label replaced by ``null_class`` with probability ``p`` (independent draws for ``rows``, default
    ``y``'s own); ``p = 0``: ``y`` itself."""
    if p <= 0:
        return y
    rows = rows or own_rows(y)
    u = rows(lambda n: torch.rand((n, *y.shape[1:]), generator=generator, device=generator.device))
    drop = (u < p).to(y.device)
    return torch.where(drop, torch.full_like(y, null_class), y)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_bar: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε (ᾱ gathered at ``t`` and broadcast over the image dimensions)."""
    a = alphas_bar.to(x0.device)[t.to(x0.device)].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def noised(x0: torch.Tensor, timesteps: int, alphas_bar: torch.Tensor, generator: torch.Generator,
           rows: Rows | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, ε)`` for a batch x_0: antithetic t, fresh ε, both from ``generator`` (drawn for ``rows``, default
    x_0's own)."""
    rows = rows or own_rows(x0)
    t = rows(lambda n: antithetic_timesteps(n, timesteps, generator)).to(x0.device)
    noise = rows(lambda n: torch.randn((n, *x0.shape[1:]), generator=generator, device=generator.device,
                                       dtype=x0.dtype)).to(x0.device)
    return q_sample(x0, t, noise, alphas_bar), t, noise


def squared_error(prediction: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Σ_pixels (prediction − target)² per sample; averaged over the batch (``"mean"``) or not (``"none"``)."""
    if reduction not in ("mean", "none"):
        raise UnlearnlabError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
    per_sample = (prediction - target).square().flatten(1).sum(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample
