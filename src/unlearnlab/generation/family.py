"""The generation family: class-conditional diffusion models, batches ``{"x": images in [0, 1], "y": class}``.

Loss (:meth:`Generation.loss`): the ε-loss of :mod:`unlearnlab.generation.diffusion` on x_0 = 2x − 1, with
antithetic timesteps and class dropout p, drawn from the model's noise stream (seeded per run by
:meth:`Generation.start_run`). Objectives: the generic ``loss``, ``neg_loss`` and ``weighted_ascent`` (SFR-on's
adaptive ascent on the per-sample ε-loss) and ``random_labels`` (:class:`PseudoClassTarget`). Saliency and Fisher
masks are computed through the same loss. docs/generation.md gives the protocol and every definition. Across the
ranks of a distributed run the model is called through its DDP wrapper and every draw is the global batch's
(docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnlab.data.inputs import as_source, check_labels
from unlearnlab.data.tensors import Batch, Source, TensorData, Transform
from unlearnlab.distributed.batches import drawn_for
from unlearnlab.distributed.models import unwrapped
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families.base import TaskFamily, register_family
from unlearnlab.generation.diffusion import drop_classes, noised, squared_error, to_model_space
from unlearnlab.generation.evaluation import evaluate_generator
from unlearnlab.generation.models import Denoiser
from unlearnlab.generation.objectives import PseudoClassTarget
from unlearnlab.objectives import GENERIC_OBJECTIVES
from unlearnlab.utils import eval_mode, torch_generator

#: forget/retain samples the health check scores (stored order)
HEALTH_SAMPLES = 256


def epsilon_loss(model: nn.Module, batch: Batch, generator: torch.Generator, reduction: str = "mean") -> torch.Tensor:
    """Σ_pixels (ε − ε̂(x_t, t, ỹ))² per sample (mean over the batch with ``"mean"``); x_t, t, ε, ỹ from
    ``generator`` (docs/generation.md, "Diffusion"). ``model`` is a :class:`Denoiser`, or the DDP wrapper a
    distributed run calls it through (the schedule is read off the denoiser inside); a rank's share of a global
    batch gets its rows of the global batch's draws (docs/scaling.md)."""
    denoiser = unwrapped(model)
    rows = partial(drawn_for, batch)
    x_t, t, noise = noised(to_model_space(batch["x"]), denoiser.timesteps, denoiser.alphas_bar, generator, rows)
    y = drop_classes(batch["y"], denoiser.null_class, denoiser.class_dropout, generator, rows)
    return squared_error(model(x_t, t, y), noise, reduction)


def flip_images(batch: Batch, generator: torch.Generator | None) -> Batch:
    """Random horizontal flip of each image with probability 1/2 (the reference DDPM training augmentation)."""
    x = batch["x"]
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
    return {**batch, "x": torch.where(flip[:, None, None, None], x.flip(-1), x)}


def require_denoiser(model: nn.Module) -> Denoiser:
    """``model`` if it is a class-conditional :class:`Denoiser`, else an error naming the fix."""
    if isinstance(model, Denoiser):
        return model
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "num_class_embeds"):
        if config.num_class_embeds is None:
            raise UnlearnlabError(
                "This UNet2DModel has no class conditioning (num_class_embeds is None): class-wise forgetting needs "
                "a class-conditional model. Build one with unlearnlab.generation.unet_denoiser(...).")
        raise UnlearnlabError(
            "Wrap the UNet2DModel as Denoiser(ConditionalUNet(unet), num_classes=C, image_shape=...) "
            "(unlearnlab.generation) so the family knows its classes, null class and β schedule.")
    raise UnlearnlabError(
        f"The generation family needs a class-conditional noise predictor, got a {type(model).__name__}: wrap your "
        "network net(x_t, t, y) -> ε̂ as unlearnlab.generation.Denoiser(net, num_classes=C, image_shape=...) "
        "(class C is the null class of classifier-free guidance).")


class Generation(TaskFamily):
    name = "generation"
    objectives: ClassVar[dict[str, Any]] = dict(GENERIC_OBJECTIVES)

    def loss(self, model: nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        denoiser = require_denoiser(unwrapped(model))
        return epsilon_loss(model, batch, denoiser.noise, reduction)

    def start_run(self, model: nn.Module, ctx: Any) -> None:
        """Seed the model's noise stream from the run's seed (component "diffusion-noise")."""
        if isinstance(model, Denoiser):
            model.seed_noise(ctx.seed)

    def as_source(self, obj: Any, role: str, device: torch.device) -> Source:
        source = as_source(obj, role, device)
        if isinstance(source, TensorData):
            check_images(source, role)
        return source

    def transform(self, augment: bool) -> Transform | None:
        return flip_images if augment else None

    def inspect(self, model: nn.Module, sources: Mapping[str, Source], task: Any = None) -> dict[str, Any]:
        """``{"num_classes", "timesteps", "image_shape"}`` after checking the model is a class-conditional noise
        predictor for these images and the labels lie in [0, C)."""
        denoiser = require_denoiser(model)
        classes = denoiser.num_classes
        expected = getattr(task, "num_classes", None)
        if expected is not None and expected != classes:
            raise UnlearnlabError(f"The model generates {classes} classes but the task has {expected}: build the "
                                  f"model with num_classes={expected}.")
        for role, source in sources.items():
            if isinstance(source, TensorData):
                check_images(source, role)
                check_labels(source, classes, role)
                if len(source) and tuple(source.x.shape[1:]) != denoiser.image_shape:
                    raise UnlearnlabError(
                        f"The {role} images have shape {tuple(source.x.shape[1:])} but the model generates "
                        f"{denoiser.image_shape}: pass images of the model's shape (resize or pool them).")
        _probe(denoiser)
        return {"num_classes": classes, "timesteps": denoiser.timesteps, "image_shape": denoiser.image_shape}

    def health(self, model: nn.Module, forget: Source, retain: Source) -> dict[str, float] | None:
        """Mean ε-loss on up to 256 forget and 256 retain samples with a fixed noise draw (seed 0), eval mode."""
        if not isinstance(model, Denoiser):
            return None
        out = {}
        with torch.no_grad(), eval_mode(model):
            for name, source in (("forget", forget), ("retain", retain)):
                if isinstance(source, TensorData) and len(source):
                    batch = source.gather(torch.arange(min(HEALTH_SAMPLES, len(source)), device=source.device))
                    gen = torch_generator(0, "health", model.alphas_bar.device)
                    out[name] = float(epsilon_loss(model, batch, gen))
        return out

    def health_warnings(self, before: dict[str, float], after: dict[str, float]) -> list[str]:
        """The retain ε-loss more than doubled (collapse), or the forget ε-loss moved by less than 1 %."""
        warns = []
        if "retain" in before and after["retain"] > 2.0 * before["retain"]:
            warns.append(f"the retain ε-loss rose from {before['retain']:.4g} to {after['retain']:.4g}: the model may "
                         "have stopped generating the retained classes; lower the learning rate or the iterations.")
        if "forget" in before and abs(after["forget"] - before["forget"]) < 0.01 * before["forget"]:
            warns.append(f"the forget ε-loss did not move ({before['forget']:.4g} → {after['forget']:.4g}): the "
                         "method may be too weak for this model (raise the learning rate or the iterations).")
        return warns

    def evaluate(self, model: nn.Module, task: Any, reference: Any = None, **options: Any) -> Any:
        """:func:`~unlearnlab.generation.evaluation.evaluate_generator` (needs ``classifier=``)."""
        return evaluate_generator(require_denoiser(model), task, reference=reference, **options)


def check_images(data: TensorData, role: str) -> None:
    """Images ``x`` of shape [N, C, H, W] with values in [0, 1], integer classes ``y``."""
    if "x" not in data.fields or "y" not in data.fields:
        raise UnlearnlabError(f"The {role} data need fields 'x' (images) and 'y' (classes), got "
                              f"{', '.join(data.fields)}.")
    x = data.x
    if x.ndim != 4:
        raise UnlearnlabError(f"The {role} images have shape {tuple(x.shape)}: pass [N, channels, H, W].")
    if len(x) and (float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6):
        raise UnlearnlabError(f"The {role} images span [{float(x.min()):.3g}, {float(x.max()):.3g}]: pass images in "
                              "[0, 1] (the family maps them to [-1, 1] itself).")


def _probe(model: Denoiser) -> None:
    """One eval-mode forward on two zero images; the output must have the input's shape."""
    device = next(model.parameters()).device
    x = torch.zeros((2, *model.image_shape), device=device)
    t = torch.zeros(2, dtype=torch.long, device=device)
    y = torch.tensor([0, model.null_class], device=device)
    with torch.no_grad(), eval_mode(model):
        try:
            out = model(x, t, y)
        except (RuntimeError, IndexError) as err:
            raise UnlearnlabError(f"The noise predictor fails on images of shape {model.image_shape} with class "
                                  f"labels 0 … {model.num_classes} (the last is the null class): {err}") from err
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UnlearnlabError(f"The noise predictor returns {shape} for inputs {tuple(x.shape)}: it must predict ε "
                              "with the input's shape.")


Generation.objectives.update({"random_labels": PseudoClassTarget})
GENERATION = register_family(Generation())
