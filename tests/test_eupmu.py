"""EUPMU / EUPMU-fast / UNGrad properties (docs/methods.md, "EUPMU, EUPMU-fast and UNGrad (surgery rules)"):
surgery direction, one backward per step, dual update, log refusal, BN-safe signal, ε sign mapping, batch split,
exact masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.counting import CountingHooks
from unlearnlab.data.tensors import TensorData
from unlearnlab.methods import RunContext, UnlearnData, get_method
from unlearnlab.methods.masks import saliency_mask
from unlearnlab.methods.rules import ImplicitSurgery
from unlearnlab.methods.rules.implicit_surgery import Dual
from unlearnlab.methods.rules.surgery import split_batch, surgery_direction
from unlearnlab.objectives import FamilyLoss

# ------------------------------------------------------------------------------------------------ UNGrad


def _vectors(seed: int, n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("epsilon", [-0.5, 0.0, 0.5])
def test_ungrad_direction_is_feasible_and_tight_when_active(seed, epsilon):
    g_u, g_r = _vectors(seed)
    d, lam = surgery_direction(g_u, g_r, epsilon)
    scale = abs(g_r @ g_u) + abs(epsilon) + g_r.norm() * g_u.norm()
    assert g_r @ d >= -epsilon - 1e-10 * scale  # U1
    assert lam >= 0
    if lam > 0:  # U2, U4
        assert abs(float(g_r @ d) + epsilon) <= 1e-10 * float(scale)
        assert torch.allclose(d - g_u, lam * g_r, rtol=0, atol=1e-12)


def test_ungrad_direction_is_bitwise_g_u_when_inactive_or_g_r_zero():
    g_u, g_r = _vectors(0)
    g_r = g_r if g_r @ g_u >= 0 else -g_r
    d, lam = surgery_direction(g_u, g_r, 0.0)
    assert lam == 0.0 and torch.equal(d, g_u)  # U3
    d, lam = surgery_direction(g_u, torch.zeros_like(g_r), 0.0)
    assert lam == 0.0 and torch.equal(d, g_u) and torch.isfinite(d).all()  # U6


def test_ungrad_with_zero_epsilon_is_one_sided_pcgrad():
    g_u, g_r = _vectors(1)
    g_r = g_r if g_r @ g_u < 0 else -g_r
    d, lam = surgery_direction(g_u, g_r, 0.0)
    assert lam > 0 and abs(float(g_r @ d)) < 1e-12 * float(g_r.norm() * g_u.norm())  # U5


# ------------------------------------------------------------------------------------------------ tiny problems


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _data(n_f: int = 12, n_r: int = 60) -> UnlearnData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_f + n_r, 6, generator=gen)
    y = torch.randint(0, 3, (n_f + n_r,), generator=gen)
    return UnlearnData(TensorData.of(x[:n_f], y[:n_f]), TensorData.of(x[n_f:], y[n_f:]), info={"num_classes": 3})


def _run(method: str, model: nn.Module, data: UnlearnData, **overrides):
    info = get_method(method)
    unlearner = info.build(info.resolve({"epochs": 2, "batch_size": 24, **overrides}))
    ctx = RunContext(seed=1)
    with CountingHooks(model, ctx.counters):
        unlearner.run(model, data, ctx)
    return unlearner, ctx.counters


@pytest.mark.parametrize(("method", "passes"), [("eupmu", 1), ("eupmu-fast", 1), ("ungrad", 2)])
def test_backward_passes_per_step(method, passes):
    model, data = _bn_model(), _data()
    fired = []
    model[0].weight.register_hook(lambda g: fired.append(1))
    _, counters = _run(method, model, data)
    steps = 2 * -(-60 // split_batch(24, 12, 60)[1])
    assert counters.optimizer_steps == steps
    assert len(fired) == passes * steps  # E3 / U8: hook on a parameter every loss reaches
    extra = 0 if method != "eupmu" else 2 * 60  # one no-grad forward over B_r per step, nothing else
    assert counters.forward_samples == counters.backward_samples + extra


def test_post_step_signal_forward_leaves_bn_buffers_unchanged(monkeypatch):
    """E4: the buffers after the λ update equal those right after the step-2 training forwards."""
    model, data = _bn_model(), _data()
    after_training_forwards, after_step = [], []
    original = ImplicitSurgery._dual_step

    def spy(self, delta, lr):
        after_step.append([b.clone() for b in model.buffers()])
        original(self, delta, lr)

    monkeypatch.setattr(ImplicitSurgery, "_dual_step", spy)
    monkeypatch.setattr(ImplicitSurgery, "_objective", _recording(ImplicitSurgery._objective, model,
                                                                  after_training_forwards))
    _run("eupmu", model, data)
    assert len(after_step) == len(after_training_forwards) > 0
    for a, b in zip(after_training_forwards, after_step):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def _recording(method, model, store):
    def wrapper(self, loss_u, loss_r):
        store.append([b.clone() for b in model.buffers()])
        return method(self, loss_u, loss_r)
    return wrapper


@pytest.mark.parametrize(("mode", "forwards"), [("frozen_bn", 2), ("reference", 3)])
def test_only_reference_signal_mode_updates_bn_statistics_in_the_signal_forward(mode, forwards):
    model = _bn_model()
    _run("eupmu", model, _data(), signal_mode=mode)
    assert int(model[1].num_batches_tracked) == 2 * 3 * forwards  # epochs · steps · tracked forwards per step


# ------------------------------------------------------------------------------------------------ dual update


@pytest.mark.parametrize("delta", [-0.3, 0.0, 0.02, 0.4])
def test_sgd_dual_step_is_beta_times_delta_minus_epsilon(delta):
    dual = Dual(epsilon=0.01, lr=0.5, weight_decay=0.0, init=2.0, maximum=None, optimizer="sgd", projection="hard")
    dual.update(torch.tensor(delta))
    assert dual.value.item() == pytest.approx(2.0 + 0.5 * (delta - 0.01), abs=1e-6)  # E1


@pytest.mark.parametrize("delta", [-0.2, 0.2])
def test_adam_first_dual_step_has_sign_of_delta_minus_epsilon_and_stays_non_negative(delta):
    dual = Dual(epsilon=0.0, lr=1.0, weight_decay=0.01, init=0.0, maximum=None, optimizer="adam", projection="hard")
    dual.update(torch.tensor(delta))
    assert (dual.value.item() > 0) == (delta > 0) and dual.value.item() >= 0  # E1, E2


def test_lambda_rises_when_retain_loss_rises_faster_than_epsilon():
    """Demanding a decrease the retain loss cannot deliver (ε = −1) drives λ up; a loose ε keeps it at 0."""
    model, data = _bn_model(), _data()
    strict, _ = _run("eupmu", model, data, epsilon=-1.0, objective_transform="identity", lambda_weight_decay=0.0)
    loose, _ = _run("eupmu", _bn_model(), data, epsilon=10.0, objective_transform="identity")
    assert strict.rule.dual.value.item() > 1.0
    assert loose.rule.dual.value.item() == 0.0


def test_eu_error_is_the_deprecated_alias_of_minus_epsilon():
    with pytest.warns(DeprecationWarning, match="epsilon=-0.05"):
        rule = ImplicitSurgery(eu_error=0.05)
    assert rule.epsilon == -0.05
    with pytest.raises(ValueError, match="not both"):
        ImplicitSurgery(epsilon=0.1, eu_error=0.05)


# ------------------------------------------------------------------------------------------------ log transform


def test_log_transform_refuses_objectives_that_can_be_negative():
    with pytest.raises(ValueError, match="FamilyLoss can be negative"):
        _run("ga+eupmu", _bn_model(), _data(), objective_transform="log")
    _run("ga+eupmu", _bn_model(), _data())  # the preset's identity transform runs


def test_log_transform_names_the_loss_when_it_is_not_above_the_offset():
    with pytest.raises(ValueError, match=r"retain loss \(signal\) > log_offset=100"):
        _run("eupmu", _bn_model(), _data(), log_offset=100.0)


def test_log_additive_gradient_is_loss_normalised_sum():
    """E5: log + additive ⇒ grad = ∇ℓ_u/ℓ_u + λ⁺∇ℓ_r/ℓ_r (float64)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
    rule = ImplicitSurgery(lambda_init=0.7)
    rule.dual = Dual(0.0, 1.0, 0.0, 0.7, None, "sgd", "hard")
    ce, ctx = FamilyLoss(), RunContext(seed=1)
    b_u, b_r = {"x": x[:4], "y": y[:4]}, {"x": x[4:], "y": y[4:]}
    l_u, l_r = ce(model, b_u, ctx), ce(model, b_r, ctx)
    got = torch.autograd.grad(rule._objective(l_u, l_r), model.weight)[0]
    g_u = torch.autograd.grad(ce(model, b_u, ctx), model.weight)[0]
    g_r = torch.autograd.grad(ce(model, b_r, ctx), model.weight)[0]
    want = g_u / l_u.detach() + 0.7 * g_r / l_r.detach()
    assert torch.allclose(got, want.to(got), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------ batching, masks


@pytest.mark.parametrize(("b", "n_f", "n_r", "expected"),
                         [(256, 4500, 40500, (26, 230)), (64, 130, 1172, (6, 58)), (8, 1, 10_000, (1, 7))])
def test_forget_and_retain_batch_sizes(b, n_f, n_r, expected):
    assert split_batch(b, n_f, n_r) == expected


def test_salun_eupmu_keeps_masked_weights_bit_identical(digits_task):
    model = ul.models.create("mlp", digits_task)
    ul.train(model, digits_task.train, ul.Recipe.default(digits_task).replace(epochs=3))
    mask = saliency_mask(model, digits_task.forget, 0.5)
    res = ul.unlearn(model, digits_task, method="salun+eupmu", seed=1, epochs=2, lr=0.1)
    after = dict(res.model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(after[name][~mask[name]], p[~mask[name]])  # E11: frozen entries bit-identical
    assert any(not torch.equal(after[n], p) for n, p in model.named_parameters())
