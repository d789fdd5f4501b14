"""The generation family's own objective: random labels for a class-conditional diffusion model
(docs/generation.md, "Methods").

``random_labels`` (:class:`PseudoClassTarget`), as the SalUn and EUPMU DDPM code define RL for diffusion: with x_t
noised from a forget image (antithetic t, fresh ε), ỹ = dropout(y) and ŷ = dropout((y + 1) mod C),

    L = mean over samples and pixels of (ε̂(x_t, t, ỹ) − sg[ε̂(x_t, t, ŷ)])²

so the model learns to predict, for the forgotten class, the noise it predicts for the next class; sg[·] stops the
gradient (the target is computed without a graph). Both predictions use the training-time class dropout, as the
reference code calls the model in training mode for both. Unlike the ε-loss this is a mean over pixels (the
reference's ``MSELoss``), which the SalUn weight α = 1e-3 on the summed retain ε-loss is calibrated against.
Every sample has the same number of pixels, so it is a mean over samples: the ranks of a distributed run combine it
as any per-sample mean, with the draws of the global batch (docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.distributed.batches import drawn_for
from unlearnlab.distributed.models import unwrapped
from unlearnlab.generation.diffusion import drop_classes, noised, to_model_space
from unlearnlab.generation.models import Denoiser
from unlearnlab.objectives import Objective


def pseudo_classes(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(y + 1) mod C: the pseudo-class each forget sample is pushed towards."""
    return (y + 1) % num_classes


@dataclass
class PseudoClassTarget(Objective):
    """RL for diffusion (module docstring); noise, timesteps and dropout from the model's seeded noise stream."""

    def __call__(self, model: nn.Module, batch, ctx) -> torch.Tensor:
        denoiser: Denoiser = unwrapped(model)  # the DDP wrapper of a distributed run holds it
        gen, rows = denoiser.noise, partial(drawn_for, batch)
        x_t, t, _ = noised(to_model_space(batch["x"]), denoiser.timesteps, denoiser.alphas_bar, gen, rows)
        y = batch["y"]
        out = model(x_t, t, drop_classes(y, denoiser.null_class, denoiser.class_dropout, gen, rows))
        with torch.no_grad():
            target = model(x_t, t, drop_classes(pseudo_classes(y, denoiser.num_classes), denoiser.null_class,
                                                denoiser.class_dropout, gen, rows))
        return F.mse_loss(out, target)
