"""The TOFU-format protocols from the command line: rows, table, gates, noise floor, OpenUnlearning files, report,
plots, resume, and the paper tier on tiny TOFU files and a tiny local Hugging Face checkpoint.

Every run uses the protocol's own mechanism for changed settings (``--set data.…``, ``model.…``, ``stage2.…``): a
10-author dataset and a 40 k-parameter model, so a CPU runs it in seconds; those changes are recorded in the rows
and named above the table. The models of one dataset are trained once for the module (a shared model cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("rouge_score")

import yaml
from llm_helpers import TINY, write_paper_files
from typer.testing import CliRunner

from unlearnlab.bench import cells
from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app
from unlearnlab.experiments import tofu_tables

#: the tier at a size a test can afford (the protocol's --set groups)
SETTINGS = {"data": {"authors": 10, "qa_per_author": 4, "train_templates": 1},
            "model": {"hidden": TINY.hidden, "layers": TINY.layers, "heads": TINY.heads,
                      "intermediate": TINY.intermediate, "context": TINY.context},
            "stage1": {"epochs": 5, "batch_size": 16}, "stage2": {"epochs": 40, "lr": 0.01, "batch_size": 16}}
METHODS = "llm/ga-gd,llm/npo-gd+dualoptim,llm/ga-gd+eupmu,certified-gradclip"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory):
    """One model cache for the module: the tiny tier's references are trained by the first test that needs them."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("tofu-cache")
        mp.setenv("UNLEARNLAB_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tofu-config") / "tiny.yaml"
    path.write_text(yaml.safe_dump({"hparams": SETTINGS}))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [*args], env={"COLUMNS": "250"})


def rows_of(out: Path) -> list[dict]:
    with ResultStore(out) as store:
        return store.rows()


def test_quick_run_writes_rows_table_gates_exports_generations_report_and_plot(tmp_path, shared_cache, config_file):
    out = tmp_path / "out"
    # the tiny retain set (36 records) gives certified-gradclip fewer steps than its noisy phase needs at the
    # protocol's 5 epochs: a method override, recorded in its row like the tier's changes
    result = invoke("run", "--threads", "1", "--protocol", "tofu-mini-forget10", "--quick", "--out", str(out),
                    "-c", str(config_file), "--methods", METHODS, "--set", "certified-gradclip.epochs=10")
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    methods = METHODS.split(",")
    # retain models of seed 1 and of its noise-floor partner (seed 2), the target, then every method
    assert [(r["method"], r["seed"]) for r in rows] == [("retain", 1), ("retain", 2), ("target", 1),
                                                         *((m, 1) for m in methods)]
    assert {r["status"] for r in rows} == {"done"}, [r["error"] for r in rows]
    assert {r["protocol"] for r in rows} == {"tofu-mini-forget10 v1 quick"}
    npo = rows[4]
    cfg = npo["config"]
    assert cfg["tier"] == "xs" and cfg["size"]["authors"] == 10 and cfg["model"]["hidden"] == TINY.hidden
    assert cfg["changes"]["stage2"] == {"epochs": 40, "lr": 0.01, "batch_size": 16} and cfg["forget"] == "forget10"
    assert cfg["hparams"]["lr"] == pytest.approx(1e-3) and cfg["method"] == "llm/npo-gd+dualoptim"
    assert npo["split_hash"] == cfg["data_hash"] == rows[0]["split_hash"] and npo["env"]["unlearnlab"]
    assert npo["definitions"]["forget_quality"].startswith("fq_ks@1")
    assert npo["definitions"]["model_utility"].startswith("mu_hmean9@1")
    assert len(npo["stats"]["forget_truth_ratios"]) == 4 and npo["stats"]["seconds"] > 0
    assert len(npo["stats"]["samples"]) == 4 and npo["stats"]["optimizer_steps"] > 0
    certified = rows[-1]
    assert certified["stats"]["certificate"]["epsilon"] > 0 and certified["config"]["hparams"]["C0"] == 100.0
    assert certified["config"]["hparams"]["epochs"] == 10 and certified["config"]["hparams"]["noise_source"] == "seeded"
    # OpenUnlearning's files for every evaluated model, named in its row
    for r in rows:
        folder = out / r["stats"]["openunlearning"]
        assert (folder / "TOFU_EVAL.json").is_file() and (folder / "TOFU_SUMMARY.json").is_file()
    assert rows[4]["stats"]["openunlearning"] == "openunlearning/llm_npo-gd_dualoptim-seed1"
    text = " ".join(result.output.split())
    # four forget questions make a KS p-value of at least 1/35: the forget-quality gate fails, the run is invalid
    assert "INVALID RUN" in text and "[FAIL] forget quality, target vs retain" in text
    assert "[pass] target forget ROUGE-L" in text and "Changed from the protocol: " in text.replace("**", "")
    assert "| retain (noise floor) | 1 |" in result.output and "| llm/ga-gd+eupmu | 1 |" in result.output
    assert "not certified" in text
    floor = tofu_tables.noise_floor(rows, (1,))[1]["forget_quality"]
    assert f"| retain (noise floor) | 1 | {floor:.3g} |" in result.output
    generations = (out / "generations.md").read_text()
    assert "**gold**" in generations and "**llm/npo-gd+dualoptim**" in generations
    figures = sorted(p.name for p in (out / "plots").iterdir())
    assert len(figures) == 2 and figures[0].startswith("tofu-tradeoff-tofu-mini-forget10_v1_quick-")
    assert [Path(f).suffix for f in figures] == [".pdf", ".png"]
    assert (out / "table.md").read_text() in result.output
    # report and plots rebuild everything from the rows: no model is trained or loaded
    for entry in shared_cache.iterdir():
        entry.rename(entry.with_name("moved-" + entry.name))
    for figure in (out / "plots").iterdir():
        figure.unlink()
    report = invoke("report", str(out))
    assert report.exit_code == 0, report.output
    assert "| llm/npo-gd+dualoptim | 1 |" in report.output and "INVALID RUN" in report.output
    assert not [p for p in shared_cache.iterdir() if not p.name.startswith("moved-")]
    plots = invoke("plots", str(out))
    assert plots.exit_code == 0, plots.output
    assert sorted(Path(p).suffix for p in plots.output.split()) == [".pdf", ".png"]
    for entry in shared_cache.iterdir():
        entry.rename(entry.with_name(entry.name.removeprefix("moved-")))


def test_an_interrupted_run_resumes_each_row_once(tmp_path, shared_cache, config_file):
    out = tmp_path / "out"
    first = invoke("run", "--threads", "1", "--protocol", "tofu-mini-forget10", "--quick", "--out", str(out),
                   "-c", str(config_file), "--methods", "llm/ga-gd")
    assert first.exit_code == 0, first.output
    before = {r["method"]: r for r in rows_of(out)}
    # a killed run leaves its row `running`: reset the method's row as the runner does when it starts a cell
    with ResultStore(out) as store:
        row = before["llm/ga-gd"]
        cells.start(store, cells.Row(row["task_key"], row["protocol"], row["method"], row["seed"], row["config"],
                                     row["split_hash"]))
        assert store.get(row["run_key"])["status"] == "running"
    again = invoke("run", "--threads", "1", "--protocol", "tofu-mini-forget10", "--quick", "--out", str(out),
                   "-c", str(config_file), "--methods", "llm/ga-gd,llm/npo-gd")
    assert again.exit_code == 0, again.output
    assert "5 rows (2 to run, 3 done before)" in " ".join(again.output.split())
    rows = rows_of(out)
    assert sorted((r["method"], r["seed"]) for r in rows) == [("llm/ga-gd", 1), ("llm/npo-gd", 1), ("retain", 1),
                                                              ("retain", 2), ("target", 1)]
    assert {r["status"] for r in rows} == {"done"}
    after = {r["method"]: r for r in rows}
    assert after["target"]["finished"] == before["target"]["finished"]  # complete rows are not run again
    assert after["llm/ga-gd"]["finished"] > before["llm/ga-gd"]["finished"]
    assert after["llm/ga-gd"]["metrics"] == before["llm/ga-gd"]["metrics"]  # same seed, same model, same numbers


@pytest.fixture(scope="module")
def paper_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TOFU's files for a 10-author dataset, a tiny target checkpoint (trained on full) and a retain checkpoint."""
    root = tmp_path_factory.mktemp("tofu-paper")
    return write_paper_files(root)


def test_paper_tier_runs_a_local_checkpoint_on_tofu_files_with_a_retain_model_or_its_logs(tmp_path, shared_cache,
                                                                                          paper_files):
    common = ["run", "--threads", "1", "--protocol", "tofu-forget10", "--root", str(paper_files / "TOFU"),
              "--original", str(paper_files / "target"), "--methods", "llm/ga-gd,dualoptim/llm/me-gd",
              "--seeds", "1,2"]
    out = tmp_path / "model"
    result = invoke(*common, "--out", str(out), "--set", f"retain.model={paper_files / 'retain'}")
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    assert [(r["method"], r["seed"]) for r in rows] == [("retain", 1), ("target", 1), ("llm/ga-gd", 1),
                                                         ("dualoptim/llm/me-gd", 1), ("llm/ga-gd", 2),
                                                         ("dualoptim/llm/me-gd", 2)]
    assert {r["status"] for r in rows} == {"done"}, [r["error"] for r in rows]
    ga = rows[2]
    assert ga["config"]["tier"] == "paper" and ga["config"]["profile"] == "reference"
    assert ga["config"]["hparams"]["lr"] == pytest.approx(1e-5) and ga["config"]["hparams"]["epochs"] == 5
    assert set(ga["config"]["checkpoints"]) == {"target", "retain"}
    text = " ".join(result.output.split())
    assert "[n/a] forget quality, retain B vs retain A: not measured" in text
    assert "the user's target checkpoint" in text and "| dualoptim/llm/me-gd | 2 |" in result.output
    # OpenUnlearning's retain logs in place of the retain model give the same forget quality and privleak
    logs = out / rows[0]["stats"]["openunlearning"] / "TOFU_EVAL.json"
    other = tmp_path / "logs"
    result = invoke(*common, "--out", str(other), "--set", f"retain.eval={logs}")
    assert result.exit_code == 0, result.output
    by_key = {(r["method"], r["seed"]): r["metrics"] for r in rows}
    for r in rows_of(other):
        if r["method"] != "retain":
            for key in ("forget_quality", "privleak", "model_utility"):
                assert r["metrics"][key] == pytest.approx(by_key[(r["method"], r["seed"])][key]), key


def _row(method: str, seed: int, metrics: dict, ratios: list[float], auc: float = 0.5) -> dict:
    return {"method": method, "seed": seed, "status": "done", "metrics": metrics, "definitions": {},
            "stats": {"forget_truth_ratios": ratios, "mink_auc": auc, "seconds": 60.0}, "config": {"tier": "xs"}}


def test_noise_floor_pairs_each_seed_with_the_next_and_gates_read_the_stored_rows():
    assert [tofu_tables.partner(s, (1, 2, 3)) for s in (1, 2, 3)] == [2, 3, 1]
    assert tofu_tables.partner(4, (4,)) == 5 and tofu_tables.retain_seeds((1,)) == (1, 2)
    assert tofu_tables.retain_seeds((1, 2, 3)) == (1, 2, 3)
    know = {"forget_Q_A_ROUGE": 0.99, "retain_Q_A_ROUGE": 0.98, "holdout_Q_A_ROUGE": 0.5}
    ignorant = {"forget_Q_A_ROUGE": 0.5, "retain_Q_A_ROUGE": 0.98, "holdout_Q_A_ROUGE": 0.5}
    low, high = [0.01 * i for i in range(1, 41)], [0.5 + 0.01 * i for i in range(40)]
    rows = [_row("retain", 1, ignorant, high), _row("retain", 2, ignorant, list(reversed(high))),
            _row("target", 1, know, low)]
    gates = tofu_tables.run_gates(rows, (1,))
    assert gates[1].passed and not gates[1].missing
    assert tofu_tables.noise_floor(rows, (1,))[1]["forget_quality"] == pytest.approx(1.0)
    # a retain model that knows the forget authors fails the third gate, and the table says the run is invalid
    rows[0] = _row("retain", 1, know, high)
    assert not tofu_tables.run_gates(rows, (1,))[1].passed
    rows[0]["config"] = rows[2]["config"] = {"tier": "xs", "forget": "forget10", "data_seed": 0, "profile": "default",
                                             "size": {"name": "tofu-mini-xs", "authors": 40, "qa_per_author": 10},
                                             "model": {"arch": "llama", "hidden": 128, "layers": 2},
                                             "stage1": {"epochs": 20}, "stage2": {"epochs": 15}}
    assert "**INVALID RUN" in tofu_tables.render(rows, "tofu-mini-forget10 v1", (), (1,))


def test_a_row_whose_files_cannot_be_saved_is_failed_and_retried(tmp_path):
    row = cells.Row("task", "p v1", "m", 1, {"a": 1}, "split")

    def refuse(outcome: cells.Outcome) -> cells.Outcome:
        raise OSError("disk full")

    with ResultStore(tmp_path) as store:
        outcome = cells.run_cell(store, row, lambda: cells.Scores({"x": 1.0}), save=refuse)
        assert outcome.status == "failed" and "saving its files: OSError: disk full" in outcome.message
        assert not store.is_complete(row.run_key)
        outcome = cells.run_cell(store, row, lambda: cells.Scores({"x": 1.0}), save=lambda o: o)
        assert outcome.status == "done" and store.get(row.run_key)["status"] == "done"
