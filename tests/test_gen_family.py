"""The generation family: loss, seeding, checks, RL for diffusion, and every preset on digits."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unlearnlab as ul
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.generation import SamplerSettings, diffusion_recipe, digits_denoiser, sample, train_denoiser
from unlearnlab.generation.diffusion import noised, to_model_space
from unlearnlab.generation.evaluation import classify
from unlearnlab.generation.family import GENERATION, epsilon_loss
from unlearnlab.generation.objectives import PseudoClassTarget, pseudo_classes
from unlearnlab.generation.tiers import classifier_data, generation_task
from unlearnlab.generation.training import train_eval_classifier
from unlearnlab.methods import RunContext, get_method
from unlearnlab.training import Recipe
from unlearnlab.utils import torch_generator


@pytest.fixture(scope="module")
def task():
    return generation_task("digits", 0, device="cpu")


@pytest.fixture(scope="module")
def original(task):
    """A small digits denoiser trained on D (≈ 5 s): its class-0 samples are recognised as 0."""
    model = digits_denoiser(task.input_shape, 10, timesteps=1000, width=128, depth=2)
    train_denoiser(model, task.train, diffusion_recipe(epochs=100, lr=2e-3, schedule="cosine"))
    return model


@pytest.fixture(scope="module")
def classifier():
    train, test, name = classifier_data("digits")
    return train_eval_classifier(train, test, name, 10, recipe=Recipe(epochs=10), model="mlp")


def p_forget(model, classifier) -> float:
    """Mean p(0) of 40 class-0 samples (10 DDIM steps, fixed noise)."""
    images = sample(model, torch.zeros(40, dtype=torch.long), SamplerSettings(steps=10), torch_generator(0, "test"))
    probs, _ = classify(classifier, images)
    return float(probs[:, 0].mean())


def test_loss_per_sample_and_mean(task, original):
    batch = task.retain.gather(torch.arange(16))
    original.seed_noise(3)
    per_sample = GENERATION.loss(original, batch, reduction="none")
    original.seed_noise(3)
    mean = GENERATION.loss(original, batch)
    assert per_sample.shape == (16,) and torch.isclose(mean, per_sample.mean())


def test_loss_is_the_summed_squared_noise_error(task, original):
    batch = task.retain.gather(torch.arange(4))
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    loss = epsilon_loss(original, batch, gen_a, "none")
    x_t, t, noise = noised(to_model_space(batch["x"]), 1000, original.alphas_bar, gen_b)
    y = batch["y"].clone()
    y[torch.rand(4, generator=gen_b) < original.class_dropout] = original.null_class
    with torch.no_grad():
        expected = (original(x_t, t, y) - noise).square().sum(dim=(1, 2, 3))
    assert torch.allclose(loss.detach(), expected, rtol=1e-5)


def test_runs_are_reproducible_whatever_the_model_drew_before(task, original):
    first = ul.unlearn(original, task, method="ddpm/rl", seed=4, iterations=3)
    GENERATION.loss(original, task.forget.gather(torch.arange(8)))  # advances the original's noise stream
    second = ul.unlearn(original, task, method="ddpm/rl", seed=4, iterations=3)
    other = ul.unlearn(original, task, method="ddpm/rl", seed=5, iterations=3)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(first.model.parameters(), other.model.parameters()))


def test_rl_target_is_the_detached_pseudo_class_prediction(task, original):
    model = digits_denoiser(task.input_shape, 10, timesteps=1000, width=32, depth=1, class_dropout=0.0)
    batch = task.forget.gather(torch.arange(6))
    ctx = RunContext(seed=1, family="generation")
    model.seed_noise(2)
    PseudoClassTarget()(model, batch, ctx).backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.seed_noise(2)
    x_t, t, _ = noised(to_model_space(batch["x"]), 1000, model.alphas_bar, model.noise)
    target = model(x_t, t, pseudo_classes(batch["y"], 10))
    assert pseudo_classes(batch["y"], 10).tolist() == [1] * 6
    F.mse_loss(model(x_t, t, batch["y"]), target.detach()).backward()
    detached = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.mse_loss(model(x_t, t, batch["y"]), target).backward()
    through = [p.grad.clone() for p in model.parameters()]
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(got, detached))
    assert any(not torch.allclose(a, b, atol=1e-7) for a, b in zip(got, through))


@pytest.mark.parametrize("method", ["ddpm/rl", "ddpm/salun"])
def test_rl_presets_lower_the_forgotten_class_probability(task, original, classifier, method):
    before = p_forget(original, classifier)
    after = p_forget(ul.unlearn(original, task, method=method, seed=1, iterations=30).model, classifier)
    assert before > 0.8 and after < 0.7 * before


FORGETTING = [("ddpm/ga", {"iterations": 30}), ("ddpm/sfron", {"iterations": 30}), ("ddpm/eupmu", {"epochs": 1}),
              ("ddpm/salun+eupmu", {"epochs": 1}), ("ddpm/rl+dualoptim", {"iterations": 30}),
              ("ddpm/salun+dualoptim", {"iterations": 30}), ("ddpm/sfron+dualoptim", {"iterations": 30})]


@pytest.mark.parametrize("method, budget", FORGETTING)
def test_ddpm_presets_raise_the_forget_eps_loss(task, original, method, budget):
    before = GENERATION.health(original, task.forget, task.retain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ul.unlearn(original, task, method=method, seed=1, **budget)
    after = GENERATION.health(result.model, task.forget, task.retain)
    assert after["forget"] > 1.02 * before["forget"]


GENERIC = [("retrain", {"epochs": 1}), ("ddpm/retrain", {"epochs": 1}), ("ddpm/ft", {"iterations": 5}),
           ("ft", {"epochs": 1, "lr": 1e-3}), ("ga", {"epochs": 1}), ("rl", {"epochs": 1}), ("salun", {"epochs": 1}),
           ("neggrad-plus", {"epochs": 1}), ("sfron", {"iterations": 10}), ("eupmu", {"epochs": 1}),
           ("salun+eupmu", {"epochs": 1}), ("rl+dualoptim", {"epochs": 1, "forget_lr": 1e-4}),
           ("salun+dualoptim", {"epochs": 1, "forget_lr": 1e-4}),
           ("sfron+dualoptim", {"iterations": 10, "forget_lr": 1e-4}), ("certified-gradclip", {"epochs": 1})]


@pytest.mark.parametrize("method, budget", GENERIC)
def test_registered_presets_run_on_the_generation_family(task, original, method, budget):
    assert "generation" in get_method(method).families
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ul.unlearn(original, task, method=method, seed=1, **budget)
    changed = [not torch.equal(a, b) for a, b in zip(original.parameters(), result.model.parameters())]
    assert any(changed) and all(bool(torch.isfinite(p).all()) for p in result.model.parameters())


def test_ft_with_its_classification_lr_diverges_on_the_summed_eps_loss(task, original):
    with pytest.raises(DivergenceError):
        ul.unlearn(original, task, method="ft", seed=1, epochs=1)


def test_inspect_refuses_a_model_that_is_not_a_conditional_denoiser(task):
    with pytest.raises(UnlearnlabError, match="class-conditional noise predictor"):
        ul.unlearn(nn.Linear(64, 64), task, method="ddpm/rl")


def test_inspect_refuses_an_unconditioned_unet(task):
    diffusers = pytest.importorskip("diffusers")
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
                                 layers_per_block=1, norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D",) * 2)
    with pytest.raises(UnlearnlabError, match="no class conditioning"):
        ul.unlearn(unet, task, method="ddpm/rl")


def test_inspect_refuses_another_class_count(task):
    model = digits_denoiser(task.input_shape, 7, width=16, depth=1)
    with pytest.raises(UnlearnlabError, match="7 classes but the task has 10"):
        ul.unlearn(model, task, method="ddpm/rl")


def test_data_outside_unit_range_or_of_another_shape_are_refused(task):
    model = digits_denoiser(task.input_shape, 10, width=16, depth=1)
    x, y = task.forget.x, task.forget.y
    with pytest.raises(UnlearnlabError, match=r"images in \[0, 1\]"):
        ul.unlearn(model, method="ddpm/rl", forget=(x * 2 - 1, y), retain=(task.retain.x, task.retain.y),
                   family="generation")
    small = TensorData.of(x[:, :, :4, :4], y)
    with pytest.raises(UnlearnlabError, match="model generates"):
        ul.unlearn(model, method="ddpm/rl", forget=small, retain=TensorData.of(task.retain.x[:, :, :4, :4],
                                                                              task.retain.y), family="generation")


def test_health_warns_when_retain_loss_collapses():
    warns = GENERATION.health_warnings({"forget": 1.0, "retain": 1.0}, {"forget": 1.005, "retain": 3.0})
    assert len(warns) == 2 and "retain" in warns[0] and "did not move" in warns[1]
