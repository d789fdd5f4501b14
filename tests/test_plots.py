"""Figures: sensitivity curves, the trade-off plot with its Pareto front, ``write_plots`` and ``unlearnlab plots``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import unlearnlab.cli_tune  # noqa: F401  (registers `plots`)
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
