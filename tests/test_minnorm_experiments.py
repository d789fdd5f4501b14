"""MinNorm-OG experiments (docs/minnorm_experiments.md; experiments/minnorm/, data/synthetic.py): data generators,
metric functions on fixed inputs, and each experiment end to end at a tiny size with resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unlearnlab.bench import selection as SEL
from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.store import ResultStore
from unlearnlab.data.synthetic import (
    PALETTE,
    collapse_data,
    colour_copy,
    erase_data,
    sine_grid,
    sine_poisoning,
    tint,
)
from unlearnlab.data.tensors import TensorData
from unlearnlab.experiments import ExperimentContext
from unlearnlab.experiments.minnorm import common as C
from unlearnlab.experiments.minnorm import image_settings as IS
from unlearnlab.experiments.minnorm import images as I
from unlearnlab.experiments.minnorm import sine as S

# ------------------------------------------------------------------------------------------------ data


def test_sine_poisoning_places_poisoned_points_and_is_reproducible():
    a, b, c = sine_poisoning(1), sine_poisoning(1), sine_poisoning(2)
    assert a.retain.x.shape == (50, 1) and a.forget.x.shape == (5, 1)
    assert a.retain.y.dtype == torch.float32 and a.forget.y.dtype == torch.float32
    assert torch.all(a.forget.y == 1.5)
    assert torch.allclose(a.retain.y, torch.sin(a.retain.x.double()).float(), atol=1e-6)
    for x in (a.retain.x, a.forget.x):
        assert float(x.min()) >= -5 * math.pi and float(x.max()) <= 5 * math.pi
    assert torch.equal(a.retain.x, b.retain.x) and torch.equal(a.forget.x, b.forget.x) and a.hash == b.hash
    assert not torch.equal(a.retain.x, c.retain.x) and a.hash != c.hash
    assert a.retain.index.tolist() == list(range(50)) and a.forget.index.tolist() == list(range(50, 55))
    assert len(a.all) == 55


def test_sine_grid_is_1000_even_points_on_the_interval():
    g = sine_grid()
    assert g.shape == (1000, 1)
    assert float(g[0]) == pytest.approx(-5 * math.pi) and float(g[-1]) == pytest.approx(5 * math.pi)
    assert torch.allclose(g[1:] - g[:-1], torch.full((999, 1), 10 * math.pi / 999), atol=1e-5)


def test_colour_copies_and_tints():
    lum = torch.rand(4, 1, 8, 8)
    gray, red, green = (colour_copy(lum, c) for c in ("gray", "red", "green"))
    assert all(torch.equal(gray[:, i:i + 1], lum) for i in range(3))
    assert torch.equal(red[:, :1], lum) and red[:, 1:].abs().sum() == 0
    assert torch.equal(green[:, 1:2], lum) and green[:, [0, 2]].abs().sum() == 0
    t = tint(lum, torch.tensor([6, 6, 6, 6]))  # orange (255, 128, 0)
    assert torch.allclose(t[:, 0:1], lum) and torch.allclose(t[:, 1:2], lum * 128 / 255) and t[:, 2].abs().sum() == 0


def test_erase_data_red_and_green_forget_copies():
    d, d2, d3 = erase_data(1, 0.05), erase_data(1, 0.05), erase_data(2, 0.05)
    n = len(d.retain)
    assert n == 1442 and d.heads == (10, 3)
    k = int(0.05 * n)
    assert len(d.forget) == 2 * k
    assert torch.all(d.retain.y[:, 1] == 0)
    assert torch.equal(d.retain.x[:, 0], d.retain.x[:, 1]) and torch.equal(d.retain.x[:, 0], d.retain.x[:, 2])
    red, green = d.forget.y[:, 1] == 1, d.forget.y[:, 1] == 2
    assert int(red.sum()) == k and int(green.sum()) == k
    assert d.forget.x[red][:, 1:].abs().sum() == 0 and d.forget.x[green][:, [0, 2]].abs().sum() == 0
    # a red forget copy is the red copy of the pool image at its position, with that image's class
    pos = d.forget.index[red] - n
    assert torch.equal(d.forget.x[red][:, 0], d.retain.x[pos][:, 0])
    assert torch.equal(d.forget.y[red][:, 0], d.retain.y[pos][:, 0])
    assert torch.equal(d.forget.x, d2.forget.x) and not torch.equal(d.forget.index, d3.forget.index)
    assert set(d.test) == {"gray", "red", "green"} and all(len(t) == 355 for t in d.test.values())
    assert torch.all(d.test["green"].y[:, 1] == 2)


def test_collapse_data_mis_tinted_forget_images():
    d, d2 = collapse_data(1, 0.1), collapse_data(1, 0.1)
    n = len(d.retain)
    counts = np.bincount(d.retain.y.numpy(), minlength=10)
    assert len(d.forget) == sum(int(0.1 * c) for c in counts)
    pal = torch.tensor(PALETTE, dtype=torch.float32) / 255
    lum = d.warm.x[:, :1]
    assert torch.allclose(d.retain.x, lum * pal[d.retain.y][:, :, None, None])
    pos = d.forget.index - n
    assert torch.equal(d.forget.y, d.retain.y[pos])  # content label kept
    for i in range(len(d.forget)):  # tinted with another class's colour
        matches = [c for c in range(10) if torch.allclose(d.forget.x[i], lum[pos[i]] * pal[c][:, None, None])]
        assert matches and int(d.forget.y[i]) not in matches
    assert d.retain_weight == pytest.approx(0.1 / 1.1) and d.forget_weight == pytest.approx(1 / 1.1)
    assert len(d.test) == 10 and all(torch.all(t.y == k) for k, t in enumerate(d.test.values()))
    assert torch.equal(d.forget.x, d2.forget.x)


# ------------------------------------------------------------------------------------------------ metrics


class SinePlus(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x):
        return torch.sin(x) + self.c


def test_sup_norm_error_on_fixed_functions():
    assert S.sup_norm_error(SinePlus(0.25)) == pytest.approx(0.25, abs=1e-6)
    zero = SinePlus(0.0)
    zero.forward = lambda x: torch.zeros_like(x)  # f = 0: error = max |sin| on the grid
    assert S.sup_norm_error(zero) == pytest.approx(float(torch.sin(sine_grid().double()).abs().max()))
    assert S.sup_norm_error(zero, n=3) == pytest.approx(abs(math.sin(5 * math.pi)), abs=1e-6)


def test_median_central_range_and_selection():
    v10 = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert SEL.central_range(v10) == (3, 8) and SEL.median(v10) == 5.5
    assert SEL.central_range([5, 4, 3, 2, 1]) == (2, 4) and SEL.median([5, 4, 3, 2, 1]) == 3
    assert SEL.mean_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1 / math.sqrt(3)))
    # same mean 3; "narrow" has the smaller central range
    assert SEL.select_config({"wide": [1, 1, 3, 5, 5], "narrow": [0, 3, 3, 3, 6]}) == "narrow"
    assert SEL.select_config({"a": [1.0, 2.0], "b": [0.5, math.inf]}) == "a"
    assert SEL.select_config({"a": [0.2, 0.4], "b": [0.5, 0.6]}, lower_is_better=False) == "b"


def test_pareto_front_and_gt_distance():
    pts = {"a": (0.9, 0.1), "b": (0.8, 0.05), "c": (0.7, 0.2), "d": (0.95, 0.3)}
    assert C.pareto_front(pts) == ["b", "a", "d"]
    assert C.gt_distance((1.0, 0.0), pts, ["b", "a", "d"]) == pytest.approx(math.hypot(0.1, 0.1))


class Fixed(nn.Module):
    """Returns fixed logits per head, whatever the input."""

    def __init__(self, *heads: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.heads = heads

    def forward(self, x):
        out = tuple(h[: len(x)] + self.w for h in self.heads)
        return out if len(out) > 1 else out[0]


def test_erase_metrics_on_fixed_logits():
    y = torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0]])
    test = {c: TensorData(torch.zeros(4, 3, 2, 2), y.clone(), torch.full((4,), -1)) for c in ("gray", "red", "green")}
    cls = torch.nn.functional.one_hot(torch.tensor([0, 1, 5, 3]), 10).float() * 5
    col = torch.tensor([[0.0, 0, 0], [0, 5, 0], [5, 0, 0], [5, 0, 0]])  # sample 1: colour wrong
    m = I.erase_metrics(Fixed(cls, col), test)
    assert m["retain_quality"] == pytest.approx(0.5)  # samples 0 and 3 have both heads right
    p0 = torch.softmax(col.double(), 1)[:, 0]
    err = float(((p0 - 1) ** 2).mean())
    assert m["forget_error_all"] == pytest.approx(err) and m["forget_error_colored"] == pytest.approx(err)


def test_colour_accuracy_on_fixed_logits():
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 1]), 10).float()
    test = {"colour 0": TensorData(torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long), torch.zeros(4)),
            "colour 1": TensorData(torch.zeros(4, 3, 2, 2), torch.ones(4, dtype=torch.long), torch.zeros(4))}
    assert I.colour_accuracy(Fixed(logits), test) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ end to end


def _ctx(tmp_path: Path, seeds=(1, 2)) -> ExperimentContext:
    return ExperimentContext(out=tmp_path / "out", quick=True, seeds=seeds, store=ResultStore(tmp_path),
                             cache=ModelCache(tmp_path / "cache"), device=torch.device("cpu"), protocol="test v1",
                             log=lambda msg: None)


def _resumes(ctx, fn, setting, expected_rows):
    first = fn(ctx, setting)
    rows = ctx.store.rows()
    assert len(rows) == expected_rows and all(r["status"] == "done" for r in rows), \
        [(r["method"], r["error"]) for r in rows if r["status"] != "done"]
    finished = {r["run_key"]: r["finished"] for r in rows}
    second = fn(ctx, setting)
    again = ctx.store.rows()
    assert len(again) == expected_rows and {r["run_key"]: r["finished"] for r in again} == finished
    assert first == second
    return rows, first


def test_poisoning_end_to_end_and_resume(tmp_path):
    grid = {m: {"lr": (1e-3,)} for m in C.SINE_METHODS}
    grid["minnorm-og"] = {"lr": (1e-3,), "reg_coef": (0.5, 1.0), "reg_coef_decay": (0.9,), "num_gd_epochs": (1,),
                          "proj_pd": (1,)}
    s = S.SineSetting("tiny-sine", width=8, poison_steps=50, epochs=(3,), grids={3: grid})
    ctx = _ctx(tmp_path)
    rows, table = _resumes(ctx, S.poisoning, s, expected_rows=9 * 2)
    assert all(math.isfinite(r["metrics"]["sup_norm_error"]) for r in rows)
    mn = [r for r in rows if r["method"] == "minnorm-og"]
    assert all(r["stats"]["jacobian_columns"] == 50 and r["stats"]["projections"] == 2 for r in mn)
    assert "| 3 |" in table and (ctx.out / "minnorm_poisoning.md").read_text() == table
    # every row carries its trial's poisoned-model facts; 50 steps at width 8 do not interpolate (threshold 0.01)
    for r in rows:
        m = r["metrics"]
        assert m["original_steps"] == 50 and m["original_train_mse"] > s.interpolation_mse
        assert m["original_interpolates"] is False
    trial_lines = [line for line in table.splitlines() if line.startswith(("| 1 | 50 |", "| 2 | 50 |"))]
    assert len(trial_lines) == 2 and all("| **no** |" in line for line in trial_lines)
    # every row stores its fit on the coarse grid; the first row run per trial the training points
    for r in rows:
        fit = r["stats"]["fit"]
        assert len(fit["y"]) == S.FIT_POINTS and fit["x_range"] == pytest.approx([-5 * math.pi, 5 * math.pi])
        assert all(v is not None and math.isfinite(v) for v in fit["y"])
    with_data = [r for r in rows if "poisoned_data" in r["stats"]]
    assert sorted(r["seed"] for r in with_data) == [1, 2]
    for r in with_data:
        d, trial = r["stats"]["poisoned_data"], sine_poisoning(r["seed"])
        assert len(d["retain_x"]) == 50 and d["forget_y"] == [1.5] * 5
        assert d["forget_x"] == pytest.approx(trial.forget.x.flatten().tolist(), abs=1e-5)
        assert len(d["original_fit"]["y"]) == S.FIT_POINTS
    from unlearnlab.bench.experiment_plots import poisoning_fits
    from unlearnlab.bench.plots import write_plots

    fits = poisoning_fits(rows)[3]
    assert set(fits["fits"]) == {"mnog/retrain", "minnorm-og", "mnog/gd"} and fits["data"] is not None
    paths = write_plots(ctx.store, tmp_path / "figs")
    assert sorted(p.name for p in paths) == sorted(f"{p.stem}.{e}" for p in paths[:1] for e in ("pdf", "png"))
    assert paths[0].name.startswith("poisoning-fits-test_v1-")
    ctx.store.close()


def _image_grid(p_retain, t):
    return IS.image_grid((1e-3,), (0.1,), (0.1,), (1e-3,), (0.1,), (0.1,), (0.8,), (0.1,), (0.1,), (0,))


@pytest.mark.parametrize("kind", ["erase", "collapse"])
def test_image_experiments_end_to_end_and_resume(tmp_path, kind):
    s = IS.ImageSetting(f"tiny-{kind}", kind, "digits", "bn_cnn", 0.05 if kind == "erase" else 0.1, ((0.05, 1),),
                       _image_grid, train_epochs=1, warm_epochs=1 if kind == "collapse" else 0,
                       methods=("minnorm-og", "mnog/gd"))
    ctx = _ctx(tmp_path, seeds=(1,))
    fn = I.label_erasure if kind == "erase" else I.collapse
    rows, table = _resumes(ctx, fn, s, expected_rows=2 + 2)
    metric = "forget_error_all" if kind == "erase" else "colour_accuracy"
    assert all(metric in r["metrics"] for r in rows)
    assert {r["method"] for r in rows} == {"original", "ground-truth", "minnorm-og", "mnog/gd"}
    mn = next(r for r in rows if r["method"] == "minnorm-og")
    assert mn["stats"]["jacobian_columns"] > 0 and mn["config"]["grad_sample_size"] == 20
    assert "MinNorm-OG" in table
    if kind == "collapse":  # a row of a configuration outside the present grid never enters the table
        key = ctx.store.start(task_key=s.task_key(0.05, 1), protocol="test v1", method="minnorm-og", seed=1,
                              config={**mn["config"], "lr": 0.5}, split_hash="x")
        ctx.store.finish(key, "done", {"colour_accuracy": 1.0}, {}, {})
        assert I.collapse_table(ctx, s) == table and "100.0" not in table
    ctx.store.close()


# ------------------------------------------------------------------------------------------------ quick scale


def test_poisoning_optimizer_matches_plain_adamw():
    """The (fused where available) AdamW of the poisoning loop follows the plain per-tensor AdamW."""
    data = sine_poisoning(3)
    s = S.SineSetting("tiny-sine", width=16, poison_steps=30, epochs=(1,), grids={})
    a, b = S._sine_model(s, 3, torch.device("cpu")), S._sine_model(s, 3, torch.device("cpu"))
    S.train_poisoned(a, data, 30)
    opt = torch.optim.AdamW(b.parameters(), lr=1e-3, weight_decay=0.01)
    d = data.all
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(b(d.x), d.y).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5, rtol=1e-4)


def test_poisoning_stops_at_the_first_check_that_interpolates():
    data = sine_poisoning(2)
    s = S.SineSetting("tiny-sine", width=16, poison_steps=400, epochs=(1,), grids={})
    checks: list[tuple[int, float]] = []
    model = S._sine_model(s, 2, torch.device("cpu"))
    full = S.train_poisoned(model, data, 400, check_every=40, on_check=lambda k, e: checks.append((k, e["train_mse"])))
    assert full["steps"] == 400 and [k for k, _ in checks] == list(range(40, 401, 40))
    assert full["train_mse"] == pytest.approx(checks[-1][1])
    # a threshold between the 4th and the 5th check's MSE (the MSE falls over these checks) stops at step 200
    assert checks[4][1] < checks[3][1]
    stop = (checks[3][1] + checks[4][1]) / 2
    again = S._sine_model(s, 2, torch.device("cpu"))
    out = S.train_poisoned(again, data, 400, stop_mse=stop, check_every=40)
    assert out["steps"] == 200 and out["train_mse"] == pytest.approx(checks[4][1]) and out["train_mse"] <= stop
    # checks do not perturb training: the stopped model equals 200 uninterrupted steps
    plain = S._sine_model(s, 2, torch.device("cpu"))
    S.train_poisoned(plain, data, 200, check_every=200)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), plain.parameters()))


def test_poisoned_model_flag_follows_the_threshold_and_stop_is_part_of_the_cache_identity(tmp_path):
    ctx = _ctx(tmp_path, seeds=(1,))
    data = sine_poisoning(1)
    loose = S.SineSetting("tiny-sine", width=8, poison_steps=60, epochs=(1,), grids={}, interpolation_mse=10.0,
                          stop_at_interpolation=True, check_every=20)
    _, facts = S.poisoned_model(ctx, loose, data)
    assert facts["steps"] == 20 and facts["interpolates"] is True  # any model's MSE is below 10
    strict = S.SineSetting("tiny-sine", width=8, poison_steps=60, epochs=(1,), grids={}, interpolation_mse=1e-6,
                           stop_at_interpolation=True, check_every=20)
    _, facts = S.poisoned_model(ctx, strict, data)
    assert facts["steps"] == 60 and facts["interpolates"] is False  # a new identity: trained, not read from cache
    assert loose.task_key(1) != strict.task_key(1) != S.SineSetting.full().task_key(1)


def test_quick_scales_are_the_documented_ones():
    s = S.SineSetting.quick()
    assert (s.width, s.poison_steps, s.epochs, s.n_pert) == (64, 100_000, (10, 100), 50)
    assert s.stop_mse == s.interpolation_mse == S.INTERPOLATION_MSE == 0.01 and s.check_every == 500
    full = S.SineSetting.full()
    assert (full.width, full.poison_steps, full.epochs, full.stop_mse) == (300, 100_000, (10, 100, 1000), None)
    runs = {t: sum(len(C.grid_configs(s.grids[t][m])) for m in s.methods) for t in s.epochs}
    assert runs == {10: 228, 100: 138} and set(s.methods) == set(C.SINE_METHODS)
    e, c = IS.erase_setting(True), IS.collapse_setting(True)
    assert e.settings == ((0.05, 5),) and c.settings == ((0.05, 10), (0.2, 10))
    assert e.methods == c.methods == C.IMAGE_METHODS
    assert sum(len(C.grid_configs(e.grids(0.05, 5)[m])) for m in e.methods) == 84
    assert sum(len(C.grid_configs(c.grids(p, t)[m])) for p, t in c.settings for m in c.methods) == 168


def _subset_of_full(quick: C.Grid, full: C.Grid) -> None:
    assert quick.keys() == full.keys()
    for method, keys in quick.items():
        assert keys.keys() == full[method].keys(), method  # no active hyperparameter dropped
        for key, values in keys.items():
            assert set(values) <= set(full[method][key]), (method, key, values)


def test_quick_grids_search_only_and_these_of_the_papers_values():
    quick, full = S.SineSetting.quick(), S.SineSetting.full()
    for t in quick.epochs:  # the paper's grids of these T, whole
        assert quick.grids[t] == full.grids[t]
    for q, f in ((IS.erase_setting(True), IS.erase_setting(False)), (IS.collapse_setting(True),
                                                                      IS.collapse_setting(False))):
        for p_retain, t in q.settings:
            g, paper = q.grids(p_retain, t), f.grids(p_retain, t)
            _subset_of_full(g, paper)
            for method in ("minnorm-og", "mnog/ridge"):  # every γ_reg of the paper
                assert set(g[method]["reg_coef_decay"]) == set(paper[method]["reg_coef_decay"]) == {0.2, 0.4, 0.8}
            for method in ("minnorm-og", "mnog/scrub"):  # every T_GD of the paper at this T
                assert g[method]["num_gd_epochs"] == paper[method]["num_gd_epochs"]
