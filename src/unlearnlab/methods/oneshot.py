"""Retrain: the one-shot gold standard (fresh initialisation, then the original recipe on D_r)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.methods.reinit import reinitialise
from unlearnlab.training import Recipe, train
from unlearnlab.utils import component_seed


@dataclass
class Retrain(Unlearner):
    """Fresh initialisation (every module; a parameter that cannot be re-initialised is an error), then the
    recipe on D_r only, with the family's loss."""

    recipe: Recipe

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.recipe.batch_size

    @property
    def precision(self) -> str:  # type: ignore[override]
        return self.recipe.precision

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        reinitialise(model, component_seed(ctx.seed, "retrain-init"))
        stats = train(model, data.retain, self.recipe, seed=ctx.seed, loss_fn=data.family.weighted_loss,
                      progress=lambda done, total: ctx.report(done / total), dist=ctx.dist)
        ctx.counters.optimizer_steps += stats.counters.optimizer_steps  # samples are counted by the caller's hooks
        return {"final_loss": stats.final_loss}
