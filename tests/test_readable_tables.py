"""Tables a reader can read, rendered from a results database: caption in words, legend, the noise-floor row and its
significance marks, the attack spread, one-seed rows without ±, setting labels, RTE ratios only between rows timed
alike; the trade-off plot's bars; `unlearnlab report` on a DB; and a small grid that fills all of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from unlearnlab.bench import plots
from unlearnlab.bench.captions import method_labels
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.plan import NOISE_FLOOR
from unlearnlab.bench.report import render_all, summarize
from unlearnlab.bench.runner import run_grid
from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app

PROTOCOL = "digits-random10 v2 quick"
TASK = f"{PROTOCOL}|digits|mlp|random:0.1|recipe=x|default"
SPLIT = "ab" * 32
TIMING = {"device": "cpu", "warmup_steps": 3, "precision": "fp32"}


def _add(store: ResultStore, method: str, seed: int, metrics: dict, rte: float = 1.0, config: dict | None = None,
         timing: dict | None = None, env: dict | None = None) -> None:
    key = store.start(task_key=TASK, protocol=PROTOCOL, method=method, seed=seed,
                      config=config or {"method": method, "hparams": {"lr": 0.1}}, split_hash=SPLIT,
                      env=env or {"device": "cpu"})
    defs = {"mia": "mia_efficacy_svc_conf"}
    store.finish(key, "done", metrics, defs, {"rte_minutes": rte, "timing": timing or TIMING,
                                              "evaluation": {"attack_draws": 20}})


def _m(ua: float, mia: float, attack: float | None = None) -> dict:
    out = {"ua": ua, "ra": 99.0, "ta": 95.0, "mia": mia, "mia_efficacy_svc_conf": mia}
    if attack is not None:
        out["mia_efficacy_svc_conf_attack_std"] = attack
    return out


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path) as s:
        yield s


@pytest.fixture
def grid_rows(store: ResultStore) -> list[dict]:
    """Retrain and its noise floor differ by ±1 in UA per seed (τ = 1); ft is 5 above (well above 2·1/√2);
    salun is 1.5 above in UA but its MIA gap of 10 hides in an attack spread of 20."""
    for seed, (r_ua, f_ua) in {1: (10.0, 11.0), 2: (12.0, 11.0)}.items():
        _add(store, "retrain", seed, _m(r_ua, 20.0, 1.0), rte=2.0, config={"method": "retrain", "hparams": {}})
        _add(store, NOISE_FLOOR, seed, _m(f_ua, 20.0, 1.0), rte=2.0, config={"method": NOISE_FLOOR, "hparams": {}})
        _add(store, "ft", seed, _m(r_ua + 5, 20.0, 1.0), rte=0.5)
        _add(store, "salun", seed, _m(r_ua + 1.5, 30.0, 20.0), rte=1.0)
    return store.rows()


def _body(markdown: str) -> dict[str, list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")][2:]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return {row[0]: row for row in cells}


def test_noise_floor_row_marks_gaps_above_noise_and_attack_spread_hides_mia_gaps(grid_rows):
    md = render_all(grid_rows)
    body = _body(md.split("\n\n- ")[0])
    assert list(body)[:2] == ["retrain", "retrain (independent seeds)"]
    assert body["retrain (independent seeds)"][1] == "11.00±0.00 (0.00)"  # its gaps are the floor, never marked
    assert body["ft"][1] == "16.00±1.41 (5.00*)"  # 5 > 2·1/√2
    assert body["salun"][1] == "12.50±1.41 (1.50*)"  # 1.5 > 1.41
    assert body["salun"][4] == "30.00±0.00 [±20.00] (10.00)"  # 10 < 2·sqrt(0² + 20²)/√2: attack noise
    assert body["ft"][4] == "20.00±0.00 [±1.00] (0.00)"
    assert "[±a] = std of the MIA over K = 20 resampled attack sets" in md
    assert "* = gap above noise" in md and "retrain (independent seeds): a second Retrain" in md


def test_caption_names_protocol_size_dataset_model_forget_and_seeds(grid_rows):
    first = render_all(grid_rows).splitlines()[0]
    assert first.startswith("Protocol digits-random10 v2 quick (--quick size) · digits / mlp, 30 ep · forget random "
                            "10 % · one original model per seed · seeds 1–2 · MIA = mia_efficacy_svc_conf · cpu")


def test_single_seed_rows_print_no_plus_minus(store):
    _add(store, "retrain", 1, _m(10.0, 20.0))
    _add(store, "ft", 1, _m(14.0, 22.0))
    md = render_all(store.rows())
    body = _body(md)
    assert body["ft"][1] == "14.00 (4.00)" and "±" not in "".join(body["ft"][1:5])
    assert "Cells: the one seed's value (one seed: no ±)" in md
    assert "No independent Retrain row" in md


def test_rows_of_one_method_are_labelled_by_their_differing_settings(store):
    _add(store, "retrain", 1, _m(10.0, 20.0), config={"method": "retrain", "hparams": {}})
    _add(store, "salun", 1, _m(11.0, 20.0), config={"method": "salun", "hparams": {"lr": 0.01, "epochs": 2}})
    _add(store, "salun", 1, _m(12.0, 20.0), config={"method": "salun", "hparams": {"lr": 0.02, "epochs": 2}})
    assert sorted(method_labels(store.rows()).values()) == ["retrain", "salun (lr=0.01)", "salun (lr=0.02)"]
    assert [s.method for s in summarize(store.rows())] == ["retrain", "salun (lr=0.01)", "salun (lr=0.02)"]


@pytest.mark.parametrize(("timing", "env", "reason"), [
    ({**TIMING, "device": "cuda"}, {"device": "cuda:0"}, "timed on cuda, Retrain on cpu"),
    ({**TIMING, "precision": "bf16"}, None, "precision bf16 vs Retrain's fp32"),
    ({**TIMING, "warmup_steps": 0}, None, "warm-up 0 vs Retrain's 3 steps"),
])
def test_rte_ratio_only_between_rows_timed_alike(store, timing, env, reason):
    _add(store, "retrain", 1, _m(10.0, 20.0), rte=2.0)
    _add(store, "ft", 1, _m(12.0, 20.0), rte=1.0)
    _add(store, "rl", 1, _m(12.0, 20.0), rte=1.0, timing=timing, env=env)
    summaries = {s.method: s for s in summarize(store.rows())}
    assert summaries["ft"].rte_ratio == pytest.approx(0.5) and summaries["ft"].rte_note is None
    assert summaries["rl"].rte_ratio is None and summaries["rl"].rte_note == reason
    md = render_all(store.rows())
    assert _body(md)["rl"][6] == "1.00 (n/a)" and f"RTE n/a: {reason}." in md


def test_retrain_without_a_warmup_record_gives_no_ratio(store):
    _add(store, "retrain", 1, _m(10.0, 20.0), rte=2.0, timing={"device": "cpu"})
    _add(store, "ft", 1, _m(12.0, 20.0), rte=1.0)
    (ft,) = [s for s in summarize(store.rows()) if s.method == "ft"]
    assert ft.rte_ratio is None and "no warm-up record" in ft.rte_note


def test_absolute_gap_error_bars_stop_at_zero(grid_rows, monkeypatch, tmp_path):
    seen = []
    original = Figure.subplots

    def spy(self, *args, **kwargs):
        ax = original(self, *args, **kwargs)
        real = ax.errorbar

        def errorbar(x, y, *a, **kw):
            seen.append((y, kw.get("yerr")))
            return real(x, y, *a, **kw)

        ax.errorbar = errorbar
        return ax

    monkeypatch.setattr(Figure, "subplots", spy)
    paths = plots.tradeoff_plot(grid_rows, tmp_path / "t")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    at_zero = [err for y, err in seen if y == 0.0]  # Retrain (seed std √2) and the noise floor (std 0)
    assert [[0.0], [pytest.approx(2 ** 0.5)]] in at_zero  # nothing below 0
    assert dict(seen)[5.0] == [[pytest.approx(2 ** 0.5)], [pytest.approx(2 ** 0.5)]]  # far from 0: symmetric


def test_overlapping_markers_are_nested_by_size():
    pts = [{"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 1.0}, {"x": 1.0, "y": 2.0}]
    sizes = plots._overlap_sizes(pts)
    assert sizes[0] > sizes[1] > sizes[3] and sizes[2] == 7.0


def test_report_cli_renders_everything_from_the_database(tmp_path: Path, cache_dir: Path):
    """A tiny grid (digits, 3 epochs, 2 seeds, 2 U-LiRA shadows) through the runner, then `unlearnlab report`."""
    out = tmp_path / "run"
    config = RunConfig(methods=("retrain", "ft", "rl"), seeds=(1, 2), out=str(out), recipe={"epochs": 3},
                       ulira_shadows=2, attack_draws=3, original_per_seed=True, threads=1,
                       mias=("mia_efficacy_svc_conf", "mia_lr_entropy_member_rate", "mia_loss_lr_cv"))
    run_grid(config, log=lambda text: None)
    shadows = sorted(cache_dir.glob("ulira-shadow-*.pt"))
    originals = sorted(cache_dir.glob("original-*.pt"))
    assert len(shadows) == 2 and len(originals) == 2  # one original per seed, shadows shared by both seeds
    with ResultStore(out) as store:
        rows = store.rows()
    ft = next(r for r in rows if r["method"] == "ft")
    new = {"ulira_balanced_accuracy", "ulira_tpr_at_1pct_fpr", "mia_efficacy_svc_conf_attack_std"}
    assert new <= set(ft["metrics"])
    assert ft["stats"]["timing"] == TIMING and ft["stats"]["eval_seconds"] > 0
    assert ft["stats"]["evaluation"]["ulira"]["n_shadows"] == 2
    floor = next(r for r in rows if r["method"] == NOISE_FLOOR)
    assert floor["stats"]["timing"]["warmup_steps"] == 3 and "gap" in floor["metrics"]
    result = CliRunner().invoke(app, ["report", str(out)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Custom grid digits-random10 v1 · digits / mlp · forget random 10 % · seeds 1–2" in text
    assert "retrain (independent seeds)" in text and "(1.00×)" in text
    assert "U-LiRA (K = 2 shadow models; 130 forget examples" in text and "U-LiRA bal. acc." in text
    plot = sorted((out / "plots").glob("tradeoff-*.png"))
    assert plot, "the run draws its trade-off figure"
    run_grid(config, log=lambda text: None)  # a second run trains nothing: same shadow files
    assert sorted(cache_dir.glob("ulira-shadow-*.pt")) == shadows
