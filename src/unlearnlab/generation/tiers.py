"""The tiers of the class-wise DDPM protocol: data, model, budgets, sampler and gates per dataset
(docs/generation.md, "Tiers").

:func:`generation_task` builds the forget task (a :class:`~unlearnlab.data.forget.ForgetTask` with
``family="generation"``: D_f = every training image of class c, D_test = the held-out images of the other classes),
average-pooling the images when the tier runs at a lower resolution; :func:`classifier_data` gives the evaluation
classifier's train/test data (every class); :func:`build_model` the tier's noise predictor.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unlearnlab.data.datasets import ImageDataset, load_dataset
from unlearnlab.data.forget import ForgetTask, make_task
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.generation.family import GENERATION
from unlearnlab.generation.models import Denoiser, digits_denoiser
from unlearnlab.generation.sampler import SamplerSettings
from unlearnlab.generation.training import DIGITS_RECIPE, diffusion_recipe
from unlearnlab.generation.unet import UNET_CONFIGS, unet_denoiser
from unlearnlab.training import Recipe


@dataclass(frozen=True)
class Tier:
    """One tier's pinned settings (each recorded in every result row through :meth:`settings`)."""

    name: str
    dataset: str
    #: side length the images are average-pooled to (None: as stored)
    resolution: int | None
    #: "digits-mlp" or "unet:<config>" (:data:`unlearnlab.generation.unet.UNET_CONFIGS`)
    model: str
    timesteps: int
    recipe: Recipe
    sampler: SamplerSettings
    n_forget: int
    n_per_class: int
    #: gate: lowest per-class recognition (%) of the original's samples
    recognition: float
    #: gate: the original's fd_clf at most this multiple of the real-vs-real floor
    fd_factor: float = 2.0
    classifier_epochs: int = 30
    flip: bool = False
    #: the presets' profile: "default" (their digits budgets) or "reference" (the papers' CIFAR-10 budgets)
    profile: str = "default"
    #: preset → hyperparameter overrides on top of the profile
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def overridden(self, tier: Mapping[str, Any] | None = None, sampler: Mapping[str, Any] | None = None) -> Tier:
        """This tier with a run's changes: ``tier`` keys among :data:`TIER_KEYS` (``epochs`` = the originals' and
        retrains' epochs), ``sampler`` keys among the :class:`SamplerSettings` fields. The gates cannot be changed.
        Each value is type-checked; a bad one raises an error naming the key."""
        changes: dict[str, Any] = {}
        for key, value in (tier or {}).items():
            if key not in TIER_KEYS:
                raise unknown_name("tier setting", str(key), TIER_KEYS)
            if key == "model":
                if not isinstance(value, str) or not _known_model(value):
                    raise UnlearnlabError(f"tier.model {value!r}: use 'digits-mlp' or 'unet:<config>' with a config "
                                          f"among {', '.join(UNET_CONFIGS)}.")
                changes["model"] = value
            elif key == "epochs":
                changes["recipe"] = self.recipe.replace(epochs=_integer(f"tier.{key}", value, 1))
            else:
                changes[key] = _integer(f"tier.{key}", value, TIER_KEYS[key])
        fields = {f.name for f in dataclasses.fields(SamplerSettings)}
        for key, value in (sampler or {}).items():
            if key not in fields:
                raise unknown_name("sampler setting", str(key), sorted(fields))
            if key in ("steps", "batch_size"):
                _integer(f"sampler.{key}", value, None)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UnlearnlabError(f"sampler.{key} must be a number, got {value!r}.")
        if sampler:
            changes["sampler"] = dataclasses.replace(self.sampler, **sampler)
        return dataclasses.replace(self, **changes) if changes else self

    def settings(self) -> dict[str, Any]:
        return {"tier": self.name, "dataset": self.dataset, "resolution": self.resolution, "model": self.model,
                "timesteps": self.timesteps, "recipe": self.recipe.to_dict(), "sampler": self.sampler.as_dict(),
                "n_forget": self.n_forget, "n_per_class": self.n_per_class, "recognition_gate": self.recognition,
                "fd_factor_gate": self.fd_factor, "flip": self.flip, "profile": self.profile,
                "budgets": self.budgets}


#: tier settings a run may change (``--set tier.KEY=VALUE``) → their lowest value (``epochs``: the originals' and
#: retrains' epochs; ``model``: a model name); every change is recorded, and the gates cannot be changed
TIER_KEYS: dict[str, int | None] = {"epochs": 1, "timesteps": 2, "model": None, "n_forget": 1, "n_per_class": 2,
                                    "classifier_epochs": 1}


def _integer(key: str, value: Any, low: int | None) -> int:
    """``value`` if it is an integer (not a bool); ``low`` is checked here when given, else by the settings."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise UnlearnlabError(f"{key} must be an integer{bound}, got {value!r}.")
    return value


def _known_model(name: str) -> bool:
    kind, _, config = name.partition(":")
    return name == "digits-mlp" or (kind == "unet" and config in UNET_CONFIGS)


#: the methods of the protocol table: row label → preset (tier budgets from :attr:`Tier.budgets`)
PROTOCOL_METHODS: dict[str, str] = {
    "ft": "ddpm/ft", "ga": "ddpm/ga", "rl": "ddpm/rl", "salun": "ddpm/salun", "sfron": "ddpm/sfron",
    "eupmu": "ddpm/eupmu", "salun+eupmu": "ddpm/salun+eupmu", "rl+dualoptim": "ddpm/rl+dualoptim",
    "salun+dualoptim": "ddpm/salun+dualoptim", "sfron+dualoptim": "ddpm/sfron+dualoptim",
    "certified-gradclip": "certified-gradclip",
}

#: digits gate on the original's fd_clf / floor (docs/generation.md, "Gates": 2× is not reached at guidance 2.0)
DIGITS_FD_FACTOR = 8.0
#: the certified row is exploratory: a short budget at the digits batch size
CERTIFIED_DIGITS = {"certified-gradclip": {"epochs": 2, "batch_size": 128}}
#: Fashion-MNIST (provisional, sized by the step and sampling timings in docs/generation.md): the presets' default
#: iteration budgets, one surgery epoch (≈ 470 paired steps), one certified epoch
FMNIST_BUDGETS = {"ddpm/eupmu": {"epochs": 1}, "ddpm/salun+eupmu": {"epochs": 1},
                  "certified-gradclip": {"epochs": 1, "batch_size": 128}}

TIERS: dict[str, Tier] = {
    "digits": Tier("digits", "digits", None, "digits-mlp", 1000, DIGITS_RECIPE, SamplerSettings(steps=50),
                   n_forget=200, n_per_class=100, recognition=80.0, fd_factor=DIGITS_FD_FACTOR,
                   classifier_epochs=60,
                   budgets=CERTIFIED_DIGITS),
    "fmnist": Tier("fmnist", "fashion-mnist", 14, "unet:fmnist", 1000, diffusion_recipe(epochs=12),
                   SamplerSettings(steps=50), n_forget=500, n_per_class=200, recognition=70.0, classifier_epochs=10,
                   budgets=FMNIST_BUDGETS),
    "cifar10": Tier("cifar10", "cifar10", None, "unet:cifar10", 1000, diffusion_recipe(epochs=2048),
                    SamplerSettings(steps=1000, batch_size=250), n_forget=500, n_per_class=5000, recognition=70.0,
                    classifier_epochs=60, flip=True, profile="reference"),
}


def get_tier(name: str) -> Tier:
    if name not in TIERS:
        raise unknown_name("generation tier", name, TIERS)
    return TIERS[name]


def pool(images: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Average-pool square images to ``resolution`` (a divisor of their size); unchanged when None or equal."""
    if resolution is None or images.shape[-1] == resolution:
        return images
    size = images.shape[-1]
    if size % resolution:
        raise UnlearnlabError(f"Cannot pool {size}×{size} images to {resolution}×{resolution}: use a divisor of "
                              f"{size}.")
    return F.avg_pool2d(images, size // resolution)


def _pooled(data: TensorData, resolution: int | None) -> TensorData:
    return data.replace(x=pool(data.x, resolution))


def check_classes(ds: ImageDataset, forget_class: int) -> None:
    """Refuse a forget class outside the dataset's classes, one without training images (forgetting it would
    forget nothing), and data lacking any class (the evaluation classifier must learn every class)."""
    if isinstance(forget_class, bool) or not isinstance(forget_class, int):
        raise UnlearnlabError(f"forget_class must be one class index, got {forget_class!r}.")
    if not 0 <= forget_class < ds.num_classes:
        raise UnlearnlabError(f"Class {forget_class} is not a class of {ds.name} (classes 0 … {ds.num_classes - 1}):"
                              " pick one of them.")
    present = set(ds.y_train.unique().tolist())
    if forget_class not in present:
        raise UnlearnlabError(f"Class {forget_class} has no training images in {ds.name} (its files hold classes "
                              f"{sorted(present)}): nothing to forget. Check that the dataset files are complete, "
                              "or pick a class they hold.")
    missing = sorted(set(range(ds.num_classes)) - present)
    if missing:
        raise UnlearnlabError(f"Classes {missing} have no training images in {ds.name}: the evaluation classifier "
                              "must be trained on every class. Use the complete dataset files.")


def generation_task(tier: Tier | str, forget_class: int, seed: int = 1, device: torch.device | str | None = None,
                    root: str | Path | None = None, dataset: ImageDataset | None = None) -> ForgetTask:
    """The class-wise forget task of ``tier`` for class ``forget_class`` (:func:`check_classes`); ``dataset`` is the
    tier's dataset when already loaded."""
    tier = get_tier(tier) if isinstance(tier, str) else tier
    ds = dataset if dataset is not None else load_dataset(tier.dataset, root)
    check_classes(ds, forget_class)
    task = make_task(ds, f"class:{forget_class}", seed=seed, device=device)
    if tier.resolution is None or tier.resolution == task.input_shape[-1]:
        return dataclasses.replace(task, family=GENERATION.name)
    train = _pooled(task.train, tier.resolution)
    suffix = f"@{tier.resolution}"
    return dataclasses.replace(
        task, dataset=task.dataset + suffix, family=GENERATION.name, train=train,
        forget=train.subset(task.forget_positions), retain=train.subset(_complement(task)),
        val=_pooled(task.val, tier.resolution), test=_pooled(task.test, tier.resolution),
        input_shape=(task.input_shape[0], tier.resolution, tier.resolution),
        split_hash=_rehash(task.split_hash, suffix), data_hash=_rehash(task.data_hash, suffix))


def _complement(task: ForgetTask) -> torch.Tensor:
    keep = torch.ones(len(task.train), dtype=torch.bool)
    keep[torch.as_tensor(task.forget_positions)] = False
    return torch.nonzero(keep).flatten()


def _rehash(digest: str, suffix: str) -> str:
    return hashlib.sha256(f"{digest}{suffix}".encode()).hexdigest()


def classifier_data(tier: Tier | str, device: torch.device | str = "cpu", root: str | Path | None = None,
                    dataset: ImageDataset | None = None) -> tuple[TensorData, TensorData, str]:
    """(training pool, test set, dataset name) of every class at the tier's resolution: the evaluation
    classifier's data. The dataset name matches :func:`generation_task`'s."""
    tier = get_tier(tier) if isinstance(tier, str) else tier
    ds = dataset if dataset is not None else load_dataset(tier.dataset, root)
    train = TensorData.of(pool(ds.x_train, tier.resolution), ds.y_train).to(device)
    test = TensorData.of(pool(ds.x_test, tier.resolution), ds.y_test).to(device)
    pooled = tier.resolution is not None and tier.resolution != ds.x_train.shape[-1]
    return train, test, ds.name + (f"@{tier.resolution}" if pooled else "")


def build_model(tier: Tier | str, image_shape: tuple[int, ...], num_classes: int, seed: int = 1) -> Denoiser:
    """The tier's noise predictor for ``image_shape`` and ``num_classes``, initialised from ``seed``."""
    tier = get_tier(tier) if isinstance(tier, str) else tier
    if tier.model == "digits-mlp":
        return digits_denoiser(image_shape, num_classes, timesteps=tier.timesteps, seed=seed)
    kind, _, config = tier.model.partition(":")
    if kind != "unet" or not config:
        raise UnlearnlabError(f"Unknown tier model {tier.model!r}: use 'digits-mlp' or 'unet:<config>'.")
    return unet_denoiser(config, image_shape, num_classes, timesteps=tier.timesteps, seed=seed)
