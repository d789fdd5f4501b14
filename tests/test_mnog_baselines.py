"""MinNorm-OG's own baselines `mnog/npo`, `mnog/scrub`, `mnog/salun`, their aliases, and the models `bn_cnn`,
`sine_mlp` (docs/methods.md, "MinNorm-OG baselines: SCRUB, NPO and SalUn variants, aliases, `bn_cnn`, `sine_mlp`";
docs/models.md, "Built-in architectures"). Registry-wide checks live in tests/test_methods.py."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import unlearnlab as ul
from unlearnlab.data.tensors import TensorData
from unlearnlab.families.classification import distill_kl
from unlearnlab.methods import RunContext, UnlearnData
from unlearnlab.methods.masks import median_threshold_mask, paper_saliency_mask
from unlearnlab.methods.minnorm_objectives import PaperDistill, PaperLoss, PaperNPO, npo_loss, wrong_labels
from unlearnlab.methods.rules.min_norm import MinNormLoop


def build(method: str, num_classes: int = 10, **overrides):
    info = ul.get_method(method)
    return info.build(info.resolve(overrides))


def td(x: torch.Tensor, y: torch.Tensor) -> TensorData:
    return TensorData(x, y, torch.arange(len(x)))


class FixedHeads(nn.Module):
    """Returns fixed logits per head (a tensor for one head); ``shift`` is a trainable offset added to all."""

    def __init__(self, *logits: torch.Tensor):
        super().__init__()
        self.logits = [z.clone() for z in logits]
        self.shift = nn.Parameter(torch.zeros((), dtype=logits[0].dtype))

    def forward(self, x):
        outs = tuple(z + self.shift for z in self.logits)
        return outs[0] if len(outs) == 1 else outs


class TwoHeadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.a, self.b = nn.Linear(8, 4), nn.Linear(8, 3)

    def forward(self, x):
        z = self.body(x)
        return self.a(z), self.b(z)


# ------------------------------------------------------------------------------------------------ NPO


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5])
def test_npo_loss_equals_its_formula_on_fixed_logits(beta):
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3
    zt = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3
    y = torch.tensor([0, 4, 2, 2, 1, 3])
    ps, pt = F.softmax(zs, 1)[torch.arange(6), y], F.softmax(zt, 1)[torch.arange(6), y]
    expected = (2 / beta) * torch.log(1 + (ps / pt) ** beta).mean()
    assert torch.allclose(npo_loss(zs, zt, y, beta), expected, rtol=1e-12, atol=0)
    assert torch.allclose(npo_loss(zt, zt, y, beta), torch.tensor(2 / beta * math.log(2), dtype=torch.float64))


def test_npo_objective_sums_heads_clamps_the_student_and_reads_the_teacher():
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.randn(4, 5, generator=g, dtype=torch.float64) * 20, torch.randn(4, 3, generator=g,
                                                                                      dtype=torch.float64)
    t1, t2 = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([[0, 1], [4, 2], [3, 0], [1, 1]])
    obj = PaperNPO(beta=0.5, logit_clamp=30.0)
    obj.teacher = FixedHeads(t1, t2).eval()
    got = obj(FixedHeads(s1, s2), {'x': torch.zeros(4, 1), 'y': y}, RunContext(seed=1))
    expected = npo_loss(s1.clamp(-30, 30), t1, y[:, 0], 0.5) + npo_loss(s2, t2, y[:, 1], 0.5)
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)
    assert (s1.abs() > 30).any()  # the clamp is exercised
    assert not torch.allclose(got, npo_loss(s1, t1, y[:, 0], 0.5) + npo_loss(s2, t2, y[:, 1], 0.5))


def test_npo_takes_one_adamw_step_on_its_formula_with_teacher_theta_star():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    xf, yf = torch.randn(5, 4), torch.randint(0, 3, (5,))
    xr, yr = torch.randn(9, 4), torch.randint(0, 3, (9,))
    res = ul.unlearn(model, forget=(xf, yf), retain=(xr, yr), method="mnog/npo", seed=1, epochs=1, lr=0.01,
                     batch_size=16, reg_coef=0.3)
    assert res.counters.optimizer_steps == 1
    with torch.no_grad():
        zt = model(xf)
    ref = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(ref.parameters(), lr=0.01, betas=(0.9, 0.999), weight_decay=0.01)
    npo_loss(ref(xf), zt, yf, 0.3).backward()
    opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(res.model.parameters(), ref.parameters()))


def test_npo_raises_forget_loss_on_digits(digits_task, trained_mlp):
    before = F.cross_entropy(trained_mlp(digits_task.forget.x), digits_task.forget.y).item()
    res = ul.unlearn(trained_mlp, digits_task, method="npo", seed=1, epochs=3, lr=1e-2)
    assert res.method == "mnog/npo"
    with torch.no_grad():
        after = F.cross_entropy(res.model(digits_task.forget.x), digits_task.forget.y).item()
    assert after > before + 0.5


# ------------------------------------------------------------------------------------------------ SCRUB


@pytest.mark.parametrize(("epochs", "t_gd", "expected"), [
    (5, 0, [0, 1, 0, 1, 0]), (6, 0, [0, 1, 0, 1, 0, 1]), (5, 2, [0, 1, 0, 0, 0]), (6, 3, [0, 1, 0, 0, 0, 0]),
    (4, 4, [0, 0, 0, 0]), (1, 0, [0]),
])
def test_scrub_max_epochs_are_the_odd_ones_before_t_gd(epochs, t_gd, expected):
    rule = MinNormLoop(alternate=True, num_gd_epochs=t_gd)
    assert [int(rule.max_epoch(t, epochs)) for t in range(epochs)] == expected
    assert not MinNormLoop().max_epoch(1, 5)  # only with alternate


@pytest.mark.parametrize(("epochs", "t_gd"), [(4, 0), (5, 2)])
def test_scrub_run_alternates_objectives_by_epoch_parity(epochs, t_gd, digits_task, trained_mlp, monkeypatch):
    calls: list[str] = []
    original = PaperDistill.__call__

    def spy(self, model, batch, ctx):
        calls.append("max" if self.kl_weight < 0 else "min")
        side = digits_task.forget.x if self.kl_weight < 0 else digits_task.retain.x  # max: D_f, min: D_r
        assert torch.cdist(batch["x"].flatten(1), side.flatten(1)).min(1).values.max() == 0
        return original(self, model, batch, ctx)

    monkeypatch.setattr(PaperDistill, "__call__", spy)
    res = ul.unlearn(trained_mlp, digits_task, method="mnog/scrub", seed=1, epochs=epochs, num_gd_epochs=t_gd)
    n_fb = math.ceil(len(digits_task.forget) / 32)
    phases = ["max" if (t % 2 == 1 and t < epochs - t_gd) else "min" for t in range(epochs)]
    assert calls == [p for p in phases for _ in range(n_fb)]
    assert res.stats["max_epochs"] == phases.count("max")
    assert res.stats["min_epochs"] == phases.count("min")
    assert res.counters.optimizer_steps == epochs * n_fb


def test_scrub_objectives_are_teacher_first_kl_plus_j():
    g = torch.Generator().manual_seed(2)
    s1, s2 = torch.randn(5, 4, generator=g, dtype=torch.float64) * 2, torch.randn(5, 3, generator=g,
                                                                                     dtype=torch.float64)
    t1, t2 = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([[0, 1], [3, 2], [2, 0], [1, 1], [0, 0]])

    def kl(s, t):  # KL(p_teacher ‖ p_student), batch mean
        return F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1), reduction="batchmean")

    p_t = F.softmax(t1, 1)
    manual = (p_t * (p_t.log() - F.log_softmax(s1, 1))).sum(1).mean()
    assert torch.allclose(kl(s1, t1), manual, rtol=1e-12)
    assert torch.allclose(distill_kl(s1, t1, 1.0), manual, rtol=1e-12)
    ctx = RunContext(seed=1)
    student, teacher = FixedHeads(s1, s2), FixedHeads(t1, t2).eval()
    retain = PaperDistill(kl_weight=0.2, ce_weight=1.0)
    forget = PaperDistill(kl_weight=-0.7, ce_weight=0.0)
    retain.teacher = forget.teacher = teacher
    j = F.cross_entropy(s1, y[:, 0]) + F.cross_entropy(s2, y[:, 1])
    assert torch.allclose(retain(student, {'x': None, 'y': y}, ctx), j + 0.2 * (kl(s1, t1) + kl(s2, t2)), rtol=1e-12)
    assert torch.allclose(forget(student, {'x': None, 'y': y}, ctx), -0.7 * (kl(s1, t1) + kl(s2, t2)), rtol=1e-12)
    reverse = -0.7 * (kl(t1, s1) + kl(t2, s2))
    assert not torch.allclose(forget(student, {'x': None, 'y': y}, ctx), reverse, rtol=1e-3)


@pytest.mark.parametrize("train_mode", [False, True])
def test_scrub_teacher_runs_in_eval_mode_unless_the_compat_flag(train_mode, monkeypatch):
    torch.manual_seed(3)
    model = TwoHeadNet()
    x = torch.randn(40, 6)
    y = torch.stack([torch.randint(0, 4, (40,)), torch.randint(0, 3, (40,))], 1)
    modes: list[bool] = []
    original = PaperDistill.__call__

    def spy(self, model, batch, ctx):
        out = original(self, model, batch, ctx)
        modes.append(self.teacher.training)
        return out

    monkeypatch.setattr(PaperDistill, "__call__", spy)
    unlearner = build("mnog/scrub", num_classes=4, epochs=2, batch_size=8, teacher_train_mode=train_mode)
    st = unlearner.run(model, UnlearnData(td(x[:10], y[:10]), td(x[10:], y[10:]), info={"num_classes": 4}),
                         RunContext(seed=1))
    assert modes and set(modes) == {train_mode}
    assert ("compat" in st) == train_mode
    if train_mode:
        assert st["compat"] == ["teacher_train_mode"]


def test_scrub_eval_teacher_equals_the_original_on_a_batchnorm_model():
    """The teacher's outputs are θ*'s eval outputs: its BN running statistics never drift."""
    torch.manual_seed(4)
    model = TwoHeadNet()
    model.train()(torch.randn(64, 6))  # non-trivial running statistics
    model.eval()
    x = torch.randn(40, 6)
    y = torch.stack([torch.randint(0, 4, (40,)), torch.randint(0, 3, (40,))], 1)
    original = copy.deepcopy(model)
    unlearner = build("mnog/scrub", num_classes=4, epochs=3, batch_size=8)
    unlearner.run(model, UnlearnData(td(x[:10], y[:10]), td(x[10:], y[10:]), info={"num_classes": 4}),
                         RunContext(seed=1))
    teacher = unlearner.forget.teacher
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), original.state_dict().values()))


# ------------------------------------------------------------------------------------------------ SalUn


def test_median_mask_uses_the_lower_median_and_keeps_ties():
    grads = {"w": torch.tensor([[1.0, -2.0], [3.0, -4.0]])}  # |g| = 1, 2, 3, 4: lower median 2 (upper 3)
    mask, thr = median_threshold_mask(grads)
    assert thr == 2.0
    assert mask["w"].tolist() == [[False, True], [True, True]]
    grads = {"a": torch.tensor([0.5, -0.5, 0.1]), "b": torch.tensor([[0.5], [0.2]])}  # ties at the median
    mask, thr = median_threshold_mask(grads)
    assert thr == 0.5
    assert mask["a"].tolist() == [True, True, False] and mask["b"].tolist() == [[True], [False]]
    grads = {"z": torch.zeros(3, 3)}  # all equal: everything trainable
    assert median_threshold_mask(grads)[0]["z"].all()


def test_salun_mask_gradient_is_summed_batch_mean_j_in_train_mode_with_buffers_restored():
    torch.manual_seed(5)
    model = TwoHeadNet().train()
    model(torch.randn(32, 6))
    x = torch.randn(13, 6)
    y = torch.stack([torch.randint(0, 4, (13,)), torch.randint(0, 3, (13,))], 1)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    mask, thr = paper_saliency_mask(model, td(x, y), 5, lambda m, b: PaperLoss()(m, b, None))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    loss = sum(PaperLoss()(model, {"x": x[i:i + 5], "y": y[i:i + 5]}, None) for i in range(0, 13, 5))
    grads = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(loss, list(model.parameters()))))
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    assert thr == pytest.approx(float(flat.sort().values[(flat.numel() - 1) // 2]), rel=1e-5)
    expected, _ = median_threshold_mask(grads)
    agree = sum(int((mask[n] == expected[n]).sum()) for n in mask) / flat.numel()
    assert agree > 0.99  # float summation order only
    assert sum(int(m.sum()) for m in mask.values()) >= flat.numel() / 2


def test_salun_frozen_entries_stay_bit_identical_and_masked_out_of_adamw(digits_task, trained_mlp):
    res = ul.unlearn(trained_mlp, digits_task, method="mnog/salun", seed=1, epochs=2, lr=1e-2)
    assert 0.5 <= res.stats["mask_fraction_trainable"] < 0.6
    loss = sum(PaperLoss()(trained_mlp, {"x": x, "y": y}, None) for x, y in
               zip(digits_task.forget.x.split(32), digits_task.forget.y.split(32)))
    grads = torch.autograd.grad(loss, list(trained_mlp.parameters()))
    thr = torch.median(torch.cat([g.abs().flatten() for g in grads]))
    assert res.stats["mask_threshold"] == pytest.approx(float(thr), rel=1e-6)
    frozen_total, moved = 0, 0
    for p0, p1, g in zip(trained_mlp.parameters(), res.model.parameters(), grads):
        frozen = g.abs() < thr
        frozen_total += int(frozen.sum())
        assert torch.equal(p0[frozen], p1[frozen])  # no weight decay on frozen entries either
        moved += int((p0[~frozen] != p1[~frozen]).sum())
    assert frozen_total > 0 and moved > 0


def test_wrong_labels_differ_from_y_and_are_uniform_over_the_others():
    g = torch.Generator().manual_seed(0)
    y = torch.full((21000,), 3)
    w = wrong_labels(y, 8, g)
    assert not (w == 3).any()
    counts = np.bincount(w.numpy(), minlength=8)
    assert counts[3] == 0
    assert stats.chisquare(np.delete(counts, 3)).pvalue > 1e-3
    assert not torch.equal(wrong_labels(y[:50], 8, g), wrong_labels(y[:50], 8, g))  # fresh per call


def test_salun_draws_fresh_wrong_labels_per_head_per_step_on_two_heads(monkeypatch):
    import unlearnlab.methods.minnorm_objectives as mn

    torch.manual_seed(6)
    model = TwoHeadNet()
    x = torch.randn(30, 6)
    y = torch.stack([torch.randint(0, 4, (30,)), torch.randint(0, 3, (30,))], 1)
    forget, retain = td(x[:6], y[:6]), td(x[6:], y[6:])
    unlearner = build("mnog/salun", num_classes=4, epochs=2, batch_size=8, forget_weight=0.5)
    drawn: list[tuple[torch.Tensor, int, torch.Tensor]] = []
    original = mn.wrong_labels

    def spy(labels, classes, generator, batch=None):
        out = original(labels, classes, generator, batch)
        drawn.append((labels.clone(), classes, out.clone()))
        return out

    monkeypatch.setattr(mn, "wrong_labels", spy)
    st = unlearner.run(model, UnlearnData(forget, retain, info={"num_classes": 4}), RunContext(seed=1))
    assert st["mask_fraction_trainable"] >= 0.5
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [c for _, c, _ in drawn] == [4, 3, 4, 3]  # 2 epochs × 1 forget batch × (content, colour) heads
    for labels, classes, out in drawn:
        assert len(labels) == 6 and not (out == labels).any() and int(out.max()) < classes


# ------------------------------------------------------------------------------------------------ aliases


@pytest.mark.parametrize(("alias", "name"), [("ngd", "mnog/ngd"), ("ridge", "mnog/ridge"), ("npo", "mnog/npo")])
def test_issue_aliases_resolve_to_the_mnog_presets(alias, name, digits_task, trained_mlp):
    assert ul.get_method(alias).name == name
    assert alias not in ul.list_methods()  # an alias, not a second preset
    a = ul.unlearn(trained_mlp, digits_task, method=alias, seed=1, epochs=1)
    b = ul.unlearn(trained_mlp, digits_task, method=name, seed=1, epochs=1)
    assert a.method == name
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


@pytest.mark.parametrize("name", ["ga", "gd", "retrain", "scrub", "salun", "l1-sparse"])
def test_baseline_names_are_not_hijacked_by_mnog(name):
    try:
        info = ul.get_method(name)
    except ul.UnlearnlabError:
        return  # not registered (here): at least not an alias of a mnog preset
    assert not info.name.startswith("mnog/")


# ------------------------------------------------------------------------------------------------ models


@pytest.mark.parametrize(("shape", "heads", "d"), [
    ((1, 8, 8), None, 24058), ((3, 8, 8), None, 24346), ((3, 8, 8), (10, 3), 24541), ((1, 28, 28), (10,), 24058),
])
def test_bn_cnn_parameter_counts(shape, heads, d):
    kw = {} if heads is None else {"heads": heads}
    model = ul.models.create("bn_cnn", input_shape=shape, num_classes=10, **kw)
    assert sum(p.numel() for p in model.parameters()) == d
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
    out = model.eval()(torch.rand(5, *shape))
    if heads is None or len(heads) == 1:
        assert out.shape == (5, 10)
    else:
        assert [o.shape for o in out] == [(5, 10), (5, 3)]
    assert ul.models.create("digits_cnn2", input_shape=shape, num_classes=10, **kw).state_dict().keys() == \
        model.state_dict().keys()


@pytest.mark.parametrize(("width", "d"), [(300, 91201), (64, 4353)])
def test_sine_mlp_parameter_count_and_shape(width, d):
    model = ul.models.create("sine_mlp", input_shape=(1,), num_classes=1, width=width)
    assert sum(p.numel() for p in model.parameters()) == d
    x = torch.linspace(-5 * math.pi, 5 * math.pi, 7)[:, None]
    out = model(x)
    assert out.shape == (7, 1)
    body = model[1]
    assert torch.allclose(out, body.net(x), atol=0, rtol=0)  # Normalize (0, 1) is the identity
    assert [type(m) for m in body.net] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]


@pytest.mark.parametrize("method", ["mnog/npo", "mnog/scrub", "mnog/salun"])
def test_new_presets_run_on_bn_cnn_with_two_heads(method):
    torch.manual_seed(7)
    model = ul.models.create("bn_cnn", input_shape=(3, 8, 8), num_classes=10, heads=(10, 3))
    x = torch.rand(48, 3, 8, 8)
    y = torch.stack([torch.randint(0, 10, (48,)), torch.randint(0, 3, (48,))], 1)
    before = copy.deepcopy(model)
    unlearner = build(method, epochs=2, batch_size=16)
    unlearner.run(model, UnlearnData(td(x[:8], y[:8]), td(x[8:], y[8:]), info={"num_classes": 10}), RunContext(seed=1))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters()))
