"""MinNorm-OG (docs/methods.md, "MinNorm-OG and the paper's own baselines (`minnorm-og`, `mnog/…`)"): exact
constructions, projection invariants, Jacobian, quota guard, schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.counting import Counters, CountingHooks
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext, UnlearnData
from unlearnlab.methods.minnorm import (
    active_neurons,
    deep_linear_update,
    linear_min_norm,
    output_jacobian,
    project_params,
    relu,
    shrink_toward_span,
    sparsify_two_layer,
    subsample,
)
from unlearnlab.methods.minnorm_objectives import PaperLoss


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ------------------------------------------------------------------------------------------------ exact constructions


def test_e1_linear_projection_is_the_min_norm_interpolator_of_the_retain_data():
    rng = np.random.default_rng(0)
    n, d = 20, 50
    x = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    theta_all = np.linalg.lstsq(x, y, rcond=None)[0]
    null = rng.standard_normal(d)
    null -= x.T @ np.linalg.lstsq(x.T, null, rcond=None)[0]  # component orthogonal to every x_i
    theta_star = theta_all + 3.0 * null
    assert np.allclose(x @ theta_star, y, atol=1e-10)  # θ* interpolates D
    xr, yr = x[:15], y[:15]
    got = linear_min_norm(theta_star, xr)
    expected = np.linalg.lstsq(xr, yr, rcond=None)[0]  # minimum-norm solution of the underdetermined system
    assert rel(got, expected) < 1e-10
    assert np.linalg.norm(got) < np.linalg.norm(theta_star)


def test_e2_deep_linear_update_projects_the_effective_predictor():
    rng = np.random.default_rng(1)
    d, h1, h2, n_r = 12, 7, 5, 4
    a1, a2, c = rng.standard_normal((h1, d)), rng.standard_normal((h2, h1)), rng.standard_normal(h2)
    xr = rng.standard_normal((n_r, d))
    v = a2.T @ c
    w = a1.T @ v
    delta = deep_linear_update([a1, a2], c, xr)
    w_new = (a1 + delta).T @ v
    assert rel(w_new, linear_min_norm(w, xr)) < 1e-10
    for x in xr:  # ⟨Δ, v·xᵀ⟩ = 0: retain outputs are unchanged to first (here: every) order
        scale = np.linalg.norm(delta) * np.linalg.norm(v) * np.linalg.norm(x)
        assert abs(np.sum(delta * np.outer(v, x))) < 1e-10 * scale


def test_e4_two_layer_keeps_retain_outputs_with_at_most_n_r_active_neurons():
    rng = np.random.default_rng(2)
    d, h, n_r = 5, 64, 10
    a, c = rng.standard_normal((h, d)), rng.standard_normal(h)
    xr = rng.standard_normal((n_r, d))
    a_new, c_new = sparsify_two_layer(a, c, xr)
    before = relu(a @ xr.T).T @ c
    after = relu(a_new @ xr.T).T @ c_new
    assert rel(after, before) < 1e-10
    rank = np.linalg.matrix_rank(relu(a @ xr.T))
    assert np.count_nonzero(c_new) <= rank <= n_r
    assert active_neurons(a_new, c_new) <= n_r
    assert active_neurons(a, c) == h
    # zeroing the rows of A with c'_i = 0 does not change the function anywhere
    x_new = rng.standard_normal((30, d))
    assert np.allclose(relu(a_new @ x_new.T).T @ c_new, relu(a @ x_new.T).T @ c_new, rtol=0, atol=1e-12)
    assert np.all(a_new[c_new == 0] == 0)


# ------------------------------------------------------------------------------------------------ projection


def _mlp_jacobian(m: int = 6, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(m, 4, dtype=torch.float64)
    return model, output_jacobian(model, x)


def test_projection_removes_only_the_orthogonal_component():
    model, a = _mlp_jacobian()
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    pinv_proj = a @ torch.linalg.pinv(a) @ theta
    new, rank = shrink_toward_span(theta, a, 0.3)
    assert rank == a.shape[1]
    assert (a.T @ (new - theta)).norm() <= 1e-10 * (a.norm() * theta.norm())  # Aᵀ(θ_new − θ) = 0
    resid = new - a @ torch.linalg.pinv(a) @ new
    assert (a.T @ resid).norm() <= 1e-10 * a.norm() * new.norm()  # θ − QQᵀθ ⊥ span(Q)
    assert rel(a @ torch.linalg.pinv(a) @ new, pinv_proj) < 1e-10  # P_A θ_new = P_A θ
    assert rel(resid, 0.7 * (theta - pinv_proj)) < 1e-10
    full, _ = shrink_toward_span(theta, a, 1.0)
    assert rel(full, pinv_proj) < 1e-10  # λ = 1 maps θ into span(Q) exactly
    same, _ = shrink_toward_span(theta, a, 0.0)
    assert torch.equal(same, theta)


def test_rank_deficient_jacobian_uses_the_true_span():
    _, a = _mlp_jacobian(4)
    a_dup = torch.cat([a, a[:, :2], 2.0 * a[:, 1:2]], dim=1)
    theta = torch.randn(a.shape[0], dtype=torch.float64)
    new, rank = shrink_toward_span(theta, a_dup, 1.0)
    assert rank == torch.linalg.matrix_rank(a) == 4
    assert rel(new, a_dup @ torch.linalg.pinv(a_dup) @ theta) < 1e-10


def test_project_params_writes_back_through_the_parameters():
    model, a = _mlp_jacobian()
    params = list(model.parameters())
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    project_params(params, a, 1.0)
    got = torch.cat([p.detach().reshape(-1) for p in params])
    assert rel(got, a @ torch.linalg.pinv(a) @ theta) < 1e-10


# ------------------------------------------------------------------------------------------------ Jacobian


class BNNet(nn.Module):
    """Conv → BN → ReLU → mean → Linear → BN1d → two heads (10-way, 3-way)."""

    def __init__(self, two_heads: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Flatten(2), nn.Linear(64, 6), nn.Flatten(), nn.BatchNorm1d(24), nn.ReLU())
        self.head = nn.Linear(24, 10)
        self.color = nn.Linear(24, 3) if two_heads else None

    def forward(self, x):
        z = self.body(x)
        return (self.head(z), self.color(z)) if self.color is not None else self.head(z)


def test_jacobian_pass_leaves_batchnorm_buffers_bit_identical():
    torch.manual_seed(0)
    model = BNNet().train()
    model(torch.randn(16, 1, 8, 8))  # non-trivial running statistics
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    a = output_jacobian(model, torch.randn(7, 1, 8, 8))
    assert a.shape == (sum(p.numel() for p in model.parameters()), 7)
    after = model.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())


def test_jacobian_columns_are_max_logit_gradients_and_vectorised_equals_loop():
    torch.manual_seed(1)
    model = BNNet().train().double()
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    a = output_jacobian(model, x)
    assert torch.allclose(a, output_jacobian(model, x, vectorised=False), rtol=1e-12, atol=1e-12)
    params = list(model.parameters())
    z = model(x)
    k = z[2].argmax()
    g = torch.autograd.grad(z[2, k], params)
    assert torch.allclose(a[:, 2], torch.cat([t.reshape(-1) for t in g]), rtol=1e-12, atol=1e-12)


def test_two_heads_give_two_columns_per_sample_with_zeros_on_the_other_head():
    torch.manual_seed(2)
    model = BNNet(two_heads=True).train()
    a = output_jacobian(model, torch.randn(4, 1, 8, 8))
    assert a.shape[1] == 8
    sizes = [p.numel() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    blocks = dict(zip(names, torch.split(a, sizes, dim=0)))
    assert torch.all(blocks["color.weight"][:, :4] == 0) and torch.all(blocks["head.weight"][:, 4:] == 0)
    assert blocks["head.weight"][:, :4].abs().sum() > 0 and blocks["color.weight"][:, 4:].abs().sum() > 0


# ------------------------------------------------------------------------------------------------ quota guard


def test_quota_guard_never_returns_an_empty_subsample():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(12).repeat(3)  # K = 12 classes, 3 each
    pos, fell = subsample(y, len(y), 5, g, "uniform")
    assert fell and len(pos) == 5 and len(set(pos.tolist())) == 5
    pos, fell = subsample(y, len(y), 5, g, "one_per_class")
    assert fell and sorted(y[pos].tolist()) == list(range(12))
    with pytest.raises(UnlearnlabError, match="quota"):
        subsample(y, len(y), 5, g, "error")
    pos, fell = subsample(y, len(y), 24, g)  # K ≤ n_pert: min(⌊24/12⌋, 3) = 2 per class
    assert not fell and np.bincount(y[pos].numpy()).tolist() == [2] * 12
    pos, _ = subsample(y, len(y), 100, g)  # quota 8 > n_c = 3: every member
    assert len(pos) == 36
    with pytest.raises(UnlearnlabError, match="empty"):
        subsample(y[:0], 0, 5, g)


def test_quota_fallback_is_counted_in_the_run_stats_and_error_mode_raises(digits_task):
    model = ul.models.create("mlp", digits_task)
    res = ul.unlearn(model, digits_task, method="minnorm-og", seed=1, epochs=1, grad_sample_size=5)
    assert res.stats["projections"] > 0
    assert res.stats["jacobian_fallbacks"] == res.stats["projections"]
    assert res.stats["jacobian_columns"] == 5
    with pytest.raises(UnlearnlabError, match="quota"):
        ul.unlearn(model, digits_task, method="minnorm-og", seed=1, epochs=1, grad_sample_size=5,
                   quota_fallback="error")


# ------------------------------------------------------------------------------------------------ the rule


def _run(method: str, model: nn.Module, forget: TensorData, retain: TensorData, **kw) -> dict:
    """``method`` built with ``kw`` and run directly (regression targets are floats: no label checks)."""
    info = ul.get_method(method)
    unlearner = info.build(info.resolve(kw))
    return unlearner.run(model, UnlearnData(forget, retain, info={"num_classes": 1}), RunContext(seed=1))


def _run_rule(model: nn.Module, forget: TensorData, retain: TensorData, **kw) -> dict:
    return _run("minnorm-og", model, forget, retain, **kw)


def test_linear_model_through_the_rule_shrinks_the_orthogonal_component_geometrically():
    torch.manual_seed(3)
    d, n_r = 50, 15
    xr = torch.randn(n_r, d, dtype=torch.float64)
    retain = TensorData(xr, xr @ torch.randn(d, dtype=torch.float64), torch.arange(n_r))
    forget = TensorData(torch.randn(3, d, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                        torch.arange(3) + 100)
    model = nn.Linear(d, 1, bias=False).double()
    theta0 = model.weight.detach().reshape(-1).clone()
    p_g = xr.T @ torch.linalg.pinv(xr.T)
    epochs, lam, gamma = 4, 0.5, 0.6
    stats = _run_rule(model, forget, retain, epochs=epochs, lr=0.0, batch_size=64, loss_type="regression",
                      reg_coef=lam, reg_coef_decay=gamma, grad_sample_size=50)
    theta = model.weight.detach().reshape(-1)
    factor = math.prod(1 - lam * gamma**j for j in range(epochs))
    assert stats["projections"] == epochs
    assert rel(p_g @ theta, p_g @ theta0) < 1e-10
    assert rel(theta - p_g @ theta, factor * (theta0 - p_g @ theta0)) < 1e-10


@pytest.mark.parametrize(("epochs", "t_gd", "t_proj", "n_f", "batch"),
                         [(4, 0, 1, 3, 8), (4, 4, 1, 3, 8), (5, 1, 2, 20, 8), (6, 2, 3, 9, 4)])
def test_projection_schedule_and_lambda_sequence(epochs, t_gd, t_proj, n_f, batch):
    torch.manual_seed(4)
    retain = TensorData(torch.randn(30, 6), torch.randint(0, 3, (30,)), torch.arange(30))
    forget = TensorData(torch.randn(n_f, 6), torch.randint(0, 3, (n_f,)), torch.arange(n_f) + 100)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    stats = _run_rule(model, forget, retain, epochs=epochs, batch_size=batch, num_gd_epochs=t_gd, proj_pd=t_proj,
                      reg_coef=0.5, reg_coef_decay=0.7)
    n_fb = math.ceil(n_f / batch)
    count = n_fb * sum(1 for t in range(epochs - t_gd) if t % t_proj == 0)
    assert stats["projections"] == count
    assert stats["steps"]["joint"] == n_fb * epochs
    assert stats["lambda_final"] == pytest.approx(0.5 * 0.7**count, rel=1e-12)


def test_invalid_reg_coef_is_refused(digits_task, trained_mlp):
    with pytest.raises(UnlearnlabError, match="reg_coef"):
        ul.unlearn(trained_mlp, digits_task, method="minnorm-og", epochs=1, reg_coef=3.0)


def test_minnorm_never_reads_forget_inputs(digits_task, trained_mlp):
    nan_forget = (torch.full_like(digits_task.forget.x, float("nan")), digits_task.forget.y)
    a = ul.unlearn(trained_mlp, forget=nan_forget, retain=digits_task.retain, method="minnorm-og", seed=1, epochs=2)
    b = ul.unlearn(trained_mlp, forget=digits_task.forget, retain=digits_task.retain, method="minnorm-og", seed=1,
                   epochs=2)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_minnorm_runs_on_a_batchnorm_model(digits_task):
    torch.manual_seed(5)
    model = BNNet().eval()
    res = ul.unlearn(model, digits_task, method="minnorm-og", seed=1, epochs=2, p_retain=0.2)
    assert res.stats["projections"] == 2 * math.ceil(len(digits_task.forget) / 32)
    assert res.stats["jacobian_columns"] > 0 and res.stats["jacobian_fallbacks"] == 0
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert all(torch.isfinite(b).all() for b in res.model.buffers())


def test_retain_forward_sees_the_projected_parameters():
    torch.manual_seed(6)
    d = 20
    xr = torch.randn(8, d, dtype=torch.float64)
    retain = TensorData(xr, torch.randn(8, dtype=torch.float64), torch.arange(8))
    forget = TensorData(torch.randn(2, d, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), torch.arange(2))
    model = nn.Linear(d, 1, bias=False).double()
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(m.weight.detach().clone()))
    _run_rule(model, forget, retain, epochs=1, lr=0.0, batch_size=64, loss_type="regression", reg_coef=1.0)
    assert len(seen) == 2  # Jacobian forward, then the loss forward
    assert not torch.equal(seen[0], seen[1])
    assert torch.equal(seen[1], model.weight.detach())  # lr 0: the loss forward saw the projected θ


# ------------------------------------------------------------------------------------- the paper's own baselines


def _adamw_step(model: nn.Module, loss_fn, lr: float) -> list[torch.Tensor]:
    import copy

    ref = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(ref.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.01)
    opt.zero_grad()
    loss_fn(ref).backward()
    opt.step()
    return [p.detach() for p in ref.parameters()]


@pytest.mark.parametrize("method", ["mnog/gd", "mnog/ga"])
def test_gd_and_ga_take_one_adamw_step_on_the_full_batch(method):
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    xf, yf = torch.randn(5, 4), torch.randint(0, 3, (5,))
    xr, yr = torch.randn(9, 4), torch.randint(0, 3, (9,))
    res = ul.unlearn(model, forget=(xf, yf), retain=(xr, yr), method=method, seed=1, epochs=1, lr=0.01,
                     batch_size=16)
    assert res.counters.optimizer_steps == 1
    loss = PaperLoss()
    if method == "mnog/gd":
        expected = _adamw_step(model, lambda m: loss(m, {'x': xr, 'y': yr}, None), 0.01)
    else:
        expected = _adamw_step(model, lambda m: -loss(m, {'x': xf, 'y': yf}, None), 0.01)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(res.model.parameters(), expected))


def test_ngd_adds_gaussian_noise_of_variance_sigma_squared_per_entry(monkeypatch):
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    model = nn.Linear(200, 50, bias=False)
    with torch.no_grad():
        model.weight.zero_()  # zero outputs, zero targets: the data gradient is exactly 0
    xr = torch.randn(10, 200)
    retain = TensorData(xr, torch.zeros(10, 50), torch.arange(10))
    forget = TensorData(torch.randn(2, 200), torch.zeros(2, 50), torch.arange(2) + 10)
    grads: list[torch.Tensor] = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: grads.append(model.weight.grad.clone()))
    try:
        _run("mnog/ngd", model, forget, retain, epochs=2, loss_type="regression", noise_std=0.5)
    finally:
        handle.remove()
    assert len(grads) == 2
    g = torch.cat([t.reshape(-1) for t in grads])
    assert abs(g.mean().item()) < 0.02
    assert g.var().item() == pytest.approx(0.25, rel=0.05)
    assert not torch.equal(grads[0], grads[1])


def test_ridge_penalty_decays_per_step_and_shrinks_the_norm(digits_task, trained_mlp):
    res = ul.unlearn(trained_mlp, digits_task, method="mnog/ridge", seed=1, epochs=2, reg_coef=0.5,
                     reg_coef_decay=0.9)
    steps = res.stats["steps"]["joint"]
    assert steps == 2 * math.ceil(len(digits_task.forget) / 32)
    assert res.stats["ridge_final"] == pytest.approx(0.5 * 0.9**steps, rel=1e-12)
    gd = ul.unlearn(trained_mlp, digits_task, method="mnog/gd", seed=1, epochs=2)

    def norm(m):
        return sum((p.detach() ** 2).sum().item() for p in m.parameters())

    assert norm(res.model) < norm(gd.model)
    zero = ul.unlearn(trained_mlp, digits_task, method="mnog/ridge", seed=1, epochs=2, reg_coef=0.0)
    assert all(torch.equal(p, q) for p, q in zip(zero.model.parameters(), gd.model.parameters()))


@pytest.mark.parametrize("method", ["mnog/gd", "mnog/ngd", "mnog/ridge"])
def test_retain_only_baselines_never_read_forget_inputs(method, digits_task, trained_mlp):
    nan_forget = (torch.full_like(digits_task.forget.x, float("nan")), digits_task.forget.y)
    a = ul.unlearn(trained_mlp, forget=nan_forget, retain=digits_task.retain, method=method, seed=1, epochs=1)
    b = ul.unlearn(trained_mlp, forget=digits_task.forget, retain=digits_task.retain, method=method, seed=1,
                   epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_minnorm_with_zero_strength_is_gd(digits_task, trained_mlp):
    mn = ul.unlearn(trained_mlp, digits_task, method="minnorm-og", seed=1, epochs=2, reg_coef=0.0)
    gd = ul.unlearn(trained_mlp, digits_task, method="mnog/gd", seed=1, epochs=2)
    assert all(torch.equal(p, q) for p, q in zip(mn.model.parameters(), gd.model.parameters()))


def test_ngp_step_is_retain_minus_weighted_forget():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    xf, yf = torch.randn(5, 4), torch.randint(0, 3, (5,))
    xr, yr = torch.randn(9, 4), torch.randint(0, 3, (9,))
    res = ul.unlearn(model, forget=(xf, yf), retain=(xr, yr), method="mnog/ngp", seed=1, epochs=1, lr=0.01,
                     batch_size=16, forget_weight=0.3)
    loss = PaperLoss()
    expected = _adamw_step(
        model, lambda m: loss(m, {"x": xr, "y": yr}, None) - 0.3 * loss(m, {"x": xf, "y": yf}, None), 0.01)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(res.model.parameters(), expected))


@pytest.mark.parametrize("epochs", [1, 3])
def test_l1_sparse_weight_follows_the_epoch_rule(epochs, digits_task, trained_mlp):
    res = ul.unlearn(trained_mlp, digits_task, method="mnog/l1-sparse", seed=1, epochs=epochs, reg_coef=0.01)
    assert res.stats["l1_final"] == pytest.approx((2 - 2 * (epochs - 1) / epochs) * 0.01, rel=1e-12)
    gd = ul.unlearn(trained_mlp, digits_task, method="mnog/gd", seed=1, epochs=epochs)

    def norm(m):
        return sum(p.detach().abs().sum().item() for p in m.parameters())

    assert norm(res.model) < norm(gd.model)


def test_retrain_never_reads_the_original_weights(digits_task, trained_mlp):
    other = ul.models.create("mlp", digits_task)  # same architecture, different weights
    a = ul.unlearn(trained_mlp, digits_task, method="mnog/retrain", seed=1, epochs=1)
    b = ul.unlearn(other, digits_task, method="mnog/retrain", seed=1, epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_retrain_refuses_parameters_it_cannot_reinitialise(digits_task):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.scale * self.net(x)

    with pytest.raises(UnlearnlabError, match="scale"):
        ul.unlearn(Scaled(), digits_task, method="mnog/retrain", seed=1, epochs=1)


def test_per_sample_jacobian_equals_the_batched_one_on_a_model_without_batch_coupling():
    torch.manual_seed(0)
    model = ul.models.create("small_cnn", input_shape=(1, 8, 8), num_classes=10).double()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    from unlearnlab.methods.minnorm import couples_samples, per_sample_max_logit_jacobian

    assert not couples_samples(model)
    params = list(model.parameters())
    fast = per_sample_max_logit_jacobian(model, x, params)
    assert torch.allclose(fast, output_jacobian(model, x, vectorised=False), rtol=1e-12, atol=1e-12)
    assert couples_samples(ul.models.create("bn_cnn", input_shape=(1, 8, 8), num_classes=10).train())


def test_per_sample_jacobian_counts_every_sample_and_every_vjp():
    """The vmap path shows the counting hooks one sample; it must count the n samples it forwards and its one
    VJP per (head, sample) column."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    counters = Counters()
    with CountingHooks(model, counters):
        jacobian = output_jacobian(model, torch.randn(7, 1, 8, 8, dtype=torch.float64), vectorised=True)
    assert jacobian.shape[1] == 7
    assert (counters.forward_samples, counters.backward_samples) == (7, 7)
