"""The original and retrained models of a planned grid, trained once and served from the model cache.

One original per data split (trained on D with seed 1), or one per grid seed s when the grid sets
``original_per_seed`` (trained with seed s, so the original's own variance enters the seed spread), and one
retrained model per seed (fresh init with that seed, trained on D_r), each keyed by (kind, dataset, model,
recipe, data or split hash, seed) in the content-addressed :class:`~unlearnlab.bench.cache.ModelCache`. The
noise-floor model of seed s is a second retrain with seed ``NOISE_FLOOR_OFFSET`` + s (:mod:`unlearnlab.bench.plan`).
Training checkpoints every epoch next to the cache entry and resumes from there after an interruption. A config
with ``original: PATH`` brings the user's own original instead (checked by
:func:`~unlearnlab.bench.plan.check_original`; re-verified against the hash the plan recorded). The grid runner,
tuning and the forget-quality score all take their models from here, so they share cache entries.

Training is timed as unlearning is (docs/metrics.md, "RTE"): W warm-up steps on a discarded copy first; the
checkpoint records the warm-up, the device and the precision, so a run-time ratio compares like with like.

Under ``torchrun`` (rank 0 driving, see :mod:`unlearnlab.distributed.serve`) a model to train is trained across
every rank: the others receive a :class:`TrainOnRank` and train their own copy alongside; rank 0 alone stores it
and its checkpoints, which every rank resumes from (DDP; FSDP trainings are neither checkpointed nor warmed up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.api import WARMUP_STEPS, timed
from unlearnlab.bench.cache import ModelCache, default_cache_dir, load_checkpoint
from unlearnlab.bench.plan import NOISE_FLOOR_OFFSET, Plan
from unlearnlab.checksums import DamagedFileError
from unlearnlab.data.forget import ForgetTask, make_task
from unlearnlab.distributed.runtime import Runtime
from unlearnlab.distributed.serve import everywhere, leader
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families import get_family
from unlearnlab.models import create
from unlearnlab.training import Recipe, TrainStats, autocast_dtype, train

Progress = Callable[[str, float], None]
#: the seed of the original model (one per data split) unless the grid trains one per seed
ORIGINAL_SEED = 1


def original_seed(p: Plan, seed: int) -> int:
    """The seed of the original model that grid seed ``seed`` unlearns from."""
    return seed if p.config.original_per_seed else ORIGINAL_SEED


def precision_name(precision: str, device: object) -> str:
    """``fp32``, ``bf16`` or ``fp16``: the arithmetic a recipe's ``precision`` setting runs on ``device``."""
    dtype = autocast_dtype(precision, torch.device(str(device)))
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def model_cache(p: Plan, log: Callable[[str], None] | None = None) -> ModelCache:
    """The plan's model cache (``cache_dir`` or the default; ``cache: false`` retrains); ``log`` hears about
    damaged entries and resumed trainings."""
    config = p.config
    return ModelCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), config.cache, log)


def identity(kind: str, p: Plan, seed: int, data_hash: str) -> dict[str, Any]:
    """The cache identity of an original (``kind="original"``, ``data_hash`` = the task's data hash) or a
    retrained model (``kind="retrain"``, ``data_hash`` = the task's split hash)."""
    return {"kind": kind, "dataset": p.config.dataset, "model": p.config.model,
            "recipe": p.recipe_of(kind).to_dict(), "data": data_hash, "seed": seed}


def original_identity(p: Plan, task: ForgetTask, seed: int = ORIGINAL_SEED) -> dict[str, Any]:
    return identity("original", p, seed, task.data_hash)


def retrain_identity(p: Plan, task: ForgetTask, seed: int) -> dict[str, Any]:
    return identity("retrain", p, seed, task.split_hash)


def trained_model(cache: ModelCache, kind: str, task: ForgetTask, p: Plan, seed: int,
                  progress: Progress | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The original (``kind="original"``, trained on D) or retrained (``kind="retrain"``, on D_r) model of
    ``seed``, in eval mode, with its checkpoint metadata (training seconds, counters, device)."""
    recipe = p.recipe_of(kind)
    key = original_identity(p, task, seed) if kind == "original" else retrain_identity(p, task, seed)
    model = create(p.config.model, task, seed=seed, device=p.device)
    data = task.train if kind == "original" else task.retain
    label = f"training {kind} (seed {seed})"
    loss = get_family(task.family).loss

    def fit(m: nn.Module) -> dict[str, Any]:
        tick = None if progress is None else (lambda done, total: progress(label, done / total))
        rt = leader()
        sharded = rt is not None and rt.sharded
        checkpoint = None if sharded else cache.partial(key)

        def fit_here() -> TrainStats:
            return train(m, data, recipe, seed=seed, progress=tick, checkpoint=checkpoint, dist=rt)

        def fit_everywhere() -> TrainStats:
            return fit_here() if rt is None else everywhere(
                TrainOnRank(p.config.dataset, p.config.forget, p.config.root, task.seed, p.config.model, kind,
                            recipe.to_dict(), seed), fit_here)

        stats, _, _ = timed(m, data, recipe.batch_size, loss, fit_everywhere, recipe.precision, warmup=not sharded)
        return {"seconds": stats.seconds, "device": str(p.device), "warmup_steps": 0 if sharded else WARMUP_STEPS,
                "precision": precision_name(recipe.precision, p.device), **stats.counters.as_dict()}

    meta, _ = cache.get_or_train(key, model, fit)
    model.eval()
    return model, meta


def original_model(cache: ModelCache, task: ForgetTask, p: Plan, progress: Progress | None = None,
                   seed: int = ORIGINAL_SEED) -> tuple[nn.Module, dict[str, Any]]:
    """The original model of ``task``'s data split trained with ``seed`` (see :func:`original_seed`), or the
    user's (config ``original``), whose metadata then holds its ``sha256`` and ``source`` path."""
    path = p.config.original
    if path is None:
        return trained_model(cache, "original", task, p, seed, progress)
    model = create(p.config.model, task, seed=seed, device=p.device)
    try:
        meta = load_checkpoint(path, model, digest=p.original_sha256, checksum_required=False)
    except DamagedFileError as err:
        raise UnlearnlabError(f"original {path} changed since this run started ({err.reason}): run again with "
                              "the file you mean to use.") from None
    model.eval()
    return model, {**meta, "source": path}


def retrained_model(cache: ModelCache, task: ForgetTask, p: Plan, seed: int,
                    progress: Progress | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model retrained from scratch on ``task``'s D_r with ``seed``."""
    return trained_model(cache, "retrain", task, p, seed, progress)


def noise_floor_model(cache: ModelCache, task: ForgetTask, p: Plan, seed: int,
                      progress: Progress | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The noise-floor model of grid seed ``seed``: retrained on the same D_r with seed NOISE_FLOOR_OFFSET + seed."""
    return retrained_model(cache, task, p, NOISE_FLOOR_OFFSET + seed, progress)


@dataclass(frozen=True)
class TrainOnRank:
    """A follower rank's part of training a grid's original (``kind="original"``, on D) or retrained model (on
    D_r): the same task, model and recipe, trained on the rank's own device and then dropped."""

    dataset: str
    forget: str
    root: str | None
    task_seed: int
    model: str
    kind: str
    recipe: dict[str, Any]
    seed: int

    def __call__(self, rt: Runtime) -> None:
        task = make_task(self.dataset, self.forget, self.task_seed, device=rt.device, root=self.root)
        model = create(self.model, task, seed=self.seed, device=rt.device)
        data = task.train if self.kind == "original" else task.retain
        train(model, data, Recipe.from_dict(self.recipe), seed=self.seed, dist=rt)
