"""Exact masking (docs/methods.md, "Masks"): frozen weights and their optimizer state never move, whatever the
optimizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unlearnlab as ul
from unlearnlab.methods import RunContext
from unlearnlab.methods.masks import ExactMask, saliency_mask
from unlearnlab.methods.modifiers import GivenMask, GradientClip
from unlearnlab.methods.rules import Stepper

STATE_KEYS = ("momentum_buffer", "exp_avg", "exp_avg_sq")

OPTIMIZERS = {
    "sgd-momentum-wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False),
    "sgd-momentum-wd-foreach": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=True),
    "sgd-momentum-wd-fused": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, fused=True),
    "adamw-wd0.1": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, foreach=False),
    "adamw-wd0.1-foreach": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, foreach=True),
    "adamw-wd0.1-fused": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, fused=True),
    "adam-coupled-wd": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=5e-4),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def _batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + i)
    return torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)


def _loss(model: nn.Module, i: int) -> torch.Tensor:
    x, y = _batch(i)
    return F.cross_entropy(model(x), y)


def _random_mask(model: nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) < 0.5 for n, p in model.named_parameters()}


def _state(opt: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in opt.state.get(p, {}).items() if k in STATE_KEYS}


def _stepper(model, opt, mask: dict | None, scope: str = "both", clip: float | None = None) -> Stepper:
    phases = {"forget": opt, "retain": opt, "joint": opt}
    lrs = {k: opt.param_groups[0]["lr"] for k in phases}
    modifiers = []
    if mask is not None:
        given = GivenMask(mask, scope)
        given.attach(model, mask)
        modifiers.append(given)
    if clip is not None:
        modifiers.append(GradientClip(clip))
    return Stepper(model, phases, lrs, RunContext(seed=1), modifiers)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("warm", [False, True], ids=["fresh-state", "state-accumulated-before"])
def test_frozen_weights_and_optimizer_state_stay_bit_identical(name, warm):
    model = _model()
    opt = OPTIMIZERS[name](model.parameters())
    if warm:  # unmasked steps first: momentum / moments exist and are non-zero at frozen entries
        for i in range(2):
            opt.zero_grad()
            _loss(model, i).backward()
            opt.step()
    masks = _random_mask(model)
    named = dict(model.named_parameters())
    theta0 = {n: p.detach().clone() for n, p in named.items()}
    state0 = {n: _state(opt, p) for n, p in named.items()}
    stepper = _stepper(model, opt, masks, "both")
    for i in range(5):
        stepper.step(_loss(model, 10 + i), "joint")

    for n, p in named.items():
        m = masks[n]
        assert torch.equal(p.detach()[~m], theta0[n][~m]), f"{name}: frozen entries of {n} moved"
        assert (p.detach()[m] != theta0[n][m]).all(), f"{name}: some trainable entries of {n} did not move"
        state = _state(opt, p)
        assert state, f"{name}: optimizer kept no state for {n}"
        for key, value in state.items():
            before = state0[n].get(key, torch.zeros_like(value))
            assert torch.equal(value[~m], before[~m]), f"{name}: frozen {key} of {n} changed"
            assert (value[m] != before[m]).any(), f"{name}: trainable {key} of {n} never changed"


def test_without_mask_weight_decay_and_momentum_move_zero_gradient_entries():
    """The leak the exact mask prevents: zeroing gradients alone still moves weights under decay/momentum."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    masks = _random_mask(model)
    named = dict(model.named_parameters())
    theta0 = {n: p.detach().clone() for n, p in named.items()}
    for i in range(5):
        opt.zero_grad()
        _loss(model, i).backward()
        for n, p in named.items():
            p.grad[~masks[n]] = 0.0
        opt.step()
    assert any((p.detach()[~masks[n]] != theta0[n][~masks[n]]).any() for n, p in named.items())


def test_gradients_are_masked_before_clipping():
    """Clip norm counts only effective (trainable) coordinates: one plain SGD step moves θ by exactly the clip."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    clip = 1e-3
    theta0 = [p.detach().clone() for p in model.parameters()]
    stepper = _stepper(model, opt, _random_mask(model), "both", clip=clip)
    stepper.step(_loss(model, 0), "joint")
    moved = torch.cat([(p.detach() - t).flatten() for p, t in zip(model.parameters(), theta0)])
    assert moved.norm().item() == pytest.approx(clip, rel=1e-4)


def test_forget_scope_masks_forget_steps_only():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    masks = _random_mask(model)
    named = dict(model.named_parameters())
    stepper = _stepper(model, opt, masks, "forget")

    before_retain = {n: p.detach().clone() for n, p in named.items()}
    stepper.step(_loss(model, 0), "retain")
    assert all((p.detach()[~masks[n]] != before_retain[n][~masks[n]]).all() for n, p in named.items())

    for i in range(3):
        before = {n: p.detach().clone() for n, p in named.items()}
        state = {n: _state(opt, p) for n, p in named.items()}
        stepper.step(_loss(model, 1 + i), "forget")
        for n, p in named.items():
            m = masks[n]
            assert torch.equal(p.detach()[~m], before[n][~m])  # pinned to θ just before the forget step
            assert (p.detach()[m] != before[n][m]).all()
            buf = _state(opt, p)["momentum_buffer"]
            assert torch.equal(buf[~m], state[n]["momentum_buffer"][~m])
        stepper.step(_loss(model, 20 + i), "retain")  # retain steps in between move everything again


def test_both_scope_pins_frozen_entries_through_retain_steps_too():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    masks = _random_mask(model)
    named = dict(model.named_parameters())
    theta0 = {n: p.detach().clone() for n, p in named.items()}
    stepper = _stepper(model, opt, masks, "both")
    for i, phase in enumerate(["forget", "retain", "retain", "forget", "retain"]):
        stepper.step(_loss(model, i), phase)
    assert all(torch.equal(p.detach()[~masks[n]], theta0[n][~masks[n]]) for n, p in named.items())


def test_mask_naming_unknown_parameters_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="does not have"):
        ExactMask(model, {"nope.weight": torch.ones(2, dtype=torch.bool)})


def test_salun_run_leaves_exactly_the_masked_out_entries_unchanged(trained_mlp, digits_task):
    fraction = 0.5
    mask = saliency_mask(trained_mlp, digits_task.forget, fraction)
    res = ul.unlearn(trained_mlp, digits_task, method="salun", seed=1, epochs=2, mask_fraction=fraction)
    total = sum(p.numel() for p in trained_mlp.parameters())
    unchanged = 0
    for (name, p0), p1 in zip(trained_mlp.named_parameters(), res.model.parameters()):
        same = p1.detach() == p0.detach()
        assert torch.equal(same, ~mask[name]), f"{name}: unchanged entries differ from the masked-out entries"
        unchanged += int(same.sum())
    assert unchanged == total - math.floor(fraction * total)
