"""IU, Boundary Shrink/Expanding and SFR-on, with their DualOptim variants (docs/methods.md, "IU, Boundary Shrink /
Expanding, SFR-on")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unlearnlab as ul
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext, UnlearnData
from unlearnlab.methods.base import frozen_copy
from unlearnlab.methods.boundary import BoundaryExpand, NeighbourLabelCE, ShadowCE, expand_head
from unlearnlab.methods.influence import InfluenceUnlearning, mean_gradient, woodfisher_surrogate
from unlearnlab.methods.masks import ratio_mask, squared_batch_gradients
from unlearnlab.objectives import WeightedAscent, adaptive_weights

# ------------------------------------------------------------------------------------------------ IU


def numpy_recursion(v: np.ndarray, grads: np.ndarray, n_const: int) -> np.ndarray:
    """`iu` step 3 (docs/methods.md, "`iu` — one-shot WoodFisher surrogate") in float64:
    k ← v, o ← g_1; τ = ⟨o, g_i⟩; k −= ⟨k, g_i⟩/(N+τ)·o; o ← o·N/(N+τ)."""
    k, o = v.copy(), grads[0].copy()
    for i in range(1, len(grads)):
        g = grads[i]
        tau = o @ g
        k = k - (k @ g) / (n_const + tau) * o
        o = o * (n_const / (n_const + tau))
        if i > n_const:
            break
    return k


@pytest.mark.parametrize(("n_const", "count"), [(5, 20), (1000, 40), (3, 3)])
def test_iu_recursion_matches_numpy_float64(n_const, count):
    rng = np.random.default_rng(0)
    v, grads = rng.normal(size=17), rng.normal(size=(count, 17)) * 3
    got = woodfisher_surrogate(torch.tensor(v), (torch.tensor(g) for g in grads), n_const).numpy()
    np.testing.assert_allclose(got, numpy_recursion(v, grads, n_const), rtol=1e-10, atol=1e-12)
    assert not np.allclose(got, v)  # the recursion did something


def test_iu_recursion_reads_exactly_n_plus_two_samples():
    seen = []

    def grads():
        for i in range(50):
            seen.append(i)
            yield torch.ones(3, dtype=torch.float64) * (i + 1)

    woodfisher_surrogate(torch.ones(3, dtype=torch.float64), grads(), n_const=7)
    assert len(seen) == 7 + 2


def test_iu_moves_parameters_along_alpha_k_and_leaves_mode_and_buffers(trained_mlp, digits_task):
    model = frozen_copy(trained_mlp)
    for p in model.parameters():
        p.requires_grad_(True)
    data = UnlearnData(digits_task.forget, digits_task.retain, info={"num_classes": digits_task.num_classes})
    params = list(model.parameters())
    g_f = mean_gradient(model, data.forget, params, 64).double()
    g_r = mean_gradient(model, data.retain, params, 64).double()
    n_f, n_r = len(data.forget), len(data.retain)
    v = n_f / (n_f + n_r) * (g_f - g_r)
    per = []
    for j in range(min(n_r, 12)):
        x, y = data.retain.x[j: j + 1], data.retain.y[j: j + 1]
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
        per.append(torch.cat([g.flatten() for g in grads]).double().numpy())
    k = numpy_recursion(v.numpy(), np.stack(per), 10)
    before = torch.cat([p.detach().flatten() for p in params]).double()
    model.train()
    InfluenceUnlearning(alpha=2.0, n_const=10).run(model, data, RunContext(seed=1))
    assert model.training  # mode restored
    after = torch.cat([p.detach().flatten() for p in params]).double()
    np.testing.assert_allclose((after - before).numpy(), 2.0 * k, rtol=1e-3, atol=1e-6)


def test_iu_without_alpha_in_reference_profile_is_refused(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match="alpha"):
        ul.unlearn(trained_mlp, digits_task, method="iu", profile="reference")


def test_iu_with_mask_leaves_frozen_entries_bit_identical(trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, digits_task, method="iu", mask_fraction=0.5, n_const=20)
    changed = sum(int((a != b).sum()) for a, b in zip(res.model.parameters(), trained_mlp.parameters()))
    total = sum(p.numel() for p in trained_mlp.parameters())
    assert 0 < changed <= total // 2


# ------------------------------------------------------------------------------------------------ Boundary


def test_boundary_shrink_fgsm_is_bounded_in_pixel_space_and_labels_come_from_the_frozen_model(trained_mlp,
                                                                                               digits_task):
    b = 0.1
    objective = NeighbourLabelCE(bound=b)
    objective.teacher = frozen_copy(trained_mlp)
    x, y = digits_task.forget.x[:40], digits_task.forget.y[:40]
    x_adv, y_nb = objective.neighbour(x, y)
    # 8-bit rounding adds at most half a level to the bound when x is not on the 1/255 grid (digits: k/16)
    assert (x_adv - x).abs().max() <= b + 0.5 / 255 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.allclose(torch.round(x_adv * 255), x_adv * 255, atol=1e-4)
    on_grid = torch.round(x * 255) / 255  # inputs already 8-bit: the rounded step stays within b + ½ level
    adv2, _ = objective.neighbour(on_grid, y)
    assert (adv2 - on_grid).abs().max() <= b + 0.5 / 255 + 1e-6
    assert torch.equal(y_nb, trained_mlp(x_adv).argmax(1))
    # the student may drift; labels and perturbation still come from the frozen copy
    student = frozen_copy(trained_mlp)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(-1)
    loss = objective(student, {'x': x, 'y': y}, RunContext(seed=1))
    assert torch.allclose(loss, F.cross_entropy(student(x), y_nb))
    assert objective.neighbour(x, y)[1].tolist() == y_nb.tolist()


class WidthSpy(ShadowCE):
    def __init__(self):
        self.widths: list[int] = []

    def __call__(self, model, batch, ctx):
        self.widths.append(model(batch["x"][:1]).shape[1])
        return super().__call__(model, batch, ctx)


@pytest.mark.parametrize("prune", [True, False])
def test_boundary_expand_trains_with_c_plus_one_outputs_then_prunes(trained_mlp, digits_task, prune):
    spy = WidthSpy()
    unl = ul.get_method("boundary-expand").build(
        ul.get_method("boundary-expand").resolve({"epochs": 1, "prune_shadow": prune}))
    assert isinstance(unl, BoundaryExpand)
    unl.inner.forget = spy
    model = frozen_copy(trained_mlp)
    for p in model.parameters():
        p.requires_grad_(True)
    stats = unl.run(model, UnlearnData(digits_task.forget, digits_task.retain, info={"num_classes": 10}),
                    RunContext(seed=1))
    assert spy.widths and set(spy.widths) == {11}
    assert model(digits_task.forget.x[:2]).shape[1] == (10 if prune else 11)
    assert stats["prune_shadow"] is prune


def test_boundary_expand_copies_rows_and_seeds_the_shadow_row(trained_mlp):
    a, b, c = (frozen_copy(trained_mlp) for _ in range(3))
    expand_head(a, 1), expand_head(b, 1), expand_head(c, 2)
    head_a, head_b, head_c = a[-1][-1], b[-1][-1], c[-1][-1]
    old = trained_mlp[-1][-1]
    assert torch.equal(head_a.weight[:10], old.weight) and torch.equal(head_a.bias[:10], old.bias)
    assert torch.equal(head_a.weight[10], head_b.weight[10])
    assert not torch.equal(head_a.weight[10], head_c.weight[10])


def test_boundary_expand_builds_its_optimizer_after_expansion(trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, digits_task, method="boundary-expand", epochs=1, prune_shadow=False)
    old = trained_mlp[-1][-1]
    head = res.model[-1][-1]
    assert head.out_features == 11
    assert not torch.equal(head.weight[:10], old.weight)  # the new layer's parameters were trained


# ------------------------------------------------------------------------------------------------ SFR-on


def test_sfron_weights_sum_to_one_and_emphasise_low_loss_samples():
    losses = torch.tensor([0.01, 0.5, 2.0, 8.0], dtype=torch.float64, requires_grad=True)
    w = adaptive_weights(losses, 0.5)
    assert not w.requires_grad
    assert w.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(w[:-1] > w[1:])
    expected = losses.detach() ** -0.5 / (losses.detach() ** -0.5).sum()
    assert torch.allclose(w, expected, rtol=1e-9)


def test_sfron_forget_loss_and_alpha_schedule():
    model = nn.Sequential(nn.Linear(3, 4))
    x, y = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 0, 1])
    obj = WeightedAscent(alpha0=25.0, lam=0.5, total=100, every=5)
    l0 = obj(model, {'x': x, 'y': y}, RunContext(seed=1))
    ce = F.cross_entropy(model(x), y, reduction="none").detach()
    assert torch.allclose(l0, -25.0 * (adaptive_weights(ce, 0.5) * ce).sum())
    assert obj.alpha_t(0) == 25.0 and obj.alpha_t(50) == pytest.approx(12.5) and obj.alpha_t(100) == pytest.approx(0)
    l1 = obj(model, {'x': x, 'y': y}, RunContext(seed=1))  # second call: t = 5
    assert torch.allclose(l1, l0 * (0.5 * (1 + np.cos(np.pi * 5 / 100))))


def test_sfron_mask_equals_the_fisher_ratio_formula_on_fixed_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    xf, yf = torch.randn(10, 4), torch.randint(0, 3, (10,))
    xr, yr = torch.randn(25, 4), torch.randint(0, 3, (25,))
    forget, retain = ul.TensorData.of(xf, yf), ul.TensorData.of(xr, yr)
    batch = 4
    ff, fr = squared_batch_gradients(model, forget, batch), squared_batch_gradients(model, retain, batch)

    def expected(x, y):
        sq = [torch.zeros_like(p) for p in model.parameters()]
        starts = range(0, len(y), batch)
        for s in starts:
            gs = torch.autograd.grad(F.cross_entropy(model(x[s:s + batch]), y[s:s + batch]), list(model.parameters()))
            sq = [a + g * g for a, g in zip(sq, gs)]
        return [a / len(starts) for a in sq]

    ef, er = expected(xf, yf), expected(xr, yr)
    for (name, _), a, b in zip(model.named_parameters(), ef, er):
        assert torch.allclose(ff[name], a, rtol=1e-6, atol=0) and torch.allclose(fr[name], b, rtol=1e-6, atol=0)
    fixed_f = {"w": torch.tensor([1.0, 0.0, 2.0, 3.0]), "b": torch.tensor([0.0])}
    fixed_r = {"w": torch.tensor([1.0, 0.0, 4.0, 1.0]), "b": torch.tensor([1e-3])}
    m = ratio_mask(fixed_f, fixed_r, 1.0)
    assert m["w"].tolist() == [True, True, False, True] and m["b"].tolist() == [False]
    assert ratio_mask(fixed_f, fixed_r, 2.5)["w"].tolist() == [False, False, False, True]  # 0/0 -> ratio 1


@pytest.mark.parametrize("method", ["sfron", "sfron+dualoptim"])
def test_sfron_counts_steps_and_freezes_masked_entries_on_forget_steps_only(method, trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, digits_task, method=method, iterations=10, k=5)
    assert res.stats["steps"]["forget"] == 2 and res.stats["steps"]["retain"] == 10
    assert 0 < res.stats["mask_fraction_trainable"] < 1


def test_sfron_epochs_option_runs_e_retain_passes_and_sets_the_alpha_horizon(trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, digits_task, method="sfron", epochs=1)
    per_epoch = -(-len(digits_task.retain) // 64)
    assert res.stats["steps"] == {"forget": -(-per_epoch // 5), "retain": per_epoch, "joint": 0}
