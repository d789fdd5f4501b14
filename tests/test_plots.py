"""Figures: sensitivity curves, the trade-off plot with its Pareto front, ``write_plots`` and ``unlearnlab plots``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unlearnlab.bench.plots import pareto_front, sensitivity_plot, tradeoff_plot, tradeoff_points, write_plots
from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app
from unlearnlab.errors import UnlearnlabError

TASK = "digits|mlp|random:0.1|recipe=abc|default"
PROTOCOL = "digits-random10 v1"
#: (method, seed) → UA, RA, TA, MIA
METRICS = {
    "retrain": [(5.0, 100.0, 95.0, 10.0), (6.0, 100.0, 94.0, 11.0)],
    "ft": [(1.0, 100.0, 96.0, 3.0), (2.0, 100.0, 95.0, 4.0)],  # small TA gain, big UA gap
    "ga": [(5.0, 95.0, 90.0, 9.0), (6.5, 94.0, 89.0, 10.0)],  # matches UA, poor TA
    "rl": [(4.0, 99.0, 94.0, 12.0), (5.0, 99.0, 93.0, 13.0)],  # UA gap 1, TA 93.5
    "bad": [(0.5, 99.0, 89.0, 2.0), (0.5, 99.0, 88.0, 2.0)],  # dominated (worse UA gap and TA than rl)
}


def _fill(out: Path) -> None:
    with ResultStore(out) as store:
        for method, per_seed in METRICS.items():
            for seed, (ua, ra, ta, mia) in enumerate(per_seed, start=1):
                key = store.start(task_key=TASK, protocol=PROTOCOL, method=method, seed=seed,
                                  config={"method": method}, split_hash=f"split{seed}", env={"device": "cpu"})
                metrics = {"ua": ua, "ra": ra, "ta": ta, "mia": mia, "mia_efficacy_svc_conf": mia}
                store.finish(key, "done", metrics, {"mia": "mia_efficacy_svc_conf"}, {"rte_minutes": 0.1})
        key = store.start(task_key="other", protocol="digits-class3 v1", method="ga", seed=1, config={},
                          split_hash="s", env={"device": "cpu"})  # a group without Retrain: skipped
        store.finish(key, "diverged", {}, {}, {})


def test_pareto_front_on_toy_points():
    # (gap: lower better, TA: higher better)
    points = [(0.0, 90.0), (1.0, 95.0), (2.0, 94.0), (3.0, 97.0), (3.0, 97.0), (0.5, 89.0), (float("nan"), 99.0)]
    assert pareto_front(points) == [0, 1, 3, 4]
    assert pareto_front([(1.0, 1.0), (2.0, 2.0)], minimize=(True, True)) == [0]
    assert pareto_front([(1.0, 1.0), (2.0, 2.0)], minimize=(False, False)) == [1]
    assert pareto_front([]) == []


def _files_ok(paths: list[Path]) -> None:
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        assert p.stat().st_size > 1000
    png = next(p for p in paths if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert next(p for p in paths if p.suffix == ".pdf").read_bytes()[:5] == b"%PDF-"


def test_sensitivity_plot_numeric_categorical_and_diverged(tmp_path: Path):
    trials = [{"number": i, "value": v, "ua": 5.0 + i, "params": {"lr": lr, "mode": m}}
              for i, (v, lr, m) in enumerate([(3.0, 1e-4, "a"), (1.0, 1e-3, "b"), (2.5, 1e-2, "a"),
                                              (math.inf, 1e-1, "b")])]
    _files_ok(sensitivity_plot(trials, "lr", "value", tmp_path / "lr.png"))
    _files_ok(sensitivity_plot(trials, "mode", "ua", tmp_path / "mode"))
    with pytest.raises(UnlearnlabError, match="No trial has hyperparameter 'beta'"):
        sensitivity_plot(trials, "beta", "value", tmp_path / "beta")


def test_tradeoff_points_and_plot(tmp_path: Path):
    _fill(tmp_path)
    with ResultStore(tmp_path) as store:
        rows = store.rows(protocol=PROTOCOL)
    points = {p["method"]: p for p in tradeoff_points(rows)}
    assert points["retrain"]["y"] == 0.0 and points["retrain"]["is_reference"]
    assert points["ft"]["y"] == pytest.approx(4.0) and points["ft"]["x"] == pytest.approx(95.5)
    rivals = [m for m in points if m != "retrain"]
    front = pareto_front([(points[m]["y"], points[m]["x"]) for m in rivals])
    assert [rivals[i] for i in front] == ["ga", "rl", "ft"]  # "bad" is dominated by rl
    _files_ok(tradeoff_plot(rows, tmp_path / "trade"))
    _files_ok(tradeoff_plot(rows, tmp_path / "trade-ua", y="ua"))


def test_write_plots_and_cli(tmp_path: Path):
    _fill(tmp_path)
    with ResultStore(tmp_path) as store:
        paths = write_plots(store, tmp_path)
    _files_ok(paths)  # one group: the class-3 group has no Retrain
    assert paths[0].parent == tmp_path / "plots" and paths[0].name.startswith("tradeoff-digits-random10_v1-")
    result = CliRunner().invoke(app, ["plots", str(tmp_path), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "figs" / "plots").glob("tradeoff-*.p*"))) == 2
    missing = CliRunner().invoke(app, ["plots", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "No results.sqlite" in " ".join(missing.output.split())


# ----------------------------------------------------------------------------- per-example ε histograms
def _fq(hist_at: dict[int, int], eps_bar: int = 2, n_models: int = 8, f: float = 0.4) -> dict:
    hist = [0] * 100
    for j, c in hist_at.items():
        hist[j] = c
    return {"definition": "forget_score_eps", "F": f, "eps_bar": eps_bar, "n_models": n_models,
            "eps_histogram": {"bucket_width": 0.5, "upper": 50.0, "counts": hist}}


def test_eps_histograms_from_forget_quality_rows(tmp_path: Path):
    from unlearnlab.bench.plots import eps_histogram_plot

    _fill(tmp_path)
    with ResultStore(tmp_path) as store:
        for method, hist in (("retrain", {0: 100, 1: 20}), ("ft", {0: 30, 1: 40, 3: 20, 99: 30})):
            row = next(r for r in store.rows(protocol=PROTOCOL) if r["method"] == method and r["seed"] == 1)
            store.finish(row["run_key"], "done", row["metrics"], row["definitions"],
                         {**row["stats"], "forget_quality": _fq(hist)})
        rows = store.rows(protocol=PROTOCOL)
        _files_ok(eps_histogram_plot(rows, tmp_path / "eps"))
        paths = write_plots(store, tmp_path)
    assert sorted(p.name.split("-")[0] + p.suffix for p in paths) == [
        "eps.pdf", "eps.png", "tradeoff.pdf", "tradeoff.png"]
    with pytest.raises(UnlearnlabError, match="forget-quality"):
        eps_histogram_plot([r for r in rows if r["method"] == "ga"], tmp_path / "none")


def test_eps_histograms_from_a_real_forget_quality_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "c.yaml"
    config.write_text("recipe: {epochs: 3}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--methods", "ft", "--seeds", "1",
                                      "--forget-quality", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with ResultStore(out) as store:
        rows = store.rows()
        assert any("forget_quality" in r["stats"] for r in rows)
        paths = write_plots(store, out)
    names = [p.name for p in paths]
    assert any(n.startswith("eps-hist-") and n.endswith(".png") for n in names)
    assert any(n.startswith("eps-hist-") and n.endswith(".pdf") for n in names)


# ----------------------------------------------------------------------------- certified budget curves
def _certified_rows(tmp_path: Path) -> Path:
    """Rows shaped as experiments/certified_budget.py stores them: 2 ε, 3 budgets, 2 configs, 2 seed pairs."""
    out = tmp_path / "cert"
    with ResultStore(out) as store:
        for split_seed in (142, 230):
            task_key = f"certified-budget v1|certified-digits-random10|digits_tiny|split={split_seed}|abc"
            for budget in (1, 3, 10):
                cells = [("retrain", {}, None)] + [
                    (m, {"C": c}, eps) for eps in (1.0, 10.0) for m in ("certified-gradclip", "output-perturbation")
                    for c in (0.1, 1.0)]
                for method, hp, eps in cells:
                    config = {"method": method, "hparams": hp, "epsilon": eps, "epochs": budget,
                              "split_seed": split_seed, "global_seed": 1234}
                    key = store.start(task_key=task_key, protocol="certified-digits-random10 v1", method=method,
                                      seed=1234, config=config, split_hash=f"s{split_seed}")
                    base = 90.0 if eps is None else 60.0 + 2 * eps
                    good = hp.get("C") == 1.0  # the val-selected config
                    test = base + budget + (5.0 if good else 0.0) + (split_seed - 186) / 44
                    val = test + (1.0 if good else -1.0)
                    store.finish(key, "done", {"test_acc": test, "val_acc": val, "ua": 10.0, "ra": 95.0,
                                               "cert_epsilon": eps, "cert_delta": None if eps is None else 1e-5},
                                 {}, {})
    return out


def test_certified_budget_points_select_by_val(tmp_path: Path):
    from unlearnlab.bench.experiment_plots import certified_budget_plot, certified_budget_points

    out = _certified_rows(tmp_path)
    with ResultStore(out) as store:
        rows = store.rows()
        points = certified_budget_points(rows)
        paths = write_plots(store, tmp_path / "figs")
    assert set(points) == {("retrain", None), *((m, e) for m in ("certified-gradclip", "output-perturbation")
                                                for e in (1.0, 10.0))}
    gc = points[("certified-gradclip", 10.0)]
    assert [p["E"] for p in gc] == [1, 3, 10] and all(p["hparams"] == {"C": 1.0} and p["n"] == 2 for p in gc)
    assert gc[0]["test"] == pytest.approx(60 + 20 + 1 + 5)
    assert gc[0]["test_ci"] == pytest.approx(1.96 * 1.0 / math.sqrt(2))  # ±1 around the mean, ddof 0
    assert [p["test"] for p in points[("retrain", None)]] == pytest.approx([91.0, 93.0, 100.0])
    # no trade-off figure (the rows carry test_acc, not TA): one certified-budget figure for both split seeds
    assert sorted(p.name for p in paths) == ["certified-budget-certified-digits-random10_v1.pdf",
                                             "certified-budget-certified-digits-random10_v1.png"]
    _files_ok(certified_budget_plot(rows, tmp_path / "budget"))
    with pytest.raises(UnlearnlabError, match="certified"):
        certified_budget_plot([r for r in rows if r["method"] == "retrain"], tmp_path / "none")


def test_certified_budget_plot_on_the_experiment_rows(tmp_path: Path, monkeypatch):
    import dataclasses

    import torch

    from unlearnlab.bench.cache import ModelCache
    from unlearnlab.experiments import ExperimentContext
    from unlearnlab.experiments import certified_budget as cb

    tiny = dataclasses.replace(cb.QUICK, epsilons=(1.0,), budgets=(1, 2), grids={**cb.QUICK_GRIDS,
                               "certified-modelclip": ()}, original_epochs=3)
    monkeypatch.setattr(cb, "QUICK", tiny)
    with ResultStore(tmp_path / "out") as store:
        cb.run(ExperimentContext(out=tmp_path / "out", quick=True, seeds=(), store=store,
                                 cache=ModelCache(tmp_path / "cache"), device=torch.device("cpu"),
                                 protocol="certified-budget"))
        paths = write_plots(store, tmp_path / "out")
    _files_ok(paths)
    assert paths[0].name.startswith("certified-budget-")
