"""Core additions the generation family needs: Recipe.grad_clip, Joint(iterations), the family start_run hook."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import compose
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.rules import Interleave, Joint
from unlearnlab.training import Recipe, train


def test_recipe_without_clip_keeps_its_dict_and_hash():
    recipe = Recipe()
    assert "grad_clip" not in recipe.to_dict()
    legacy = {f.name: getattr(recipe, f.name) for f in dataclasses.fields(Recipe) if f.name != "grad_clip"}
    legacy["milestones"] = list(legacy["milestones"])
    assert recipe.to_dict() == legacy
    clipped = recipe.replace(grad_clip=1.0)
    assert clipped.to_dict()["grad_clip"] == 1.0 and clipped.hash != recipe.hash
    assert Recipe.from_dict(json.loads(json.dumps(clipped.to_dict()))) == clipped


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_recipe_refuses_a_non_positive_clip(value):
    with pytest.raises(UnlearnlabError, match="grad_clip"):
        Recipe(grad_clip=value)
    with pytest.raises(UnlearnlabError, match="grad_clip"):
        Recipe.from_dict({"grad_clip": value})


def test_recipe_clip_bounds_the_step():
    torch.manual_seed(0)
    data = TensorData.of(torch.randn(8, 4) * 100, torch.zeros(8, dtype=torch.long))
    steps = {}
    for clip in (None, 1e-3):
        model = nn.Linear(4, 2)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        recipe = Recipe(optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, epochs=1, batch_size=8,
                        schedule="constant", grad_clip=clip)
        train(model, data, recipe)
        steps[clip] = float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())
    assert steps[1e-3] == pytest.approx(1e-3, rel=1e-4) and steps[None] > 1.0


def test_joint_iterations_runs_exactly_n_steps(digits_task):
    model = ul.models.create("mlp", digits_task)
    method = compose(forget="neg_loss", retain="loss", rule=Joint(retain_weight=0.5, iterations=7),
                     optimization=Optimization(epochs=1, lr=0.01, batch_size=64))
    result = ul.unlearn(model, digits_task, method=method, seed=1)
    assert result.stats["steps"]["joint"] == 7 and result.counters.optimizer_steps == 7
    # 7 retain batches of 64; the forget side cycles over its 130 samples in batches 64, 64, 2, 64, 64, 2, 64
    assert len(digits_task.forget) == 130 and result.counters.forward_samples == 7 * 64 + 2 * (64 + 64 + 2) + 64


def test_joint_iterations_pass_to_the_phased_rule():
    phased = Joint(retain_weight=1e-3, iterations=9).phased(True, True)
    assert isinstance(phased, Interleave) and phased.iterations == 9 and phased.retain_weight == 1e-3
    with pytest.raises(UnlearnlabError, match="iterations"):
        Joint(iterations=0)


def test_unlearn_calls_the_family_start_run_hook(digits_task, monkeypatch):
    family = ul.families.get_family("classification")
    seen = []
    monkeypatch.setattr(type(family), "start_run", lambda self, model, ctx: seen.append((model, ctx.seed)))
    model = ul.models.create("mlp", digits_task)
    with pytest.warns(UserWarning, match="did not move"):  # an untrained model: GA's health warning
        result = ul.unlearn(model, digits_task, method="ga", seed=3, epochs=1)
    assert len(seen) == 1 and seen[0][0] is result.model and seen[0][1] == 3


def test_a_method_limited_to_a_family_is_refused_elsewhere(digits_task):
    info = ul.get_method("ddpm/rl")
    assert info.families == ["generation"] and not info.method.supports("classification")
    with pytest.raises(UnlearnlabError, match="does not run on the classification family"):
        ul.unlearn(ul.models.create("mlp", digits_task), digits_task, method="ddpm/rl")
    assert "classification" in ul.get_method("rl").families  # unlimited methods keep every family
