"""Planning a benchmark grid: every name and value of a :class:`RunConfig` checked, nothing written.

:func:`plan` resolves method aliases, hyperparameters (through the method registry), recipes, the device, the
protocol label and the task key that every row of the grid shares. A config that names a protocol
(:mod:`unlearnlab.protocols`) must keep the protocol's pinned keys. Whatever is wrong raises
:class:`~unlearnlab.errors.UnlearnlabError` here, before an output folder or a cached model exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.bench.cache import ArchitectureError, check_cache_dir, default_cache_dir, load_checkpoint
from unlearnlab.bench.cells import Row
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.executors import check as check_executor
from unlearnlab.checksums import DamagedFileError
from unlearnlab.data.datasets import load_dataset
from unlearnlab.data.forget import ForgetSpec, make_task
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import RESAMPLED_MIAS, EvalOptions
from unlearnlab.methods import get_method
from unlearnlab.models import create
from unlearnlab.models.registry import check_output_size, list_models
from unlearnlab.protocols import Protocol, get_protocol
from unlearnlab.training import Recipe
from unlearnlab.utils import default_device

#: the reference of every gap
REFERENCE = "retrain"
#: the noise-floor row: a second Retrain with independent seeds, scored against Retrain like a method
NOISE_FLOOR = "retrain/independent"
#: the noise-floor retrain of seed s is trained with seed NOISE_FLOOR_OFFSET + s (init and data order)
NOISE_FLOOR_OFFSET = 1000


@dataclass
class Plan:
    """A validated grid, built before anything is written."""

    config: RunConfig
    recipe: Recipe
    #: canonical method names, ``retrain`` (the reference of every gap) first, then the noise floor (when on)
    methods: tuple[str, ...]
    hparams: dict[str, dict[str, Any]]
    device: torch.device
    task_key: str
    protocol: str
    #: the recipe of the retrained models (the original recipe unless the config sets ``retrain_recipe``)
    retrain_recipe: Recipe | None = None
    #: the named protocol of the config, at the size it runs (``None`` for a custom grid)
    protocol_spec: Protocol | None = field(default=None)
    #: SHA-256 of the user's original model file (config ``original``); ``None`` when the grid trains its own
    original_sha256: str | None = None

    def row_config(self, method: str) -> dict[str, Any]:
        """The ``config`` column of a cell (its hash is part of the run key); a user's original adds its hash."""
        config = {"method": method, "hparams": self.hparams[method], "model": self.config.model,
                  "primary_mia": self.config.primary_mia}
        if self.original_sha256 is not None:
            config["original_sha256"] = self.original_sha256
        return config

    def row(self, method: str, seed: int, split_hash: str = "") -> Row:
        """The result row of cell (``method``, ``seed``); the split hash does not enter the run key."""
        return Row(self.task_key, self.protocol, method, seed, self.row_config(method), split_hash)

    def rows(self) -> list[Row]:
        """Every cell of the grid, seed by seed, ``retrain`` first within a seed."""
        return [self.row(method, seed) for seed in self.config.seeds for method in self.methods]

    def eval_options(self, ulira: object = None) -> EvalOptions:
        """What each cell's evaluation computes (MIAs, K attack draws of the primary MIA, kit test half), with a
        seed's U-LiRA reference when the grid attacks with U-LiRA."""
        c = self.config
        resample = tuple(m for m in (c.primary_mia,) if m in RESAMPLED_MIAS)
        return EvalOptions(mias=c.mias, attack_draws=c.attack_draws if resample else 0, resample=resample,
                           ulira=ulira, test_half=c.test_half)

    def recipe_of(self, kind: str) -> Recipe:
        """The recipe of an ``original`` or a ``retrain`` model."""
        return self.recipe if kind == "original" or self.retrain_recipe is None else self.retrain_recipe


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a torch device that exists here (``None``: CUDA when present, else CPU); a clear error for
    a CUDA or MPS device this build or machine does not have."""
    if name is None:
        return default_device()
    device = torch.device(name)
    if device.type == "cuda":
        if torch.version.cuda is None or not torch.cuda.is_available():
            build = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
            raise UnlearnlabError(f"--device {name}: {build}. Use --device cpu, or install a CUDA build of "
                                  "PyTorch on a machine with an NVIDIA GPU.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UnlearnlabError(f"--device {name}: this machine has {count} GPU(s), numbered cuda:0 to "
                                  f"cuda:{count - 1}.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UnlearnlabError(f"--device {name}: Apple's MPS backend is not available here. Use --device cpu.")
    return device


def check_pinned(config: RunConfig) -> Protocol:
    """The config's protocol at the size it runs; raises when the config changed a key the protocol pins."""
    spec = get_protocol(str(config.protocol))
    if spec.is_experiment:
        raise UnlearnlabError(f"Protocol {spec.name!r} is an experiment, not a grid: run it with "
                              f"`unlearnlab run --protocol {spec.name}` (bench.experiment.run_experiment).")
    sized = spec.sized(config.quick)
    for method, values in sized.hparams.items():
        given = config.hparams.get(method, {})
        changed = {k: given[k] for k, v in values.items() if k in given and given[k] != v}
        if changed:
            raise UnlearnlabError(
                f"Protocol {spec.name!r} pins {method}'s {sorted(changed)} to {values}; this run sets {changed}. "
                "Changed method values are another protocol: drop --protocol to run a custom grid.")
    for method, keys in sized.searched.items():
        missing = [k for k in keys if k not in config.hparams.get(method, {})]
        if missing and method in config.methods:
            raise UnlearnlabError(
                f"Protocol {spec.name!r}: {method}'s {missing} were searched by the paper, which publishes no value: "
                f"pass one (--set {method}.{missing[0]}=...) or find it with `unlearnlab tune --method {method}`.")
    for key, want in spec.pinned(config.quick).items():
        got = getattr(config, key)
        if key in ("recipe", "retrain_recipe"):
            same = (Recipe.from_dict(got).to_dict() if got else None) == (
                Recipe.from_dict(want).to_dict() if want else None)
        else:
            same = got == want
        if not same:
            raise UnlearnlabError(
                f"Protocol {spec.name!r}{' (quick)' if config.quick else ''} pins {key} = {want!r}; this run "
                f"sets {got!r}. A changed {key} is another protocol: drop --protocol to run a custom grid.")
    return spec.sized(config.quick)


def plan(config: RunConfig) -> Plan:
    """Validate every name and value of ``config`` against the registries; raise before any file is written."""
    spec = check_pinned(config) if config.protocol else None
    load_dataset(config.dataset, config.root)
    if config.model not in list_models():
        create(config.model)  # raises the unknown-name error with suggestions
    check_executor(config.executor, config.workers)  # e.g. --executor ray without Ray installed
    device = resolve_device(config.device)
    canonical = {m: get_method(m).name for m in config.methods}  # resolves aliases, rejects unknown names
    floor = (NOISE_FLOOR,) if config.noise_floor else ()
    methods = tuple(dict.fromkeys((REFERENCE, *floor, *canonical.values())))
    if config.primary_mia not in config.mias:
        raise UnlearnlabError(f"primary_mia {config.primary_mia!r} is not among the MIAs computed "
                              f"({', '.join(config.mias)}): add it to mias.")
    if config.ulira_shadows and ForgetSpec.parse(config.forget).kind != "random":
        raise UnlearnlabError(f"U-LiRA (ulira_shadows) attacks a random forget set; {config.forget!r} is not one. "
                              "Drop ulira_shadows for class-wise or index forgetting (docs/metrics.md, 'U-LiRA').")
    given = {get_method(m).name: v for m, v in config.hparams.items()}
    unknown = set(given) - set(methods)
    if unknown:
        raise UnlearnlabError(f"hparams given for {sorted(unknown)}, which are not in methods {list(config.methods)}.")
    if "retrain" in given:
        raise UnlearnlabError("The benchmark's retrain uses the original model's recipe: set `recipe:` in the "
                              "config (e.g. recipe: {epochs: 30}) instead of hparams for retrain.")
    task = make_task(config.dataset, config.forget, config.seeds[0], device="cpu", root=config.root)
    base = Recipe.default(task)
    recipe = Recipe.from_dict({**base.to_dict(), **config.recipe}) if config.recipe else base  # validates keys
    retrain_recipe = (Recipe.from_dict({**recipe.to_dict(), **config.retrain_recipe})
                      if config.retrain_recipe else recipe)
    check_output_size(create(config.model, task), task.input_shape, task.num_classes)
    check_cache_dir(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    original_sha256 = None
    if config.original is not None:
        if spec is not None:
            raise UnlearnlabError(f"original: protocol {spec.name!r} trains its own original model with its pinned "
                                  "recipe; drop --protocol to run a custom grid with your model.")
        if config.original_per_seed:
            raise UnlearnlabError("original and original_per_seed exclude each other: your model is one original; "
                                  "drop original_per_seed.")
        original_sha256 = check_original(config.original, create(config.model, task), config.model)
    hparams = {m: get_method(m).resolve(given.get(m), config.profile) for m in methods if m not in (REFERENCE,
                                                                                                   NOISE_FLOOR)}
    hparams[REFERENCE] = retrain_recipe.to_dict()
    if config.noise_floor:
        hparams[NOISE_FLOOR] = {**retrain_recipe.to_dict(), "seed_offset": NOISE_FLOOR_OFFSET}
    task_key = f"{config.dataset}|{config.model}|{config.forget}|recipe={recipe.hash}|{config.profile}"
    if retrain_recipe != recipe:
        task_key += f"|retrain={retrain_recipe.hash}"
    derived = f"{protocol_name(config.dataset, ForgetSpec.parse(config.forget))} v1"
    protocol = get_protocol(str(config.protocol)).label(config.quick) if spec is not None else derived
    if protocol != derived:  # the cells of two protocols never share a run key (the digits defaults keep theirs)
        task_key = f"{protocol}|{task_key}"
    if original_sha256 is not None:  # rows unlearned from a user's model never mix with those of a trained one
        task_key += f"|original={original_sha256[:16]}"
    return Plan(config, recipe, methods, hparams, device, task_key, protocol, retrain_recipe, spec, original_sha256)


def check_original(path: str, model: nn.Module, name: str) -> str:
    """The SHA-256 of a user's original model file, after checking that it loads into ``model`` (the configured
    architecture ``name``) with ``torch.load(weights_only=True)``; a clear error otherwise. A checksum file next
    to it (``PATH.sha256``) is verified when present."""
    file = Path(path)
    how = "save it with torch.save(model.state_dict(), PATH)"
    if not file.exists():
        raise UnlearnlabError(f"original {path} does not exist: give the path of your trained model ({how}).")
    if not file.is_file():
        raise UnlearnlabError(f"original {path} is not a file: give the path of your trained model ({how}).")
    try:
        return load_checkpoint(file, model, checksum_required=False)["sha256"]
    except DamagedFileError as err:
        raise UnlearnlabError(f"original {path} cannot be used ({err.reason}): {how}, or use an intact "
                              "copy.") from None
    except OSError as err:
        raise UnlearnlabError(f"original {path} cannot be read ({err.strerror}): check its permissions.") from None
    except ArchitectureError as err:
        raise UnlearnlabError(f"original {path} does not fit model {name!r} of this task ({err.details}): "
                              "run with the --model it was trained with (`unlearnlab models`), or with the "
                              "dataset whose classes it predicts.") from None
    except UnlearnlabError as err:
        raise UnlearnlabError(f"original {path}: {err}") from None


def protocol_name(dataset: str, spec: ForgetSpec) -> str:
    """``digits-random10`` for random 10 %, ``digits-class3`` for class 3, else ``<dataset>-<spec>``."""
    percent = None if spec.fraction is None else round(spec.fraction * 100, 6)
    if spec.kind == "random" and percent is not None and percent == int(percent):
        return f"{dataset}-random{int(percent)}"
    if spec.kind == "class":
        return f"{dataset}-class{'-'.join(map(str, spec.classes))}"
    return f"{dataset}-{spec}"
