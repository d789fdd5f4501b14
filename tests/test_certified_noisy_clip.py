"""Rule ``noisy_clip`` and presets ``certified-gradclip`` / ``certified-modelclip`` (docs/methods.md, "Certified
unlearning: `certified-gradclip`, `certified-modelclip`"; docs/certificates.md, "Accounting")."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.certify import Certificate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.noisy_clip import clip_global_, global_norm, noisy_phase
from unlearnlab.training import onecycle_multiplier


def _zero_loss(model, batch):
    return 0.0 * model(batch["x"]).sum()


def _stream(d_in=64, n=32):
    g = torch.Generator().manual_seed(0)
    while True:
        yield {"x": torch.randn(n, d_in, generator=g), "y": torch.zeros(n, dtype=torch.long)}


def _run_phase(model, seed=3, T=50, variant="gradient_clip", sigma=0.05, lam=0.0, gamma=1e-2, C0=100.0,
               loss=_zero_loss, **kw):
    params = [p for p in model.parameters()]
    noise, traj = [], []

    def step(t):
        traj.append(torch.cat([p.detach().flatten().clone() for p in params]))

    traj.append(None)
    gen = torch.Generator().manual_seed(seed)
    noisy_phase(model, params, _stream(), loss, variant=variant, T=T, sigma=sigma, gamma=gamma, lam=lam, C0=C0,
                generator=gen, on_noise=noise.append, on_step=step, **kw)
    return noise, traj


def test_noise_is_fresh_every_step_white_box():
    torch.manual_seed(0)
    model = nn.Linear(64, 20)  # d = 1,300
    d = sum(p.numel() for p in model.parameters())
    sigma = 0.05
    noise, _ = _run_phase(model, sigma=sigma, C1=1.0)
    assert len(noise) == 50
    for a, b in itertools.combinations(noise, 2):
        assert abs(float(torch.dot(a, b) / (a.norm() * b.norm()))) < 6 / math.sqrt(d)
    for xi in noise:
        assert abs(float(xi.pow(2).sum()) / d / sigma**2 - 1) < 6 * math.sqrt(2 / d)


def test_noise_goes_on_parameters_not_scaled_by_gamma_black_box():
    torch.manual_seed(0)
    model = nn.Linear(64, 20)
    x0 = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    sigma, gamma = 0.05, 1e-3
    _, traj = _run_phase(model, sigma=sigma, gamma=gamma, C1=1.0)
    xs = [x0, *traj[1:]]
    inc = [b - a for a, b in zip(xs, xs[1:])]
    var = torch.stack(inc).var().item()
    assert abs(var / sigma**2 - 1) < 0.05  # σ², not γ²σ²
    for a, b in itertools.combinations(inc[:20], 2):
        assert abs(float(torch.dot(a, b) / (a.norm() * b.norm()))) < 6 / math.sqrt(a.numel())


def test_noise_reproducible_from_seed_and_differs_across_seeds():
    def final(seed):
        torch.manual_seed(0)
        model = nn.Linear(64, 20)
        _run_phase(model, seed=seed, T=5, C1=1.0, loss=lambda m, b: nn.functional.cross_entropy(m(b['x']), b['y']))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(final(7), final(7))
    assert not torch.equal(final(7), final(8))


def test_global_clip_bounds_norm_and_keeps_direction():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(5, 7, generator=g) * 3, torch.randn(11, generator=g), torch.randn(3, 3, generator=g)]
    before = torch.cat([t.flatten() for t in ts])
    clip_global_(ts, 1.5)
    after = torch.cat([t.flatten() for t in ts])
    assert float(global_norm(ts)) <= 1.5 * (1 + 1e-6)
    assert float(torch.nn.functional.cosine_similarity(before, after, dim=0)) > 1 - 1e-6
    small = [torch.full((3,), 0.1)]
    clip_global_(small, 1.0)
    assert torch.equal(small[0], torch.full((3,), 0.1))
    # per-tensor clipping would break the global bound
    ts2 = [torch.ones(10) * 5, torch.ones(10) * 5]
    for t in ts2:
        clip_global_([t], 1.5)
    assert float(global_norm(ts2)) > 1.5 * 1.4


def test_initial_clip_to_C0_and_gradient_step_bounded_by_gamma_C1():
    torch.manual_seed(0)
    model = nn.Linear(64, 20)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(0)
    noisy_phase(model, params, _stream(), _zero_loss, variant="gradient_clip", T=0, sigma=1.0, gamma=1e-2,
                lam=0.0, C0=2.0, C1=1.0, generator=gen)
    assert float(global_norm(params)) <= 2.0 * (1 + 1e-6)
    # one step with huge gradients and negligible noise moves x by at most γ·C1
    x_before = torch.cat([p.detach().flatten().clone() for p in params])
    big = lambda m, b: 1e6 * nn.functional.cross_entropy(m(b['x']), b['y'])  # noqa: E731
    noisy_phase(model, params, _stream(), big, variant="gradient_clip", T=1, sigma=1e-12, gamma=1e-2, lam=0.0,
                C0=2.0, C1=1.0, generator=gen)
    x_after = torch.cat([p.detach().flatten() for p in params])
    assert float((x_after - x_before).norm()) <= 1e-2 * 1.0 * (1 + 1e-5)


def test_model_clip_output_lies_in_C2_ball_before_noise():
    torch.manual_seed(0)
    model = nn.Linear(64, 20)
    noise, traj = _run_phase(model, variant="model_clip", T=10, sigma=0.01, lam=1.0, gamma=1e-2, C2=0.3,
                             loss=lambda m, b: 100 * nn.functional.cross_entropy(m(b['x']), b['y']))
    for xi, x in zip(noise, traj[1:]):
        assert float((x - xi).norm()) <= 0.3 * (1 + 1e-6)


def test_onecycle_lr_shape():
    assert 0.1 * onecycle_multiplier(0, 100) == pytest.approx(0.004)
    assert 0.1 * onecycle_multiplier(30, 100) == pytest.approx(0.1)
    assert 0.1 * onecycle_multiplier(85, 100) == pytest.approx(0.004)
    assert 0.1 * onecycle_multiplier(100, 100) == pytest.approx(0.1 / 2.5e5)
    assert 0.1 * onecycle_multiplier(500, 100) == pytest.approx(0.1 / 2.5e5)


# ------------------------------------------------------------------------------------------- presets end to end
@pytest.fixture(scope="module")
def original(digits_task):
    torch.manual_seed(0)
    model = ul.models.create("mlp", digits_task)
    ul.train(model, digits_task.train, ul.Recipe.default(digits_task).replace(epochs=5))
    return model.eval()


def test_gradclip_preset_emits_verifiable_certificate(original, digits_task, tmp_path):
    res = ul.unlearn(original, digits_task, method="certified-gradclip", seed=1234, epochs=2)
    cert = res.certificate
    assert cert.verify() and cert.variant == "gradient_clip"
    assert cert.epsilon <= 1.0 and abs(cert.epsilon - 1.0) < 1e-9
    # a digits GC configuration of docs/certified_budget.md, "Grids": (1, 1, 1e-3, 500) at certified eps = 1
    # -> T = 14, sigma = 0.0144
    assert cert.constants["T"] == 14 and abs(cert.constants["sigma"] - 0.0144) < 5e-5
    n_steps = 2 * math.ceil(len(digits_task.retain) / 32)
    assert res.counters.optimizer_steps == n_steps
    assert res.stats["finetune_steps"] == n_steps - 14
    assert cert.clipping["d"] == sum(p.numel() for p in original.parameters())
    Certificate.load(cert.save(tmp_path / "model.pt"))


def test_reference_accounting_reports_certified_eps(original, digits_task):
    res = ul.unlearn(original, digits_task, method="certified-gradclip", seed=1, epochs=1, accounting="reference",
                     C0=1.0, C1=10.0, gamma=1e-2, lam=50.0)
    cert = res.certificate
    assert cert.accounting_mode == "reference" and abs(cert.epsilon - 7.0772) < 5e-5
    assert cert.constants["T"] == 5 and abs(cert.constants["sigma"] - 0.27570) < 5e-6


def test_modelclip_preset_emits_certificate(original, digits_task):
    res = ul.unlearn(original, digits_task, method="certified-modelclip", seed=1, epochs=1)
    cert = res.certificate
    assert cert.verify() and cert.constants["T"] == 6 and cert.delta_trajectory[-1] <= 1e-5
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def test_same_seed_bitwise_and_different_seed_differs_with_reproducible_noise(original, digits_task):
    kw = {"method": "certified-gradclip", "epochs": 1, "noise_source": "seeded"}
    a = ul.unlearn(original, digits_task, seed=5, **kw)
    b = ul.unlearn(original, digits_task, seed=5, **kw)
    c = ul.unlearn(original, digits_task, seed=6, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.model.parameters(), c.model.parameters()))


@pytest.mark.parametrize("method", ["certified-gradclip", "certified-modelclip"])
def test_forget_inputs_never_used(original, digits_task, method):
    poisoned = (torch.full_like(digits_task.forget.x, float("nan")), digits_task.forget.y)
    res = ul.unlearn(original, forget=poisoned, retain=digits_task.retain, method=method, seed=1, epochs=1)
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def test_batchnorm_refused_naming_the_fix(digits_task):
    with pytest.raises(UnlearnlabError, match="reset_after_noise"):
        ul.unlearn(_bn_model(), digits_task, method="certified-gradclip", seed=1, epochs=1)
    res = ul.unlearn(_bn_model(), digits_task, method="certified-modelclip", seed=1, epochs=1,
                     buffers="reset_after_noise")
    assert res.certificate.buffers == "reset_after_noise"


def test_frozen_params_refused_unless_public(digits_task):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    model[1].weight.requires_grad_(False)
    with pytest.raises(UnlearnlabError, match="frozen_params='public'"):
        ul.unlearn(model, digits_task, method="certified-gradclip", seed=1, epochs=1)
    res = ul.unlearn(model, digits_task, method="certified-gradclip", seed=1, epochs=1, frozen_params="public")
    cert = res.certificate
    assert cert.frozen_params == {"count": 64 * 16, "declared_public": True}


@pytest.mark.parametrize("overrides,match", [
    ({"gamma": 0.1, "lam": 10.0}, "gamma\\*lambda"),
    ({"lam": 0.0}, "exceed the budget"),
])
def test_gradclip_errors(original, digits_task, overrides, match):
    with pytest.raises(UnlearnlabError, match=match):
        ul.unlearn(original, digits_task, method="certified-gradclip", seed=1, epochs=1, **overrides)


def test_modelclip_not_reaching_delta_is_an_error(original, digits_task):
    with pytest.raises(UnlearnlabError, match="no certificate"):
        ul.unlearn(original, digits_task, method="certified-modelclip", seed=1, epochs=1, C2=2.0, sigma=0.5)


# --------------------------------------------------------------------------- the noisy step, exactly (mutant catchers)
def _step_by_hand(model, batch, C1, gamma, lam, xi):
    """x' = x − γ(clip_C1(∇L(x)) + λx) + ξ, computed independently of the rule (float64)."""
    params = list(model.parameters())
    loss = nn.functional.cross_entropy(model(batch["x"]), batch["y"])
    grads = torch.autograd.grad(loss, params)
    flat_g = torch.cat([g.flatten() for g in grads])
    flat_g = flat_g * min(1.0, C1 / float(flat_g.norm()))
    x = torch.cat([p.detach().flatten() for p in params])
    return x - gamma * (flat_g + lam * x) + xi


@pytest.mark.parametrize("C1", [0.05, 0.5, 50.0])
def test_one_noisy_gradient_step_equals_the_formula_with_the_stated_clip(C1):
    torch.manual_seed(0)
    model = nn.Linear(8, 3).double()
    params = list(model.parameters())
    batch = {"x": torch.randn(16, 8, dtype=torch.float64), "y": torch.randint(0, 3, (16,))}
    with torch.no_grad():  # start inside the C0 ball, so the initial clip does nothing
        scale = 0.5 / float(global_norm(params))
        for p in params:
            p.mul_(scale)
    noise: list[torch.Tensor] = []
    expected = _step_by_hand(model, batch, C1, gamma=0.1, lam=0.3, xi=0.0)
    noisy_phase(model, params, iter([batch]), lambda m, b: nn.functional.cross_entropy(m(b["x"]), b["y"]),
                variant="gradient_clip", T=1, sigma=0.01, gamma=0.1, lam=0.3, C0=1.0, C1=C1,
                generator=torch.Generator().manual_seed(3), on_noise=noise.append)
    got = torch.cat([p.detach().flatten() for p in params])
    assert torch.allclose(got, expected + noise[0], atol=1e-12, rtol=0)  # gradient present, clipped at C1 exactly


def test_the_release_is_fine_tuned_from_the_noisy_output_not_from_the_original(original, digits_task):
    """If fine-tuning started from the original (noise discarded), the amount of noise could not change the release."""
    kw = {"method": "certified-gradclip", "epochs": 1, "seed": 5, "T": 5, "noise_source": "seeded"}
    loud = ul.unlearn(original, digits_task, sigma=1.0, **kw)
    quiet = ul.unlearn(original, digits_task, sigma=1e-6, **kw)
    gap = max(float((a - b).abs().max()) for a, b in zip(loud.model.parameters(), quiet.model.parameters()))
    assert gap > 0.1
    assert loud.certificate.noisy_output_sha256 != loud.certificate.model_sha256  # fine-tuning moved it


def test_with_no_fine_tuning_the_release_is_the_noisy_output(original, digits_task):
    res = ul.unlearn(original, digits_task, method="certified-modelclip", epochs=1, seed=5, T=37, sigma=None,
                     batch_size=32)
    steps = -(-len(digits_task.retain) // 32)
    assert res.stats["finetune_steps"] == steps - 37
    certificate = res.certificate
    if res.stats["finetune_steps"] == 0:
        assert certificate.noisy_output_sha256 == certificate.model_sha256
    assert certificate.verify(res.model)


def test_nothing_derived_from_the_original_or_the_noisy_phase_is_released(original, digits_task):
    res = ul.unlearn(original, digits_task, method="certified-gradclip", epochs=1, seed=5)
    assert "noisy_losses" not in res.stats and "final_loss" not in res.stats
    assert res.certificate.noise["seed"] is None
    assert set(res.stats) <= {"epsilon", "delta", "epsilon_R", "certified", "noisy_steps", "sigma",
                              "finetune_steps", "steps"}
