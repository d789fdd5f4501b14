"""Results store (SQLite, atomic, resumable) and paper-style report tables on hand-computed toy rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from unlearnlab.bench.report import (
    CSV_COLUMNS,
    header_line,
    render_all,
    summarize,
    to_csv,
    to_latex,
    to_markdown,
    to_rich_table,
    write_reports,
)
from unlearnlab.bench.store import ResultStore, config_hash, run_key

PROTOCOL = "digits-random10 v1"
TASK = "digits|mlp|random:0.1|digits-random10 v1"
SPLIT = "0123456789abcdef" * 4
ENV = {"device": "cpu", "unlearnlab": "0.1.0"}
DEFS = {"ua": "ua", "ra": "ra", "ta": "ta", "mia": "mia_efficacy_svc_conf"}
TIMING = {"device": "cpu", "warmup_steps": 3, "precision": "fp32"}


def _start(store: ResultStore, method: str, seed: int, **kw) -> str:
    identity = {
        "task_key": TASK,
        "protocol": PROTOCOL,
        "method": method,
        "seed": seed,
        "config": {"lr": 0.1},
        "split_hash": SPLIT,
        "env": ENV,
    } | kw
    return store.start(**identity)


def _add(
    store: ResultStore, method: str, seed: int, metrics: dict, rte: float, status: str = "done", **kw
) -> str:
    defs = kw.pop("definitions", DEFS)
    stats = {"rte_minutes": rte, "optimizer_steps": 10, "timing": kw.pop("timing", TIMING), **kw.pop("stats", {})}
    key = _start(store, method, seed, **kw)
    store.finish(key, status, metrics, defs, stats)
    return key


class _CommitHook:
    """Connection proxy that calls ``hook`` right before every COMMIT (to act mid-transaction)."""

    def __init__(self, conn, hook) -> None:
        self._conn, self._hook = conn, hook

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self._hook()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path) as s:
        yield s


# --- store -----------------------------------------------------------------------------------------------


def test_hashes_are_canonical_and_short():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": (1, 2), "a": np.int64(1)})
    assert len(config_hash({})) == 16 and config_hash({"a": 1}) != config_hash({"a": 2})
    assert run_key(TASK, "ft", "x", 1) == run_key(TASK, "ft", "x", np.int64(1))
    assert run_key(TASK, "ft", "x", 1) != run_key(TASK, "ft", "x", 2)


def test_round_trip(store: ResultStore, tmp_path: Path):
    assert store.path == tmp_path / "results.sqlite"
    key = _start(store, "ft", 1)
    assert key == run_key(TASK, "ft", config_hash({"lr": 0.1}), 1)
    row = store.get(key)
    assert row["status"] == "running" and row["config"] == {"lr": 0.1} and row["env"] == ENV
    assert row["metrics"] == {} and row["finished"] is None
    store.finish(key, "done", {"ua": np.float32(5.5)}, DEFS, {"rte_minutes": 0.25, "forward_samples": 130})
    row = store.get(key)
    assert row["status"] == "done" and row["metrics"] == {"ua": 5.5} and row["definitions"] == DEFS
    assert row["stats"]["forward_samples"] == 130 and row["finished"] >= row["created"]
    assert store.is_complete(key) and store.get("nope") is None
    assert [r["run_key"] for r in store.rows(protocol=PROTOCOL, task_key=TASK, status="done")] == [key]
    assert store.rows(protocol="other") == [] and store.rows(status="running") == []
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_restart_overwrites_without_duplicates(store: ResultStore):
    key = _add(store, "ft", 1, {"ua": 1.0}, 0.1)
    other = _add(store, "ga", 1, {"ua": 2.0}, 0.1)
    assert _start(store, "ft", 1) == key
    assert len(store.rows()) == 2
    row = store.get(key)
    assert row["status"] == "running" and row["metrics"] == {} and not store.is_complete(key)
    assert [r["run_key"] for r in store.rows()] == [key, other]  # first-start order survives a re-run


def test_running_and_failed_rows_are_incomplete(store: ResultStore):
    running = _start(store, "ft", 1)
    failed = _add(store, "ft", 2, {}, 0.0, status="failed")
    diverged = _add(store, "ft", 3, {}, 0.0, status="diverged")
    assert not store.is_complete(running) and not store.is_complete(failed) and store.is_complete(diverged)
    assert store.delete_incomplete() == 2
    assert [r["run_key"] for r in store.rows()] == [diverged]


def test_finish_rejects_unknown_run_and_open_status(store: ResultStore):
    with pytest.raises(ValueError, match="start"):
        store.finish("0" * 16, "done", {}, {}, {})
    key = _start(store, "ft", 1)
    with pytest.raises(ValueError, match="not final"):
        store.finish(key, "running", {}, {}, {})


def test_killed_process_leaves_running_row_that_rerun_overwrites(tmp_path: Path):
    crashed = ResultStore(tmp_path)
    key = _start(crashed, "ft", 1)  # the process dies here: no finish, no close
    with ResultStore(tmp_path) as store:
        (row,) = store.rows()
        assert row["run_key"] == key and row["status"] == "running" and not store.is_complete(key)
        assert _add(store, "ft", 1, {"ua": 3.0}, 0.2) == key
        assert len(store.rows()) == 1 and store.is_complete(key)
    crashed.close()


def test_finish_is_atomic(store: ResultStore, monkeypatch: pytest.MonkeyPatch):
    key = _add(store, "ft", 1, {"ua": 1.0}, 0.5)

    def crash() -> None:
        raise RuntimeError("killed before commit")

    monkeypatch.setattr(store, "_conn", _CommitHook(store._conn, crash))
    with pytest.raises(RuntimeError, match="killed"):
        store.finish(key, "failed", {"ua": 99.0}, {}, {"rte_minutes": 9.0}, error="boom")
    monkeypatch.undo()
    row = store.get(key)
    assert row["status"] == "done" and row["metrics"] == {"ua": 1.0} and row["error"] is None
    assert row["stats"]["rte_minutes"] == 0.5
    store.finish(key, "diverged", {}, {}, {})  # the connection is not left inside a transaction
    assert store.get(key)["status"] == "diverged"


def test_concurrent_reader_sees_committed_state_only(store: ResultStore, monkeypatch: pytest.MonkeyPatch):
    key = _start(store, "ft", 1)
    seen = []
    with ResultStore(store.path) as reader:
        monkeypatch.setattr(store, "_conn", _CommitHook(store._conn, lambda: seen.append(reader.get(key))))
        store.finish(key, "done", {"ua": 1.0, "ra": 2.0}, DEFS, {"rte_minutes": 0.1})
        (mid,) = seen
        assert mid["status"] == "running" and mid["metrics"] == {}  # not blocked, no partial row
        after = reader.get(key)
        assert after["status"] == "done" and after["metrics"] == {"ua": 1.0, "ra": 2.0}


# --- report ----------------------------------------------------------------------------------------------


def _m(ua: float, ra: float, ta: float, mia: float) -> dict:
    return {"ua": ua, "ra": ra, "ta": ta, "mia": mia}


@pytest.fixture
def toy_rows(store: ResultStore) -> list[dict]:
    """ft before retrain (Retrain must still come first); ga on a seed Retrain lacks; rl diverged."""
    _add(store, "ft", 1, _m(4, 99, 89, 10), 0.3)
    _add(store, "ft", 2, _m(6, 97, 87, 14), 0.9)
    _add(store, "retrain", 1, _m(10, 100, 90, 20), 2.0)
    _add(store, "retrain", 2, _m(12, 100, 92, 24), 4.0)
    _add(store, "ga", 3, _m(21, 90, 81, 42), 1.5)
    _add(store, "rl", 1, {}, 0.1, status="diverged")
    _add(store, "rl", 2, {}, 0.1, status="diverged")
    return store.rows()


def _table(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


def test_markdown_cells_match_hand_computation(toy_rows: list[dict]):
    md = to_markdown(summarize(toy_rows), header_line(toy_rows))
    assert md.splitlines()[0] == (
        "Custom grid digits-random10 v1 · digits / mlp · forget random 10 % · seeds 1–3 · MIA = mia_efficacy_svc_conf"
        " · cpu · split 01234567"
    )
    head, rule, *body = _table(md)
    assert head == ["Method", "UA", "RA", "TA", "MIA-Efficacy", "Avg.Gap ↓", "RTE (min)"]
    assert set("".join(rule)) == {"-"}
    # Retrain: means 11, 100, 91, 22; sample stds √2, 0, √2, √8; RTE (2 + 4)/2 = 3.
    assert body[0] == [
        "retrain",
        "11.00±1.41",
        "100.00±0.00",
        "91.00±1.41",
        "22.00±2.83",
        "0.00",
        "3.00 (1.00×)",
    ]
    # ft: means 5, 98, 88, 12 -> gaps 6, 2, 3, 10; Gap_1 = (6+1+1+10)/4 = 4.5, Gap_2 = (6+3+5+10)/4 = 6.0
    # -> 5.25 ± √1.125 = 1.06; RTE 0.6 = 0.2 × 3.
    assert body[1] == [
        "ft",
        "5.00±1.41 (6.00)",
        "98.00±1.41 (2.00)",
        "88.00±1.41 (3.00)",
        "12.00±2.83 (10.00)",
        "5.25±1.06",
        "0.60 (0.20×)",
    ]
    # ga: seed 3 has no Retrain -> gap of means (10 + 10 + 10 + 20)/4 = 12.5, unmatched; one seed: no ±.
    assert body[2] == [
        "ga",
        "21.00 (10.00)",
        "90.00 (10.00)",
        "81.00 (10.00)",
        "42.00 (20.00)",
        "12.50 (unmatched)",
        "1.50 (0.50×)",
    ]
    assert body[3] == ["rl", "diverged", "diverged", "diverged", "diverged", "diverged", "–"]


def test_summary_fields(toy_rows: list[dict]):
    retrain, ft, ga, rl = summarize(toy_rows)
    assert retrain.is_reference and retrain.metrics["ua"].gap is None and retrain.avg_gap == 0.0
    assert ft.n_seeds == 2 and ft.seeds == (1, 2) and ft.matched
    assert ft.metrics["mia"].gap == pytest.approx(10.0) and ft.avg_gap == pytest.approx(5.25)
    assert ft.avg_gap_std == pytest.approx(np.sqrt(1.125)) and ft.rte_ratio == pytest.approx(0.2)
    assert not ga.matched and ga.avg_gap == pytest.approx(12.5)
    assert rl.status == "diverged" and rl.n_seeds == 0 and rl.status_counts == {"diverged": 2}
    assert summarize(toy_rows, ddof=0)[1].avg_gap_std == pytest.approx(0.75)


def test_partially_failed_method_is_labelled(store: ResultStore):
    _add(store, "retrain", 1, _m(10, 100, 90, 20), 1.0)
    _add(store, "ft", 1, _m(4, 99, 89, 10), 0.5)
    _start(store, "ft", 2)
    ft = _table(render_all(store.rows()))[3]  # Gap_1 = (6 + 1 + 1 + 10)/4 = 4.5, one seed: no ±
    assert ft[0] == "ft (1 running)" and ft[1] == "4.00 (6.00)" and ft[5] == "4.50" and ft[6] == "0.50 (0.50×)"


def test_mixing_protocols_or_mia_definitions_is_refused(store: ResultStore, toy_rows: list[dict]):
    other_task = "digits|mlp|random:0.1|dualoptim-digits v1"
    _add(
        store,
        "retrain",
        1,
        _m(10, 100, 90, 70),
        2.0,
        protocol="dualoptim-digits v1",
        task_key=other_task,
        definitions={**DEFS, "mia": "mia_lr_entropy_member_rate"},
    )
    rows = store.rows()
    with pytest.raises(ValueError, match="digits-random10 v1.*dualoptim-digits v1"):
        summarize(rows)
    first, second = render_all(rows).split("\n\nCustom grid ")
    assert first.startswith("Custom grid digits-random10 v1") and "| MIA-Efficacy" in first
    assert second.startswith("dualoptim-digits v1 · digits / mlp · forget random 10 % · seeds 1 · "
                             "MIA = mia_lr_entropy_member_rate ·")
    assert _table(second)[0][4] == "MIA (mia_lr_entropy_member_rate)" and len(_table(second)) == 3
    same_group = [dict(r, protocol=PROTOCOL, task_key=TASK) for r in rows]
    with pytest.raises(ValueError, match="primary MIA.*mia_efficacy_svc_conf.*mia_lr_entropy_member_rate"):
        summarize(same_group)


def test_different_split_for_one_seed_is_refused(toy_rows: list[dict]):
    rows = [dict(r, split_hash="f" * 64) if r["method"] == "ga" else r for r in toy_rows]
    summarize(rows)  # seed 3 only appears with ga: still one split per seed
    rows[0] = dict(rows[0], split_hash="f" * 64)
    with pytest.raises(ValueError, match="split hash for seed 1"):
        summarize(rows)


def test_csv_long_format(toy_rows: list[dict]):
    records = list(csv.reader(io.StringIO(to_csv(summarize(toy_rows)))))
    assert tuple(records[0]) == CSV_COLUMNS == ("protocol", "method", "metric", "mean", "std", "gap", "n_seeds",
                                                "attack_std", "above_noise")
    by_key = {(r[1], r[2]): r for r in records[1:]}
    assert by_key["ft", "ua"] == [PROTOCOL, "ft", "ua", "5.0", repr(2**0.5), "6.0", "2", "", ""]
    assert by_key["retrain", "mia_efficacy_svc_conf"][3:] == ["22.0", repr(8**0.5), "", "2", "", ""]
    assert by_key["ft", "avg_gap_matched"][3] == "5.25" and by_key["ga", "avg_gap_means"][3:5] == ["12.5", ""]
    assert by_key["ft", "rte_rel"][3] == repr(0.6 / 3.0) and by_key["rl", "ua"][3:7] == ["", "", "", "0"]
    assert all(len(r) == 9 for r in records)


def test_latex_and_rich(toy_rows: list[dict]):
    summaries = summarize(toy_rows)
    tex = to_latex(summaries, header_line(toy_rows))
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "5.00$\\pm$1.41 {\\scriptsize (6.00)}" in tex and "0.60 (0.20$\\times$)" in tex
    assert "Avg.Gap $\\downarrow$" in tex and "\\caption{Custom grid digits-random10 v1" in tex
    table = to_rich_table(summaries, "toy")
    assert [c.header for c in table.columns][4] == "MIA-Efficacy" and table.row_count == 4


def test_write_reports(store: ResultStore, toy_rows: list[dict], tmp_path: Path):
    out = tmp_path / "report"
    md = write_reports(store, out)
    assert (out / "table.md").read_text() == md and md == render_all(toy_rows)
    assert (out / "table.csv").read_text().startswith("protocol,method,metric,mean,std,gap,n_seeds,attack_std,")
    assert "\\toprule" in (out / "table.tex").read_text()


def test_several_configs_of_one_method_get_separate_rows(store: ResultStore):
    _add(store, "retrain", 1, _m(10, 100, 90, 20), 1.0)
    _add(store, "ft", 1, _m(4, 99, 89, 10), 0.5)
    _add(store, "ft", 1, _m(8, 99, 89, 10), 0.5, config={"lr": 0.2})
    labels = [s.method for s in summarize(store.rows())]
    assert labels == ["retrain", "ft (lr=0.1)", "ft (lr=0.2)"]  # the differing setting, not a hash
    _add(store, "retrain", 1, _m(10, 100, 90, 20), 1.0, config={"epochs": 3})
    with pytest.raises(ValueError, match="'retrain' ran with several configs"):
        summarize(store.rows())
