"""Behaviours that define the seed methods, each pinned so that breaking it fails a test.

Known-answer problems (two quadratics with known constrained optima) for the surgery rules, and spies on the
EUPMU dual update, DualOptim's per-phase schedulers and optimizers, SFR-on's and UNGrad's masks and the surgery
presets' relabelling. docs/methods.md ("EUPMU", "UNGrad", "DualOptim") states the behaviours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.families.classification import RandomLabelCE
from unlearnlab.methods import compose
from unlearnlab.methods.modifiers import FisherMask
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.rules import ImplicitSurgery, Stepper, Surgery
from unlearnlab.methods.rules.base import scaled
from unlearnlab.methods.rules.implicit_surgery import Dual
from unlearnlab.objectives import Objective

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ quadratic problems
class Point(nn.Module):
    """θ ∈ R² as the only parameter; the forward returns constant logits so the classification checks pass."""

    def __init__(self, start: tuple[float, float]):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(start, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 2, dtype=torch.float64) + 0.0 * self.theta.sum()


@dataclass
class Quadratic(Objective):
    """½‖θ − c‖² whatever the batch."""

    centre: tuple[float, float] = (0.0, 0.0)
    internal = frozenset({"centre"})

    def __call__(self, model, batch, ctx):
        return 0.5 * ((model.theta - torch.tensor(self.centre, dtype=torch.float64)) ** 2).sum()


def _data():
    x = torch.arange(100, dtype=torch.float64)[:, None]  # distinct samples
    y = torch.tensor([0, 1] * 50)
    return (x[:1], y[:1]), (x[1:], y[1:])  # b = 100 → b_f = 1, b_r = 99: one step per epoch


def _run_quadratic(rule, start, forget_centre, retain_centre, steps, lr):
    model = Point(start)
    forget, retain = _data()
    method = compose(forget=Quadratic(forget_centre), retain=Quadratic(retain_centre), rule=rule,
                     optimization=Optimization(epochs=steps, lr=lr, momentum=0.0, weight_decay=0.0,
                                               batch_size=100))
    res = ul.unlearn(model, forget=forget, retain=retain, method=method)
    return res.model.theta.detach(), res


def test_ungrad_with_zero_epsilon_slides_along_the_retain_level_set_to_the_constrained_optimum():
    """L_u = ½‖θ − (2, 0)‖², L_r = ½‖θ‖², θ0 = (0.6, 0.8) on the unit circle where the two gradients conflict
    (⟨θ, θ − a⟩ < 0): ε = 0 keeps L_r constant to first order, so θ moves on the circle to the point closest to
    (2, 0): θ* = (1, 0), with L_r(θ*) = L_r(θ0) = ½ (up to O(lr²) drift)."""
    theta, _ = _run_quadratic(Surgery(epsilon=0.0), (0.6, 0.8), (2.0, 0.0), (0.0, 0.0), steps=3000, lr=0.01)
    assert torch.allclose(theta, torch.tensor([1.0, 0.0], dtype=torch.float64), atol=2e-2)
    assert abs(0.5 * float(theta @ theta) - 0.5) < 2e-2  # the retain loss allowed to rise by ~0 only


def test_eupmu_settles_at_lambda_minus_epsilon_over_gamma_and_minimises_that_weighted_sum():
    """When the required decrease −ε cannot be met at the fixed point (Δ = 0), SGD dual ascent with decay γ has
    λ* = −ε/γ, and the step minimises L_u + λ*·L_r: θ* = (a + λ*·b)/(1 + λ*) (identity transforms, additive)."""
    eps, gamma = -0.01, 0.02
    rule = ImplicitSurgery(epsilon=eps, lambda_lr=0.5, lambda_weight_decay=gamma, lambda_optimizer="sgd",
                           objective_transform="identity", signal_transform="identity")
    theta, res = _run_quadratic(rule, (0.0, 1.0), (2.0, 0.0), (0.0, 0.0), steps=4000, lr=0.05)
    lam = -eps / gamma
    assert res.stats["lambda_final"] == pytest.approx(lam, rel=2e-2)
    expected = (torch.tensor([2.0, 0.0], dtype=torch.float64) + lam * torch.zeros(2, dtype=torch.float64)) / (1 + lam)
    assert torch.allclose(theta, expected, atol=2e-2)


# ------------------------------------------------------------------------------------------------ the EUPMU dual update
def _tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = torch.randint(0, 3, (120,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, (x[:20], y[:20]), (x[20:], y[20:])


@pytest.fixture
def dual_spy(monkeypatch):
    record: dict[str, list] = {"used": [], "retain": [], "delta": []}
    objective = ImplicitSurgery._objective

    def spy_objective(self, loss_u, loss_r):
        record["used"].append(float(self.dual.plus()))
        record["retain"].append(float(loss_r.detach()))
        return objective(self, loss_u, loss_r)

    update = Dual.update

    def spy_update(self, delta):
        record["delta"].append(float(delta))
        update(self, delta)

    monkeypatch.setattr(ImplicitSurgery, "_objective", spy_objective)
    monkeypatch.setattr(Dual, "update", spy_update)
    return record


def test_eupmu_fast_updates_lambda_before_each_step_from_the_last_two_training_losses(dual_spy):
    model, forget, retain = _tiny()
    beta, eps = 0.5, -0.06
    ul.unlearn(model, forget=forget, retain=retain, method="eupmu-fast", epochs=2, batch_size=24,
               lambda_optimizer="sgd", lambda_weight_decay=0.0, lambda_lr=beta, epsilon=eps)
    used, losses = dual_spy["used"], dual_spy["retain"]
    assert len(used) > 3
    for t in range(1, len(used)):
        delta = math.log(losses[t] + 1e-8) - math.log(losses[t - 1] + 1e-8)
        assert used[t] == pytest.approx(max(0.0, used[t - 1] + beta * (delta - eps)), rel=1e-5, abs=1e-6)


def test_lr_normalised_divides_the_retain_loss_change_by_the_step_lr(dual_spy):
    model, forget, retain = _tiny()
    kw = {"method": "eupmu", "epochs": 1, "batch_size": 24, "lr": 0.02}
    ul.unlearn(model, forget=forget, retain=retain, **kw)
    raw = list(dual_spy["delta"])
    dual_spy["delta"].clear()
    ul.unlearn(model, forget=forget, retain=retain, lr_normalised=True, **kw)
    assert dual_spy["delta"][0] == pytest.approx(raw[0] / 0.02, rel=1e-5)


def test_the_lr_floor_skips_the_dual_update_in_normalised_mode(dual_spy):
    model, forget, retain = _tiny()
    kw = {"method": "eupmu-normalised", "epochs": 1, "batch_size": 24, "epsilon": 10.0, "lambda_lr": 0.01}
    ul.unlearn(model, forget=forget, retain=retain, lr=1e-9, **kw)
    assert dual_spy["delta"] == []
    ul.unlearn(model, forget=forget, retain=retain, lr=1e-9, lr_floor=0.0, **kw)
    assert dual_spy["delta"]


def test_convex_weighting_divides_the_objective_by_one_plus_lambda():
    rule = ImplicitSurgery(weighting="convex", objective_transform="identity")
    rule.dual = Dual(0.0, 1.0, 0.0, 0.5, None, "sgd", "hard")
    u, r = torch.tensor(2.0), torch.tensor(4.0)
    assert float(rule._objective(u, r)) == pytest.approx((2.0 + 0.5 * 4.0) / 1.5)
    additive = ImplicitSurgery(weighting="additive", objective_transform="identity")
    additive.dual = rule.dual
    assert float(additive._objective(u, r)) == pytest.approx(2.0 + 0.5 * 4.0)


def test_eval_signal_mode_measures_the_retain_loss_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    _, forget, retain = _tiny()
    seen: list[tuple[bool, bool]] = []
    model[1].register_forward_pre_hook(lambda m, a: seen.append((m.training, torch.is_grad_enabled())))
    ul.unlearn(model, forget=forget, retain=retain, method="eupmu", signal_mode="eval", epochs=1, batch_size=24,
               inplace=True)
    no_grad = [training for training, grad in seen if not grad]
    assert no_grad and not any(no_grad)  # every no-grad signal forward ran in eval mode
    assert any(training for training, grad in seen if grad)  # the training forwards did not


# ------------------------------------------------------------------------------------------------ DualOptim
@dataclass
class _LrSpy:
    lrs: dict[str, list[float]] = field(default_factory=lambda: {"forget": [], "retain": []})


def test_the_forget_optimizer_follows_its_own_scheduler(monkeypatch, trained_mlp, digits_task):
    spy = _LrSpy()
    apply = Stepper.apply

    def spy_apply(self, phase, loss_value):
        spy.lrs.setdefault(phase, []).append(self.lr(phase))
        apply(self, phase, loss_value)

    monkeypatch.setattr(Stepper, "apply", spy_apply)
    ul.unlearn(trained_mlp, digits_task, method="scrub+dualoptim", epochs=3, schedule="cosine",
               forget_schedule="constant", forget_lr=1e-3)
    assert set(spy.lrs["forget"]) == {1e-3}
    retain = spy.lrs["retain"]
    assert retain[0] > retain[-1] and len(set(retain)) > 1


@pytest.mark.parametrize("method", ["rl+dualoptim", "salun+dualoptim", "scrub+dualoptim", "sfron+dualoptim",
                                    "dualoptim/salun", "dualoptim/rl"])
def test_dual_presets_build_the_optimizers_they_are_given(method, monkeypatch, trained_mlp, digits_task):
    built: list[dict] = []
    build = Optimization.build

    def spy_build(self, model):
        out = build(self, model)
        built.append(out)
        return out

    monkeypatch.setattr(Optimization, "build", spy_build)
    budget = {"iterations": 30} if method.startswith("sfron") else {"epochs": 1}
    ul.unlearn(trained_mlp, digits_task, method=method, optimizers="adamw+adamw", lr=1e-4, **budget)
    assert isinstance(built[-1]["retain"], torch.optim.AdamW) and isinstance(built[-1]["forget"], torch.optim.AdamW)
    assert built[-1]["retain"] is not built[-1]["forget"]


# ------------------------------------------------------------------------------------------------ masks
def _frozen_entries(modifiers):
    mask = next(m for m in modifiers if isinstance(m, FisherMask))
    return [(p, ~m) for p, m in mask.exact.items]


def test_sfron_freezes_the_fisher_masked_entries_on_forget_steps_only(monkeypatch, trained_mlp, digits_task):
    moved = {"forget": 0, "retain": 0}
    apply = Stepper.apply

    def spy_apply(self, phase, loss_value):
        frozen = _frozen_entries(self.modifiers)
        before = [p.detach()[m].clone() for p, m in frozen]
        apply(self, phase, loss_value)
        moved[phase] += sum(int((p.detach()[m] != b).sum()) for (p, m), b in zip(frozen, before))

    monkeypatch.setattr(Stepper, "apply", spy_apply)
    ul.unlearn(trained_mlp, digits_task, method="sfron", iterations=20)
    assert moved["forget"] == 0  # masked-out entries never move on a forget step
    assert moved["retain"] > 0  # ... but retain steps train them (scope "forget")


def test_ungrad_masks_both_gradients_before_the_surgery(monkeypatch, trained_mlp, digits_task):
    at_apply: list[float] = []
    apply = Stepper.apply

    def spy_apply(self, phase, loss_value):
        mask = self.mask
        at_apply.append(sum(float(p.grad[~m].abs().sum()) for p, m in mask.items if p.grad is not None))
        apply(self, phase, loss_value)

    monkeypatch.setattr(Stepper, "apply", spy_apply)
    ul.unlearn(trained_mlp, digits_task, method="salun+ungrad", epochs=1)
    assert at_apply and max(at_apply) == 0.0  # the surgery direction already lives in the mask
    at_apply.clear()
    ul.unlearn(trained_mlp, digits_task, method="salun+ungrad", epochs=1, mask_before_surgery=False)
    assert max(at_apply) > 0.0  # without it, the stepper's mask has to cut the direction


# ------------------------------------------------------------------------------------------------ relabelling
@pytest.mark.parametrize("method", ["eupmu", "salun+eupmu", "eupmu-fast", "ungrad"])
def test_surgery_presets_train_d_f_on_labels_drawn_once_per_epoch(method, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 8, 8, generator=g)
    y = torch.randint(1, 10, (300,), generator=g)
    forget = (x[:60], torch.zeros(60, dtype=torch.long))  # every true forget label is 0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    seen: list[torch.Tensor] = []
    draws = {"n": 0}
    call, start = RandomLabelCE.__call__, RandomLabelCE.start_epoch

    def spy_call(self, model, batch, ctx):
        seen.append(batch["y"].clone())
        return call(self, model, batch, ctx)

    def spy_start(self, source, ctx):
        draws["n"] += self.per == "epoch"
        return start(self, source, ctx)

    monkeypatch.setattr(RandomLabelCE, "__call__", spy_call)
    monkeypatch.setattr(RandomLabelCE, "start_epoch", spy_start)
    ul.unlearn(model, forget=forget, retain=(x[60:], y[60:]), method=method, epochs=3)
    labels = torch.cat(seen)
    assert float((labels == 0).float().mean()) < 0.3  # not the true labels (≈ 1/10 by chance)
    assert draws["n"] == 3  # once per epoch


@pytest.mark.parametrize("weight", [1.0, 1, 0.5, 3.0])
def test_scaled_losses_have_the_value_and_gradient_of_the_product(weight):
    w = torch.tensor([0.3, -1.7, 2.2], requires_grad=True)
    loss = (w.exp() * torch.tensor([1.0, 2.0, 3.0])).sum()
    (grad_product,) = torch.autograd.grad(weight * loss, w, retain_graph=True)
    got = scaled(weight, loss)
    (grad_weighted,) = torch.autograd.grad(got, w)
    assert torch.equal(got, weight * loss)  # bit-identical, also when the multiplication is skipped
    assert torch.equal(grad_weighted, grad_product)
