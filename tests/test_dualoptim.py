"""DualOptim (docs/methods.md, "DualOptim: two optimizers over the same parameters"): decoupled optimizer
states, the shared ablation, exact masks in both optimizers, interleaving schedules, Lion, and the ``+dualoptim``
presets on digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unlearnlab as ul
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext, UnlearnData
from unlearnlab.methods.modifiers import GivenMask
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.rules import Alternate, Job, Stepper
from unlearnlab.methods.rules.alternate import Interleave
from unlearnlab.objectives import FamilyLoss, NegativeLoss
from unlearnlab.optim import Lion

#: the classifier DualOptim presets (the generation family's ddpm/*+dualoptim are tested with it)
DUAL_PRESETS = [m for m in ul.list_methods("*+dualoptim*") + ul.list_methods("dualoptim/*")
                if "classification" in ul.get_method(m).families]


def tiny(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model, (torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))


def stepper(model: nn.Module, optimizers: str) -> Stepper:
    opts = Optimization(epochs=1, lr=0.01, forget_lr=1e-3, optimizers=optimizers, weight_decay=5e-4,
                        forget_weight_decay=0.05).build(model)
    return Stepper(model, opts, dict.fromkeys(opts, 0.01), RunContext(seed=1))


def loss(model: nn.Module, batch, sign: float = 1.0) -> torch.Tensor:
    return sign * F.cross_entropy(model(batch[0]), batch[1])


def state(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v.clone() for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]


def equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("optimizers", ["adamw+sgd", "adamw+adamw", "lion+sgd", "lion+lion"])
def test_each_optimizer_state_is_untouched_by_the_other_phase(optimizers):
    model, batch = tiny()
    s = stepper(model, optimizers)
    f, r = s.optimizers["forget"], s.optimizers["retain"]
    assert f is not r
    s.step(loss(model, batch, -1), "forget")
    s.step(loss(model, batch), "retain")
    for _ in range(3):
        before_f, before_r = state(f), state(r)
        s.step(loss(model, batch), "retain")
        assert equal(state(f), before_f)
        assert not equal(state(r), before_r)
        before_f, before_r = state(f), state(r)
        s.step(loss(model, batch, -1), "forget")
        assert equal(state(r), before_r)
        assert not equal(state(f), before_f)
    if "adamw" in optimizers.split("+")[0]:
        assert all(st["step"].item() == 4 for st in f.state.values())  # bias correction counts forget steps only
    assert s.steps == {"forget": 4, "retain": 4}


def test_shared_ablation_has_one_state_fed_by_both_phases():
    model, batch = tiny()
    s = stepper(model, "shared-adamw")
    assert s.optimizers["forget"] is s.optimizers["retain"]
    opt = s.optimizers["forget"]
    s.step(loss(model, batch, -1), "forget")
    before = state(opt)
    s.step(loss(model, batch), "retain")
    assert not equal(state(opt), before)
    assert all(st["step"].item() == 2 for st in opt.state.values())
    assert opt.param_groups[0]["lr"] == 0.01


def test_dual_forget_step_equals_a_standalone_adamw_step():
    model, batch = tiny()
    clone, _ = tiny()
    s = stepper(model, "adamw+sgd")
    ref = torch.optim.AdamW(clone.parameters(), lr=0.01, weight_decay=0.05)
    s.step(loss(model, batch, -1), "forget")
    loss(clone, batch, -1).backward()
    ref.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters()))


@pytest.mark.parametrize("optimizers", ["sgd+sgd", "adamw+sgd", "adamw+adamw", "lion+lion", "shared-adamw",
                                        "shared-lion"])
def test_masked_entries_and_their_state_stay_exact_in_both_optimizers(optimizers):
    model, batch = tiny()
    warm = stepper(model, optimizers)  # non-zero state everywhere before the mask exists
    for phase, sign in (("forget", -1), ("retain", 1)):
        warm.step(loss(model, batch, sign), phase)
    g = torch.Generator().manual_seed(1)
    mask = {n: torch.rand(p.shape, generator=g) < 0.5 for n, p in model.named_parameters()}
    given = GivenMask(mask, "both")
    given.attach(model, mask)
    s = Stepper(model, warm.optimizers, warm.base_lr, warm.ctx, [given])
    named = dict(model.named_parameters())
    frozen0 = {n: named[n].detach().clone() for n in mask}
    state0 = {id(o): {n: {k: v.clone() for k, v in o.state[named[n]].items() if v.shape == named[n].shape}
                      for n in mask} for o in s.optimizers.values()}
    for i in range(6):
        s.step(loss(model, batch, -1 if i % 3 == 0 else 1), "forget" if i % 3 == 0 else "retain")
    for n, m in mask.items():
        assert torch.equal(named[n][~m], frozen0[n][~m])
        assert not torch.equal(named[n][m], frozen0[n][m])
        for o in s.optimizers.values():
            for key, before in state0[id(o)][n].items():
                assert torch.equal(o.state[named[n]][key][~m], before[~m]), (optimizers, n, key)


class Recorder(Stepper):
    def __init__(self, model, ctx):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        super().__init__(model, {"forget": opt, "retain": opt}, {"forget": 0.0, "retain": 0.0}, ctx)
        self.phases: list[str] = []

    def step(self, loss, phase):
        self.phases.append(phase)
        super().step(loss, phase)


def run_rule(rule, epochs: int = 1) -> list[str]:
    model, (x, y) = tiny()
    ctx = RunContext(seed=1)
    data = UnlearnData(ul.TensorData.of(x[:3], y[:3]), ul.TensorData.of(x, y), info={"num_classes": 3})
    rec = Recorder(model, ctx)
    rule.run(Job(model, data, ctx, rec, NegativeLoss(), FamilyLoss(), rule, epochs, 2, 2))
    return rec.phases


def test_interleave_k_to_1_runs_the_expected_phase_sequence():
    assert run_rule(Interleave(1, 5, iterations=12)) == (["forget"] + ["retain"] * 5) * 2 + ["forget"] + ["retain"] * 2
    sfron = run_rule(Interleave(1, 5, iterations=150))
    assert (sfron.count("forget"), sfron.count("retain")) == (30, 150)
    assert run_rule(Interleave(2, 3, iterations=6)) == (["forget"] * 2 + ["retain"] * 3) * 2
    assert run_rule(Interleave(1, 1), epochs=2) == ["forget", "retain"] * 8  # 2 epochs × ⌈8/2⌉ retain steps


def test_epoch_alternation_runs_forget_then_retain_passes():
    assert run_rule(Alternate(), epochs=2) == (["forget"] * 2 + ["retain"] * 4) * 2


def test_lion_update_equals_its_formula():
    p = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    m = torch.zeros(4)
    theta = p.detach().clone()
    for g in (torch.tensor([0.3, -0.2, 0.0, 1.0]), torch.tensor([-1.0, -0.1, 0.4, -0.05])):
        p.grad = g.clone()
        opt.step()
        theta = theta * (1 - 0.1 * 0.5)
        theta = theta - 0.1 * torch.sign(0.9 * m + 0.1 * g)
        m = 0.99 * m + 0.01 * g
        assert torch.allclose(p.detach(), theta, atol=1e-7, rtol=0)
        assert torch.allclose(opt.state[p]["exp_avg"], m, atol=1e-7, rtol=0)


def test_reference_profile_needs_an_explicit_forget_lr(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match="forget_lr"):
        ul.unlearn(trained_mlp, digits_task, method="rl+dualoptim", profile="reference", epochs=1)


def test_unknown_optimizer_pair_is_refused(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match="adamw\\+sgd"):
        ul.unlearn(trained_mlp, digits_task, method="rl+dualoptim", optimizers="adam+rmsprop", epochs=1)


@pytest.mark.parametrize("method", [m for m in DUAL_PRESETS if not m.endswith("-shared")])
def test_boosted_forget_lr_lowers_forget_accuracy(method, trained_mlp, digits_task):
    acc0 = (trained_mlp(digits_task.forget.x).argmax(1) == digits_task.forget.y).float().mean().item()
    res = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, epochs=2, forget_lr=3e-2)
    acc1 = (res.model(digits_task.forget.x).argmax(1) == digits_task.forget.y).float().mean().item()
    assert acc1 <= acc0 - 0.03, f"{method}: forget accuracy {acc0:.3f} -> {acc1:.3f}"
    steps = res.stats["steps"]
    assert steps["forget"] > 0
    assert (steps.get("retain", 0) == 0) == (method.startswith("ga+") or method == "dualoptim/ga")


def test_lion_pair_runs_on_a_preset_and_steps_lion(trained_mlp, digits_task, monkeypatch):
    calls = {"n": 0}
    original_step = Lion.step

    def counting_step(self, closure=None):
        calls["n"] += 1
        return original_step(self, closure)

    monkeypatch.setattr(Lion, "step", counting_step)
    res = ul.unlearn(trained_mlp, digits_task, method="salun+dualoptim", seed=1, epochs=1, optimizers="lion+lion",
                     forget_lr=3e-3, lr=1e-3)
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert calls["n"] == sum(res.stats["steps"].values()) > 0  # every step went through Lion


@pytest.mark.parametrize(("optimizers", "missing"), [("lion+sgd", "forget_lr"), ("adamw+lion", "lr"),
                                                     ("lion+lion", "forget_lr")])
def test_switching_an_optimizer_kind_without_its_lr_is_refused(trained_mlp, digits_task, optimizers, missing):
    with pytest.raises(UnlearnlabError, match=f"do not transfer.*Pass {missing}"):
        ul.unlearn(trained_mlp, digits_task, method="salun+dualoptim", epochs=1, optimizers=optimizers)


# ---------------------------------------------------------------------------------------------- shared-hybrid ablation


def test_shared_hybrid_pair_shares_one_state_and_applies_adamw_then_ema_sgd_updates():
    from unlearnlab.optim import shared_hybrid

    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5, dtype=torch.float64))
    forget, retain = shared_hybrid([p], forget_lr=0.1, retain_lr=0.01, forget_weight_decay=0.05,
                                   retain_weight_decay=5e-4)
    assert forget.state is retain.state
    theta, m, v = p.detach().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    g1, g2, g3 = (torch.randn(5, dtype=torch.float64) for _ in range(3))
    # forget step 1 (AdamW, t = 1)
    p.grad = g1.clone()
    forget.step()
    m, v = 0.1 * g1, 0.001 * g1 * g1
    theta = theta * (1 - 0.1 * 0.05) - 0.1 * (m / 0.1) / ((v / 0.001).sqrt() + 1e-8)
    assert torch.allclose(p.detach(), theta, atol=1e-12, rtol=0)
    # retain step (EMA momentum on the same m, coupled decay), t unchanged
    p.grad = g2.clone()
    retain.step()
    m = 0.9 * m + 0.1 * (g2 + 5e-4 * theta)
    theta = theta - 0.01 * m
    assert torch.allclose(p.detach(), theta, atol=1e-12, rtol=0)
    assert torch.allclose(forget.state[p]["exp_avg"], m, atol=1e-12, rtol=0) and forget.state[p]["step"] == 1
    # forget step 2 (t = 2) reads the m the retain step left
    p.grad = g3.clone()
    forget.step()
    m = 0.9 * m + 0.1 * g3
    v = 0.999 * v + 0.001 * g3 * g3
    theta = theta * (1 - 0.1 * 0.05) - 0.1 * (m / (1 - 0.9**2)) / ((v / (1 - 0.999**2)).sqrt() + 1e-8)
    assert torch.allclose(p.detach(), theta, atol=1e-12, rtol=0)


def test_shared_ablation_differs_from_dualoptim_only_in_the_shared_state():
    dual, shared = ul.get_method("dualoptim/salun").defaults, ul.get_method("dualoptim/salun-shared").defaults
    assert {k for k in dual if dual[k] != shared[k]} == {"optimizers"}
    assert shared["optimizers"] == "shared-hybrid"
