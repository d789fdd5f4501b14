"""The U-LiRA shadow models of a grid: trained once per data split, cached, shared by every method and seed.

The candidate pool is the dataset's whole training pool, D ∪ D_val (the forget set of any seed lies in D). With K
shadows (``ulira_shadows``), :func:`~unlearnlab.metrics.ulira.balanced_membership` puts every pool example in
exactly K/2 of them; shadow j is the grid's model trained with the original's recipe on its half, with seed
:data:`SHADOW_SEED_OFFSET` + j, and cached under an identity holding dataset, model, recipe, data hash, K and j.
Their logit-scaled confidences on the pool give the per-example Gaussians
(:func:`~unlearnlab.metrics.ulira.fit_shadow_gaussians`); :func:`reference_for` slices them for one seed's D_f in
task order and adds that seed's retrained model's scores on D_f. The attack itself is computed by
:func:`unlearnlab.evaluation.evaluate` (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.plan import Plan
from unlearnlab.data.datasets import load_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask, plan_split
from unlearnlab.data.tensors import TensorData
from unlearnlab.evaluation import outputs
from unlearnlab.metrics import logit_scaled_confidence
from unlearnlab.metrics.ulira import ShadowGaussians, UliraReference, balanced_membership, fit_shadow_gaussians
from unlearnlab.models import create
from unlearnlab.training import train

Progress = Callable[[str, float], None]
#: shadow j is initialised and shuffled with seed SHADOW_SEED_OFFSET + j (distinct from grid and noise-floor seeds)
SHADOW_SEED_OFFSET = 2000
#: the seed of the membership design (which shadows train on which example)
MEMBERSHIP_SEED = 0


def shadow_identity(p: Plan, task: ForgetTask, shadow: int, n_shadows: int) -> dict[str, object]:
    """The model-cache identity of shadow ``shadow`` of ``n_shadows``."""
    return {"kind": "ulira-shadow", "dataset": p.config.dataset, "model": p.config.model,
            "recipe": p.recipe.to_dict(), "data": task.data_hash, "shadow": shadow, "shadows": n_shadows,
            "membership_seed": MEMBERSHIP_SEED}


def shadow_gaussians(p: Plan, cache: ModelCache, task: ForgetTask, progress: Progress | None = None
                     ) -> ShadowGaussians:
    """Train (or load) the grid's K shadow models and fit the per-example Gaussians over the whole pool.

    ``task`` is any task of the grid (it gives the shapes and the data hash; every seed shares the pool).
    """
    n_shadows = int(p.config.ulira_shadows or 0)
    ds = load_dataset(p.config.dataset, p.config.root)
    pool = TensorData.of(ds.x_train, ds.y_train).to(p.device)
    member = balanced_membership(n_shadows, len(pool), MEMBERSHIP_SEED)
    labels = ds.y_train.numpy()
    scores = np.empty((n_shadows, len(pool)), dtype=np.float64)
    for j in range(n_shadows):
        seed = SHADOW_SEED_OFFSET + j
        label = f"U-LiRA shadow {j + 1}/{n_shadows}"
        model = create(p.config.model, task, seed=seed, device=p.device)
        half = pool.subset(torch.from_numpy(np.flatnonzero(member[j])))

        def fit(m: torch.nn.Module, half: TensorData = half, seed: int = seed, label: str = label) -> dict:
            tick = None if progress is None else (lambda done, total: progress(label, done / total))
            stats = train(m, half, p.recipe, seed=seed, progress=tick)
            return {"seconds": stats.seconds, "device": str(p.device), "n_train": len(half)}

        cache.get_or_train(shadow_identity(p, task, j, n_shadows), model, fit)
        out = outputs(model, pool)
        scores[j] = logit_scaled_confidence(out.logits.numpy(), labels)
        del model
    return fit_shadow_gaussians(scores, member)


def reference_for(gaussians: ShadowGaussians, p: Plan, task: ForgetTask, retrained: torch.nn.Module
                  ) -> UliraReference:
    """The U-LiRA reference of ``task``'s seed: the Gaussians of its D_f (task order), sliced from the pool's, and
    the scores of its retrained model on D_f."""
    ds = load_dataset(p.config.dataset, p.config.root)
    split = plan_split(ds, ForgetSpec.parse(p.config.forget), task.seed)
    out = outputs(retrained, task.forget)
    return UliraReference(forget=gaussians.take(split.train[split.forget]),
                          retrained_scores=logit_scaled_confidence(out.logits.numpy(), out.labels))
