"""Overhead of the generation family: our DDIM sampler vs a bare loop, our training step vs a bare ε-MSE step.

Candidates, timed side by side (interleaved round-robin, order rotated each repeat, CPU and wall clocks; ratios =
geometric means of per-repeat ratios with a 95 % t-interval, bench/common.py), on the same model and inputs:

* **sampling** (images/s): ``unlearnlab.generation.sample`` (class-conditional DDIM, η = 1, guidance w = 2, S steps)
  against ``bare``: the same loop written inline — per batch, initial noise; per step, one forward of the model over
  the doubled batch (classes and null class), ε̃ = (1 + w)·ε̂_y − w·ε̂_∅, x̂_0, σ, the DDIM update with fresh noise;
  the result mapped to [0, 1]. Both draw their noise from one seeded generator and make the same model calls;
* **training** (steps/s): ``unlearnlab.generation.train_denoiser`` (``unlearnlab.train`` with the family's ε-loss:
  antithetic timesteps, class dropout 0.1, the summed squared error; Adam, gradient clip 1.0; one epoch per call)
  against ``bare``: per batch of the same shuffled data, x_0 = 2x − 1, uniform t, ε, x_t = √ᾱ·x_0 + √(1−ᾱ)·ε,
  labels dropped to the null class with probability 0.1, loss = mean over the batch of the summed squared error,
  ``zero_grad``, backward, clip 1.0, Adam step — nothing else.

Workloads: the digits tier's model (residual MLP, 1×8×8, 0.52 M parameters) and the Fashion-MNIST tier's UNet
(``unet:fmnist`` at 14×14, 0.18 M parameters; needs the extra ``gen``). Each timed training call copies the same
initial model outside the timed region. ``--clock`` picks the clock of the warnings (default cpu on a CPU device,
wall on CUDA).

    python bench/generation.py [--repeats 7] [--clock auto|cpu|wall] [--only digits|fmnist]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from unlearnlab.data.tensors import TensorData
from unlearnlab.generation import SamplerSettings, sample, train_denoiser
from unlearnlab.generation.diffusion import to_image_space
from unlearnlab.generation.models import Denoiser
from unlearnlab.generation.sampler import timestep_sequence
from unlearnlab.generation.tiers import build_model, get_tier
from unlearnlab.generation.training import diffusion_recipe

GUIDANCE = 2.0


def bare_sample(model: Denoiser, classes: torch.Tensor, steps: int, batch_size: int, seed: int) -> torch.Tensor:
    """The DDIM loop of the module docstring, inline."""
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    seq = timestep_sequence(model.timesteps, steps)
    alphas = model.alphas_bar.double().cpu()
    out = []
    with torch.no_grad():
        model.eval()
        for y in classes.split(batch_size):
            y = y.to(device)
            null = torch.full_like(y, model.null_class)
            yy = torch.cat([y, null])
            x = torch.randn((len(y), *model.image_shape), generator=gen).to(device)
            for i in reversed(range(len(seq))):
                a = float(alphas[seq[i]])
                b = float(alphas[seq[i - 1]]) if i > 0 else 1.0
                t = torch.full((2 * len(y),), seq[i], dtype=torch.long, device=device)
                cond, uncond = model(torch.cat([x, x]), t, yy).chunk(2)
                eps = (1 + GUIDANCE) * cond - GUIDANCE * uncond
                x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
                sigma = ((1 - a / b) * (1 - b) / (1 - a)) ** 0.5 if i > 0 else 0.0
                x = b ** 0.5 * x0 + (max(1 - b - sigma ** 2, 0.0)) ** 0.5 * eps
                if i > 0:
                    x = x + sigma * torch.randn(x.shape, generator=gen).to(device)
            out.append(to_image_space(x).cpu())
    return torch.cat(out)


def bare_train(model: Denoiser, x: torch.Tensor, y: torch.Tensor, batch_size: int, lr: float, seed: int) -> None:
    """One epoch of the bare ε-MSE step of the module docstring."""
    gen = torch.Generator().manual_seed(seed)
    device = x.device
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    alphas = model.alphas_bar.to(device).float()
    model.train()
    perm = torch.randperm(len(x), generator=gen).to(device)
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        x0 = x[idx] * 2 - 1
        t = torch.randint(0, model.timesteps, (len(idx),), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        a = alphas[t].view(-1, *([1] * (x0.ndim - 1)))
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        drop = torch.rand(len(idx), generator=gen).to(device) < model.class_dropout
        labels = torch.where(drop, torch.full_like(y[idx], model.null_class), y[idx])
        loss = (model(x_t, t, labels) - noise).square().flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def workload(name: str, shape: tuple[int, ...], n_train: int, n_images: int, steps: int, repeats: int,
             args: argparse.Namespace, device: torch.device, clock: str) -> None:
    model = build_model(get_tier(name), shape, 10, seed=1).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_train, *shape, generator=gen).to(device)
    y = torch.randint(0, 10, (n_train,), generator=gen).to(device)
    classes = torch.arange(n_images) % 10
    settings = SamplerSettings(steps=steps, guidance=GUIDANCE, batch_size=n_images)
    recipe = diffusion_recipe(epochs=1)

    def ours_sample() -> None:
        sample(model, classes, settings, torch.Generator().manual_seed(1))

    def bare_sampler() -> None:
        bare_sample(model, classes, steps, n_images, 1)

    def ours_train() -> dict[str, float]:
        m = copy.deepcopy(model)
        start = common.Stamp.now(device)
        train_denoiser(m, TensorData.of(x, y), recipe, seed=1)
        return start.since(device)

    def bare_trainer() -> dict[str, float]:
        m = copy.deepcopy(model)
        start = common.Stamp.now(device)
        bare_train(m, x, y, recipe.batch_size, recipe.lr, 1)
        return start.since(device)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    shown = common.clocks_for(device)
    t = common.interleaved_timings({"bare": bare_sampler, "unlearnlab": ours_sample}, repeats, args.warmup, device)
    print()
    common.print_ratios(t, "bare", clock=clock, work=n_images, work_unit="img/s", tolerance=args.tolerance,
                        clocks=shown,
                        title=f"{name} sampling: {get_tier(name).model} ({params:.2f} M params), {n_images} images "
                              f"of {'x'.join(map(str, shape))}, DDIM {steps} steps, w = {GUIDANCE:g}:")
    t = common.interleaved_timings({"bare": bare_trainer, "unlearnlab": ours_train}, repeats, args.warmup, device)
    n_steps = -(-n_train // recipe.batch_size)
    print()
    common.print_ratios(t, "bare", clock=clock, work=n_steps, work_unit="steps/s", tolerance=args.tolerance,
                        clocks=shown,
                        title=f"{name} training: {n_train} images, batch {recipe.batch_size}, {n_steps} steps per "
                              "call (Adam 2e-4, clip 1.0):")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", choices=("digits", "fmnist"), default=None)
    common.add_arguments(ap)
    args = ap.parse_args(argv)
    device, clock = common.setup(ap, args)
    print(f"# bench/generation.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# repeats={args.repeats}, warm-up rounds={args.warmup}; decision clock={clock}")
    if args.only in (None, "digits"):
        workload("digits", (1, 8, 8), 1280, 500, 50, args.repeats, args, device, clock)
    if args.only in (None, "fmnist"):
        workload("fmnist", (1, 14, 14), 1280, 100, 10, args.repeats, args, device, clock)


if __name__ == "__main__":
    main()
