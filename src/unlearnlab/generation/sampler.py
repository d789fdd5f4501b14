"""DDIM sampling with classifier-free guidance (docs/generation.md, "Sampling").

Guidance (the reference DDPM code's form): ε̃ = (1 + w)·ε̂(x, t, y) − w·ε̂(x, t, ∅), w ≥ 0 (w = 0: the conditional
prediction alone, one forward); both predictions come from one forward over the doubled batch.

Timesteps: S steps t_i = ⌊i·T/S⌋, i = 0 … S−1 (the reference's uniform skip when S divides T), visited from
t_{S−1} down to t_0. One step from t to the next smaller s (ᾱ_s = 1 after t_0), with a = ᾱ_t, b = ᾱ_s:

    x̂_0 = (x_t − √(1 − a)·ε̃)/√a
    σ = η·√((1 − a/b)(1 − b)/(1 − a)),   c = √(1 − b − σ²)
    x_s = √b·x̂_0 + σ·z + c·ε̃,   z ~ N(0, I)

η = 1 (default, as the papers' sampler) is ancestral-like, η = 0 deterministic DDIM. The result is mapped back to
[0, 1] images. Initial noise and z come from one generator, batch after batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation.diffusion import to_image_space
from unlearnlab.generation.models import Denoiser
from unlearnlab.utils import eval_mode


@dataclass(frozen=True)
class SamplerSettings:
    """DDIM steps S, η, guidance scale w and the number of images denoised together."""

    steps: int = 50
    eta: float = 1.0
    guidance: float = 2.0
    batch_size: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise UnlearnlabError(f"The sampler needs steps >= 1 (an integer), got {self.steps!r}: the number of "
                                  "denoising steps is part of the protocol (50 in the mini tiers, 1000 in the "
                                  "paper's).")
        if not self.guidance >= 0:
            raise UnlearnlabError(f"The guidance scale must be >= 0 (0 = no guidance; the papers use 2.0), got "
                                  f"{self.guidance}.")
        if not self.eta >= 0:
            raise UnlearnlabError(f"eta must be >= 0 (1 = the papers' sampler, 0 = deterministic DDIM), got "
                                  f"{self.eta}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UnlearnlabError(f"batch_size must be an integer >= 1, got {self.batch_size!r}.")

    def as_dict(self) -> dict[str, Any]:
        return {"sampler": "ddim", **asdict(self)}


def timestep_sequence(timesteps: int, steps: int) -> list[int]:
    """t_i = ⌊i·T/S⌋, i = 0 … S−1 (increasing); S must not exceed T."""
    if steps > timesteps:
        raise UnlearnlabError(f"{steps} sampler steps exceed the model's T = {timesteps} diffusion steps: use at "
                              f"most {timesteps}.")
    return [(i * timesteps) // steps for i in range(steps)]


def guided_eps(model: Denoiser, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guidance: float) -> torch.Tensor:
    """ε̃ = (1 + w)·ε̂(x, t, y) − w·ε̂(x, t, ∅); w = 0 is ε̂(x, t, y)."""
    if guidance == 0:
        return model(x, t, y)
    null = torch.full_like(y, model.null_class)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
    cond, uncond = both.chunk(2)
    return (1.0 + guidance) * cond - guidance * uncond


def ddim_step(x: torch.Tensor, eps: torch.Tensor, a: float | torch.Tensor, b: float | torch.Tensor, eta: float,
              noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step (x_s, x̂_0) from x_t with ᾱ_t = a, ᾱ_s = b (module docstring); ``noise`` z may be None when σ = 0."""
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
    b = torch.as_tensor(b, dtype=x.dtype, device=x.device)
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    sigma = eta * ((1 - a / b) * (1 - b) / (1 - a)).clamp(min=0).sqrt()
    c = (1 - b - sigma ** 2).clamp(min=0).sqrt()
    out = b.sqrt() * x0 + c * eps
    if noise is not None:
        out = out + sigma * noise
    return out, x0


@torch.no_grad()
def sample(model: Denoiser, classes: torch.Tensor, settings: SamplerSettings, generator: torch.Generator
           ) -> torch.Tensor:
    """Images in [0, 1] (on the CPU), one per entry of ``classes``, in that order (see module docstring)."""
    if len(classes) and (int(classes.min()) < 0 or int(classes.max()) >= model.num_classes):
        raise UnlearnlabError(f"Classes to sample must lie in [0, {model.num_classes - 1}], got "
                              f"[{int(classes.min())}, {int(classes.max())}].")
    device = next(model.parameters()).device
    seq = timestep_sequence(model.timesteps, settings.steps)
    alphas = model.alphas_bar.double().cpu()
    out = []
    with eval_mode(model):
        for y in classes.split(settings.batch_size):
            y = y.to(device)
            x = _randn((len(y), *model.image_shape), generator, device)
            for i in reversed(range(len(seq))):
                t = torch.full((len(y),), seq[i], dtype=torch.long, device=device)
                a = float(alphas[seq[i]])
                b = float(alphas[seq[i - 1]]) if i > 0 else 1.0
                eps = guided_eps(model, x, t, y, settings.guidance)
                noise = _randn(x.shape, generator, device) if settings.eta > 0 and i > 0 else None
                x, _ = ddim_step(x, eps, a, b, settings.eta, noise)
            out.append(to_image_space(x).cpu())
    return torch.cat(out) if out else torch.zeros((0, *model.image_shape))


def _randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)
