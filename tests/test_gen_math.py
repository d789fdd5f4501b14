"""Diffusion math and the DDIM sampler on known cases (docs/generation.md, "Diffusion", "Sampling")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation import Denoiser, SamplerSettings, ScheduleSpec, antithetic_timesteps, drop_classes, q_sample
from unlearnlab.generation.diffusion import squared_error, to_image_space, to_model_space
from unlearnlab.generation.sampler import ddim_step, guided_eps, sample, timestep_sequence


def test_linear_schedule_values():
    spec = ScheduleSpec(1000)
    betas = spec.betas()
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert betas[500].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * 500 / 999)
    bar = spec.alphas_bar()
    assert bar[0].item() == pytest.approx(1 - 1e-4)
    assert bar[2].item() == pytest.approx((1 - betas[0]) * (1 - betas[1]) * (1 - betas[2]))
    assert bar[-1].item() == pytest.approx(math.prod(1 - b for b in betas.tolist()), rel=1e-9)


@pytest.mark.parametrize("bad", [{"timesteps": 1}, {"timesteps": 10, "beta_start": 0.1, "beta_end": 0.01},
                                 {"timesteps": 10, "beta_end": 1.0}])
def test_schedule_refuses_bad_settings(bad):
    with pytest.raises(UnlearnlabError):
        ScheduleSpec(**bad)


def test_q_sample_formula():
    bar = ScheduleSpec(10).alphas_bar()
    x0 = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 4, 9])
    xt = q_sample(x0, t, noise, bar)
    for i, ti in enumerate(t.tolist()):
        expected = bar[ti].sqrt() * x0[i] + (1 - bar[ti]).sqrt() * noise[i]
        assert torch.allclose(xt[i], expected)


@pytest.mark.parametrize("n", [1, 6, 7])
def test_antithetic_timesteps_are_mirrored_pairs(n):
    t = antithetic_timesteps(n, 100, torch.Generator().manual_seed(0))
    m = n // 2 + 1
    assert t.shape == (n,) and t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 99
    for i in range(n - m):
        assert int(t[i] + t[m + i]) == 99


def test_class_dropout_rate_and_null_class():
    y = torch.zeros(20000, dtype=torch.long)
    dropped = drop_classes(y, 10, 0.1, torch.Generator().manual_seed(1))
    assert set(dropped.unique().tolist()) == {0, 10}
    assert (dropped == 10).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert drop_classes(y, 10, 0.0, torch.Generator()) is y


def test_squared_error_sums_pixels_and_averages_samples():
    pred, target = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert squared_error(pred, target, "none").tolist() == [4.0, 16.0]
    assert squared_error(pred, target).item() == 10.0
    with pytest.raises(UnlearnlabError, match="reduction"):
        squared_error(pred, target, "sum")


def test_image_space_round_trip():
    x = torch.rand(4, 1, 3, 3)
    assert torch.allclose(to_image_space(to_model_space(x)), x)


class Oracle(nn.Module):
    """Predicts the exact noise that takes x_0 to x_t: ε = (x_t − √ᾱ_t·x_0)/√(1 − ᾱ_t)."""

    def __init__(self, x0: torch.Tensor, bar: torch.Tensor):
        super().__init__()
        self.x0, self.bar = x0, bar
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y):
        a = self.bar[t].view(-1, 1, 1, 1).to(x.dtype)
        return (x - a.sqrt() * self.x0[: len(x)]) / (1 - a).sqrt()


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_ddim_with_the_true_noise_reconstructs_x0(eta, steps):
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1
    model = Denoiser(Oracle(x0, ScheduleSpec(50).alphas_bar()), 2, (1, 4, 4), ScheduleSpec(50), 0.0)
    out = sample(model, torch.tensor([0, 1]), SamplerSettings(steps=steps, eta=eta, guidance=0.0),
                 torch.Generator().manual_seed(0))
    assert torch.allclose(out, to_image_space(x0), atol=1e-5)


def test_ddim_step_deterministic_case():
    x, eps = torch.tensor([1.0]), torch.tensor([0.5])
    a, b = 0.64, 0.81
    out, x0 = ddim_step(x, eps, a, b, 0.0, None)
    assert x0.item() == pytest.approx((1.0 - 0.6 * 0.5) / 0.8)
    assert out.item() == pytest.approx(0.9 * x0.item() + math.sqrt(1 - 0.81) * 0.5)
    noisy, _ = ddim_step(x, eps, a, b, 1.0, torch.tensor([1.0]))
    sigma = math.sqrt((1 - a / b) * (1 - b) / (1 - a))
    assert noisy.item() == pytest.approx(0.9 * x0.item() + sigma + math.sqrt(1 - b - sigma ** 2) * 0.5)


class ClassConstant(nn.Module):
    """ε̂(x, t, y) = y (broadcast): guidance arithmetic is visible in the output."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y):
        return y.float().view(-1, 1, 1, 1).expand_as(x) + 0 * x


@pytest.mark.parametrize("w", [0.0, 2.0, 0.5])
def test_guidance_arithmetic(w):
    model = Denoiser(ClassConstant(), 4, (1, 2, 2), ScheduleSpec(10))
    x, t, y = torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 3])
    eps = guided_eps(model, x, t, y, w)
    expected = (1 + w) * y.float() - w * 4.0  # the null class is C = 4
    assert torch.allclose(eps[:, 0, 0, 0], expected)


def test_timestep_sequence():
    assert timestep_sequence(1000, 50)[:3] == [0, 20, 40] and len(timestep_sequence(1000, 50)) == 50
    assert timestep_sequence(10, 3) == [0, 3, 6]
    with pytest.raises(UnlearnlabError, match="exceed"):
        timestep_sequence(10, 11)


@pytest.mark.parametrize("bad, match", [({"guidance": -0.5}, "guidance"), ({"steps": 0}, "steps"),
                                        ({"eta": -1.0}, "eta"), ({"steps": 2.5}, "steps")])
def test_sampler_settings_refuse_bad_values(bad, match):
    with pytest.raises(UnlearnlabError, match=match):
        SamplerSettings(**bad)


def test_sample_refuses_unknown_classes():
    model = Denoiser(ClassConstant(), 4, (1, 2, 2), ScheduleSpec(10))
    with pytest.raises(UnlearnlabError, match=r"\[0, 3\]"):
        sample(model, torch.tensor([4]), SamplerSettings(steps=2), torch.Generator())
