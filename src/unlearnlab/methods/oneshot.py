"""One-shot methods that implement :class:`Unlearner` directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.training import Recipe, train
from unlearnlab.utils import component_seed


def reinitialize(model: nn.Module, seed: int) -> None:
    """Fresh initialisation: ``reset_parameters()`` of every submodule, under a seed-derived RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed(seed, "retrain-init"))
        for module in model.modules():
            if hasattr(module, "reset_parameters") and module is not model:
                module.reset_parameters()


@dataclass
class Retrain(Unlearner):
    """Gold standard (baselines §1): fresh initialisation, then the recipe on D_r only."""

    recipe: Recipe

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.recipe.batch_size

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        reinitialize(model, ctx.seed)
        stats = train(model, data.retain, self.recipe, seed=ctx.seed,
                      progress=lambda done, total: ctx.report(done / total))
        ctx.counters.optimizer_steps += stats.counters.optimizer_steps  # samples are counted by the caller's hooks
        return {"final_loss": stats.final_loss}
