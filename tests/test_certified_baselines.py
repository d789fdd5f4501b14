"""Certified baselines and models (docs/methods.md, "Certified baselines"): ``output-perturbation``, the certified
"retrain with the same budget" recipe, ``digits_tiny`` and ``features_mlp``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.certify import Certificate, CertificateError
from unlearnlab.certify import accountant as acc
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext, UnlearnData
from unlearnlab.methods.presets_certified import certified_retrain_recipe
from unlearnlab.methods.rules.noisy_clip import noisy_phase
from unlearnlab.models.zoo import FlaxLinear, digits_tiny, features_mlp
from unlearnlab.utils import torch_generator

DELTA = 1e-5


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.fixture(scope="module")
def original(digits_task):
    model = ul.models.create("digits_tiny", digits_task, seed=1)
    ul.train(model, digits_task.train, ul.Recipe.default(digits_task).replace(epochs=5))
    return model.eval()


def _never(model, batch):  # output perturbation takes no gradient step
    raise AssertionError("output perturbation must not read a batch")


# ------------------------------------------------------------------------------------- Gaussian calibration
@pytest.mark.parametrize(("C0", "classic", "analytic"), [(0.01, 0.0968961, 0.074613), (0.1, 0.968961, 0.746126),
                                                          (1.0, 9.689611, 7.461263)])
def test_gaussian_calibration_anchors(C0, classic, analytic):
    s, name = acc.gaussian_calibrate(1.0, DELTA, 2 * C0)
    assert name == "gaussian-classic" and s == pytest.approx(classic, rel=2e-6)
    s, name = acc.gaussian_calibrate(1.0, DELTA, 2 * C0, "analytic")
    assert name == "gaussian-analytic" and s == pytest.approx(analytic, rel=1e-5)


def test_auto_calibration_switches_to_analytic_above_eps_one():
    s, name = acc.gaussian_calibrate(10.0, DELTA, 0.02)
    assert name == "gaussian-analytic" and s == acc.gaussian_analytic_sigma(10.0, DELTA, 0.02)
    # the classic formula is invalid there: its actual delta exceeds the target (spec: 2.27e-5)
    naive = math.sqrt(2 * math.log(1.25 / DELTA)) * 0.02 / 10.0
    assert acc.theta(10.0, 0.02 / naive) == pytest.approx(2.27e-5, rel=5e-3)
    with pytest.raises(ValueError, match="valid only"):
        acc.gaussian_calibrate(10.0, DELTA, 0.02, "classic")
    with pytest.raises(ValueError, match="calibration"):
        acc.gaussian_calibrate(1.0, DELTA, 0.02, "exact")


# ------------------------------------------------------------------------------------- one-shot mechanism
def test_output_perturbation_clips_to_C0_then_adds_seeded_noise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    params = list(model.parameters())
    x_hat = _flat(model)
    C0, sigma = 0.5, 0.2
    noise: list[torch.Tensor] = []
    noisy_phase(model, params, iter(()), _never, variant="output_perturbation", T=0, sigma=sigma, gamma=1.0,
                lam=0.0, C0=C0, generator=torch.Generator().manual_seed(11), on_noise=noise.append)
    assert len(noise) == 1
    expected_noise = torch.randn(x_hat.numel(), generator=torch.Generator().manual_seed(11)) * sigma
    assert torch.equal(noise[0], expected_noise)
    clipped = _flat(model) - noise[0]
    assert float(clipped.norm()) <= C0 * (1 + 1e-6)  # the clip bound (global l2 over all trainable params)
    assert float(torch.nn.functional.cosine_similarity(clipped, x_hat, dim=0)) > 1 - 1e-5
    with pytest.raises(UnlearnlabError, match="T must be 0"):
        noisy_phase(model, params, iter(()), _never, variant="output_perturbation", T=1, sigma=sigma, gamma=1.0,
                    lam=0.0, C0=C0, generator=torch.Generator())


def test_small_model_is_not_scaled_up_by_the_clip():
    model = nn.Linear(4, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
    before = _flat(model).clone()
    noisy_phase(model, list(model.parameters()), iter(()), _never, variant="output_perturbation", T=0,
                sigma=1e-30, gamma=1.0, lam=0.0, C0=10.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_flat(model), before, atol=1e-25, rtol=0)


# ------------------------------------------------------------------------------------- preset end to end
@pytest.mark.parametrize(("epsilon", "calibration", "accountant", "fn"), [
    (1.0, "auto", "gaussian-classic", acc.gaussian_classic_sigma),
    (0.5, "analytic", "gaussian-analytic", acc.gaussian_analytic_sigma),
    (10.0, "auto", "gaussian-analytic", acc.gaussian_analytic_sigma),
])
def test_preset_sigma_equals_the_calibration_and_certificate_verifies(original, digits_task, tmp_path, epsilon,
                                                                      calibration, accountant, fn):
    C0 = 0.05
    res = ul.unlearn(original, digits_task, method="output-perturbation", seed=3, epochs=1, epsilon=epsilon,
                     C0=C0, calibration=calibration)
    cert = res.certificate
    assert cert.variant == "output_perturbation" and cert.accountant["name"] == accountant
    assert cert.constants["sigma"] == fn(epsilon, DELTA, 2 * C0)  # exactly the calibration function's value
    assert cert.constants["sensitivity"] == 2 * C0 and cert.constants["T"] == 0
    assert cert.epsilon == epsilon and cert.delta == DELTA
    assert cert.verify()
    assert cert.clipping == {"norm": "global_l2", "scope": "all_trainable_parameters", "d": 1210}
    loaded = Certificate.load(cert.save(tmp_path / "model.pt"))
    assert loaded.state_dict() == cert.state_dict()
    n_steps = math.ceil(len(digits_task.retain) / 32)
    assert res.counters.optimizer_steps == n_steps  # whole budget is fine-tuning (T = 0)
    assert res.stats["finetune_steps"] == n_steps and res.stats["noisy_steps"] == 0
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def test_tampered_certificate_fails(original, digits_task, tmp_path):
    res = ul.unlearn(original, digits_task, method="output-perturbation", seed=1, epochs=1, epsilon=10.0)
    path = res.certificate.save(tmp_path / "m.pt")
    state = Certificate.load(path).state_dict()
    # an edit without a matching digest
    edited = {**state, "constants": {**state["constants"], "sigma": state["constants"]["sigma"] * 0.5}}
    with pytest.raises(CertificateError, match="digest"):
        Certificate.from_dict(edited).verify()
    # a consistent-looking forgery (digest recomputed) still fails the sigma check
    forged = Certificate.from_dict(edited)
    forged.digest = forged.compute_digest()
    with pytest.raises(CertificateError, match="analytic"):
        forged.verify()
    # claiming a smaller epsilon for the same sigma fails too
    cheat = Certificate.from_dict({**state, "epsilon": 5.0, "digest": None})
    cheat.digest = cheat.compute_digest()
    with pytest.raises(CertificateError, match="sigma too small"):
        cheat.verify()
    # a classic certificate above eps = 1 is refused (the classic formula is not a certificate there)
    wrong = Certificate.from_dict({**state, "accountant": {**state["accountant"], "name": "gaussian-classic"},
                                   "digest": None})
    with pytest.raises(CertificateError):
        wrong.check_guarantee()
    # inconsistent sensitivity
    sens = Certificate.from_dict({**state, "constants": {**state["constants"], "sensitivity": 1.0}, "digest": None})
    with pytest.raises(CertificateError, match="sensitivity"):
        sens.check_guarantee()


def test_noise_reproducible_from_seed(original, digits_task):
    C0 = 0.05
    sigma = acc.gaussian_classic_sigma(1.0, DELTA, 2 * C0)
    d = sum(p.numel() for p in original.parameters())

    def noise_of(seed):
        info = ul.get_method("output-perturbation")
        unlearner = info.build(info.resolve({"C0": C0, "epochs": 1, "noise_source": "seeded"}))
        got: list[torch.Tensor] = []
        unlearner.rule.on_noise = got.append
        model = ul.models.create("digits_tiny", digits_task, seed=1)
        model.load_state_dict(original.state_dict())
        data = UnlearnData(digits_task.forget, digits_task.retain, info={"num_classes": 10})
        unlearner.run(model, data, RunContext(seed=seed))
        return got

    a, b, c = noise_of(4), noise_of(4), noise_of(5)
    assert len(a) == 1 and torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    expected = torch.randn(d, generator=torch_generator(4, "certified-noise")) * sigma
    assert torch.equal(a[0], expected)


def test_same_seed_bitwise_identical_runs_with_reproducible_noise(original, digits_task):
    kw = {"method": "output-perturbation", "epochs": 1, "noise_source": "seeded"}
    a = ul.unlearn(original, digits_task, seed=2, **kw)
    b = ul.unlearn(original, digits_task, seed=2, **kw)
    c = ul.unlearn(original, digits_task, seed=3, **kw)
    assert torch.equal(_flat(a.model), _flat(b.model))
    assert not torch.equal(_flat(a.model), _flat(c.model))
    assert not a.certificate.certified and a.certificate.noise["seed"] == 2


def test_secure_noise_is_not_replayable_from_the_run_seed_and_is_certified(original, digits_task):
    a = ul.unlearn(original, digits_task, method="output-perturbation", seed=2, epochs=1)
    b = ul.unlearn(original, digits_task, method="output-perturbation", seed=2, epochs=1)
    assert not torch.equal(_flat(a.model), _flat(b.model))  # fresh OS entropy each run, whatever the seed
    assert a.certificate.certified and a.certificate.noise["seed"] is None
    assert a.certificate.verify(a.model) and a.certificate.split_hash == digits_task.split_hash


def test_forget_inputs_never_used(original, digits_task):
    poisoned = (torch.full_like(digits_task.forget.x, float("nan")), digits_task.forget.y)
    res = ul.unlearn(original, forget=poisoned, retain=digits_task.retain, method="output-perturbation", seed=1,
                     epochs=1)
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert res.certificate.verify()


def test_errors_name_the_fix(original, digits_task):
    with pytest.raises(UnlearnlabError, match="calibration='analytic'"):
        ul.unlearn(original, digits_task, method="output-perturbation", seed=1, epochs=1, epsilon=2.0,
                   calibration="classic")
    with pytest.raises(UnlearnlabError, match="sigma=None"):
        ul.unlearn(original, digits_task, method="output-perturbation", seed=1, epochs=1, sigma=1e-4)
    bn = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(UnlearnlabError, match="reset_after_noise"):
        ul.unlearn(bn, digits_task, method="output-perturbation", seed=1, epochs=1)


def test_larger_user_sigma_is_certified(original, digits_task):
    res = ul.unlearn(original, digits_task, method="output-perturbation", seed=1, epochs=1, sigma=0.5)
    assert res.certificate.constants["sigma"] == 0.5 and res.certificate.verify()


# ------------------------------------------------------------------------------------- retrain, same budget
def test_certified_retrain_recipe_is_section_6():
    r = certified_retrain_recipe(epochs=7)
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.epochs, r.batch_size, r.schedule, r.augment) == (
        "sgd", 0.1, 0.0, 5e-4, 7, 32, "onecycle", False)
    assert certified_retrain_recipe(50, batch_size=128, augment=True).batch_size == 128
    assert ul.get_method("retrain").resolve(certified_retrain_recipe(3).to_dict())["momentum"] == 0.0


def test_certified_retrain_matches_the_certified_budget_and_reinitialises(original, digits_task):
    E = 2
    rt = ul.unlearn(original, digits_task, method="retrain", seed=1, **certified_retrain_recipe(E).to_dict())
    gc = ul.unlearn(original, digits_task, method="certified-gradclip", seed=1, epochs=E)
    op = ul.unlearn(original, digits_task, method="output-perturbation", seed=1, epochs=E)
    n = E * math.ceil(len(digits_task.retain) / 32)
    assert rt.counters.optimizer_steps == gc.counters.optimizer_steps == op.counters.optimizer_steps == n
    assert rt.counters.forward_samples == E * len(digits_task.retain)
    # a fresh init independent of the original: same model for any original weights
    other = ul.models.create("digits_tiny", digits_task, seed=9)
    rt2 = ul.unlearn(other, digits_task, method="retrain", seed=1, **certified_retrain_recipe(E).to_dict())
    assert torch.equal(_flat(rt.model), _flat(rt2.model))


def test_retrain_reinitialisation_of_digits_tiny_is_flax_lecun():
    torch.manual_seed(0)
    net = digits_tiny((1, 8, 8), 10)
    from unlearnlab.methods.reinit import reinitialise

    with torch.no_grad():
        for p in net.parameters():
            p.fill_(3.0)
    reinitialise(net, seed=1)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            bound = 2 * math.sqrt(1 / m.in_features) / 0.87962566103423978
            assert float(m.weight.detach().abs().max()) <= bound * (1 + 1e-6)
            assert torch.count_nonzero(m.bias) == 0


# ------------------------------------------------------------------------- models (`digits_tiny`, `features_mlp`)
def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_digits_tiny_layers_and_parameter_count(digits_task):
    net = digits_tiny((1, 8, 8), 10)
    assert [type(m) for m in net] == [nn.Flatten, FlaxLinear, nn.ReLU, FlaxLinear]
    assert (net[1].in_features, net[1].out_features, net[3].out_features) == (64, 16, 10)
    assert _count(net) == 1210
    model = ul.models.create("digits_tiny", digits_task, seed=1)
    assert _count(model) == 1210 and model(digits_task.forget.x[:3]).shape == (3, 10)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in model.modules())


@pytest.mark.parametrize(("classes", "d"), [(10, 17802), (100, 20772)])
def test_features_mlp_parameter_count(classes, d):
    net = features_mlp((512,), classes)
    assert _count(net) == d
    dims = [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]
    assert dims == [(512, 32), (32, 32), (32, classes)]
    for shape in [(1, 1, 512), (512, 1, 1)]:
        model = ul.models.create("features_mlp", input_shape=shape, num_classes=classes, seed=1)
        assert _count(model) == d and model(torch.randn(4, *shape)).shape == (4, classes)


def test_flax_init_statistics_and_seed():
    torch.manual_seed(0)
    layer = FlaxLinear(512, 2048)
    w = layer.weight.detach()
    scale = math.sqrt(1 / 512)
    assert torch.count_nonzero(layer.bias) == 0
    assert float(w.abs().max()) <= 2 * scale / 0.87962566103423978 * (1 + 1e-6)
    assert float(w.std()) == pytest.approx(scale, rel=0.01)  # truncation corrected: std = sqrt(s/fan_in)
    assert FlaxLinear(3, 2, init_scale=2.0).init_scale == 2.0
    a = ul.models.create("features_mlp", input_shape=(1, 1, 512), num_classes=10, seed=4)
    b = ul.models.create("features_mlp", input_shape=(1, 1, 512), num_classes=10, seed=4)
    assert torch.equal(_flat(a), _flat(b))

