"""Checkpoints and the model cache; the ``unlearnlab`` command line end to end (run, resume, errors, report)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

import unlearnlab as ul
from unlearnlab.bench import trained
from unlearnlab.bench.cache import ModelCache, default_cache_dir, load_checkpoint, save_checkpoint
from unlearnlab.bench.config import DEFAULT_METHODS
from unlearnlab.bench.plan import NOISE_FLOOR
from unlearnlab.bench.store import ResultStore
from unlearnlab.checksums import write_checked
from unlearnlab.cli import app
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.methods import Unlearner, registry

# ------------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_restores_weights_and_metadata(tmp_path: Path, digits_task):
    saved = ul.models.create("mlp", digits_task, seed=1)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, saved, {"model": "mlp", "seed": 1})
    loaded = ul.models.create("mlp", digits_task, seed=2)
    assert not torch.equal(loaded[1][1].weight, saved[1][1].weight)
    meta = load_checkpoint(path, loaded)
    assert meta["model"] == "mlp"
    assert meta["seed"] == 1
    assert meta["unlearnlab"] == ul.__version__
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_checkpoint_is_a_plain_weights_only_file(tmp_path: Path, digits_task):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, ul.models.create("mlp", digits_task), {"model": "mlp"})
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"state_dict", "meta_json"}


@pytest.mark.parametrize(("other", "kwargs", "message"), [
    ("mlp", {"hidden": (64,)}, r"shape of 1\.1\.(bias|weight): checkpoint \(128"),
    ("mlp", {"num_classes": 5}, r"shape of"),
    ("small_cnn", {}, r"missing .*unexpected"),
])
def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path, digits_task, other, kwargs, message):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, ul.models.create("mlp", digits_task), {"model": "mlp"})
    model = ul.models.create(other, digits_task, **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnlearnlabError, match=r"saved from model 'mlp'.*does not match this model") as err:
        load_checkpoint(path, model)
    assert err.match(message)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # model left untouched


def test_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path, digits_task):
    path = tmp_path / "other.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(UnlearnlabError, match=r"not an unlearnlab checkpoint nor a state dict"):
        load_checkpoint(path, ul.models.create("mlp", digits_task), checksum_required=False)


EXECUTED: list[str] = []


def _payload() -> dict:
    EXECUTED.append("code ran")
    return {}


class _Malicious:
    def __reduce__(self):
        return (_payload, ())


@pytest.mark.parametrize("with_checksum", [False, True])
def test_loading_never_unpickles_arbitrary_objects(tmp_path: Path, digits_task, with_checksum: bool):
    """Not even when the file's checksum matches: the checksum proves integrity, not harmlessness."""
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "meta_json": "{}", "extra": _Malicious()}, buf)
    if with_checksum:
        write_checked(path, buf.getvalue())
    else:
        path.write_bytes(buf.getvalue())
    EXECUTED.clear()
    with pytest.raises(UnlearnlabError, match=r"not a weights-only PyTorch file: .*(?i:weights.only)"):
        load_checkpoint(path, ul.models.create("mlp", digits_task), checksum_required=False)
    assert EXECUTED == []


# ------------------------------------------------------------------------------------------------ model cache


def _fit_counter():
    calls: list[int] = []

    def fit(model: torch.nn.Module) -> dict:
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(len(calls))
        return {"seconds": 0.5}

    return calls, fit


IDENTITY = {"kind": "original", "dataset": "digits", "model": "mlp", "recipe": {"epochs": 1}, "data": "abc", "seed": 1}


def test_model_cache_trains_once_then_loads(cache_dir: Path, digits_task):
    cache = ModelCache(default_cache_dir())
    calls, fit = _fit_counter()
    first = ul.models.create("mlp", digits_task)
    meta, cached = cache.get_or_train(IDENTITY, first, fit)
    assert (cached, len(calls)) == (False, 1)
    assert meta["seconds"] == 0.5
    second = ul.models.create("mlp", digits_task)
    meta2, cached2 = cache.get_or_train(IDENTITY, second, fit)
    assert (cached2, len(calls)) == (True, 1)
    assert meta2["seed"] == 1
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    assert list(cache_dir.glob("original-*.pt")), "the checkpoint was not written under UNLEARNLAB_CACHE"


def test_model_cache_key_depends_on_identity(cache_dir: Path, digits_task):
    cache = ModelCache(default_cache_dir())
    calls, fit = _fit_counter()
    cache.get_or_train(IDENTITY, ul.models.create("mlp", digits_task), fit)
    cache.get_or_train({**IDENTITY, "seed": 2}, ul.models.create("mlp", digits_task), fit)
    cache.get_or_train({**IDENTITY, "recipe": {"epochs": 2}}, ul.models.create("mlp", digits_task), fit)
    assert len(calls) == 3


def test_disabled_model_cache_always_retrains(cache_dir: Path, digits_task):
    cache = ModelCache(default_cache_dir(), enabled=False)
    calls, fit = _fit_counter()
    for _ in range(2):
        _, cached = cache.get_or_train(IDENTITY, ul.models.create("mlp", digits_task), fit)
        assert not cached
    assert len(calls) == 2


def test_cache_dir_follows_the_environment(cache_dir: Path):
    assert default_cache_dir() == cache_dir


# ------------------------------------------------------------------------------------------------ CLI helpers


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def rows(out: Path) -> list[dict]:
    with ResultStore(out) as store:
        return store.rows()


def finished(out: Path) -> dict[tuple[str, int], float]:
    return {(r["method"], r["seed"]): r["finished"] for r in rows(out)}


def table_methods(markdown: str) -> list[str]:
    """Row labels of the first (main) table: its header and rule skipped, the tables under it left out."""
    first = markdown[markdown.index("|"):].split("\n\n")[0]
    lines = [ln for ln in first.splitlines() if ln.startswith("|")][2:]
    return [ln.split("|")[1].strip() for ln in lines]


GRID_METHODS = "ft,retrain,rl"  # Retrain deliberately not first on the command line


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> SimpleNamespace:
    """One tiny grid (original and retrains 5 epochs), 3 methods × 2 seeds, run through the CLI."""
    root = tmp_path_factory.mktemp("grid")
    config = root / "tiny.yaml"
    config.write_text("recipe: {epochs: 5}\n")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNLAB_CACHE", str(root / "cache"))
        result = invoke("run", "--config", config, "--methods", GRID_METHODS, "--seeds", "1,2", "--out", out)
    return SimpleNamespace(root=root, config=config, out=out, cache=root / "cache", result=result)


@pytest.fixture
def grid_copy(grid, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the grid's output folder, with the grid's model cache."""
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    out = tmp_path / "out"
    shutil.copytree(grid.out, out)
    return out


# ------------------------------------------------------------------------------------------------ CLI run


def test_run_succeeds_and_writes_every_output(grid):
    assert grid.result.exit_code == 0, grid.result.output
    for name in ("table.md", "table.csv", "table.tex", "results.sqlite", "config.yaml"):
        assert (grid.out / name).is_file(), name


def test_run_stores_one_done_row_per_method_and_seed(grid):
    got = rows(grid.out)
    assert sorted((r["method"], r["seed"]) for r in got) == sorted(  # every grid has the noise-floor row
        (m, s) for m in (*GRID_METHODS.split(","), NOISE_FLOOR) for s in (1, 2))
    assert all(r["status"] == "done" for r in got)
    for r in got:
        for key in ("ua", "ra", "ta", "mia"):
            assert math.isfinite(r["metrics"][key])
        assert r["definitions"]["mia"] == "mia_efficacy_svc_conf"
    split = {r["seed"]: r["split_hash"] for r in got}
    assert split[1] != split[2]


def test_run_uses_the_recipe_of_the_config_file(grid):
    import yaml

    saved = yaml.safe_load((grid.out / "config.yaml").read_text())
    assert saved["resolved_recipe"]["epochs"] == 5


def test_run_table_lists_retrain_first_in_every_format(grid):
    markdown = (grid.out / "table.md").read_text()
    assert table_methods(markdown) == ["retrain", "retrain (independent seeds)", "ft", "rl"]
    assert markdown in grid.result.output
    records = list(csv.DictReader(io.StringIO((grid.out / "table.csv").read_text())))
    assert records[0]["method"] == "retrain"
    assert {r["method"] for r in records} == {"retrain", "retrain (independent seeds)", "ft", "rl"}
    tex = (grid.out / "table.tex").read_text()
    assert tex.index("retrain &") < tex.index("ft &") < tex.index("rl &")


def test_run_caches_the_original_and_the_retrains(grid, tmp_path: Path, monkeypatch):
    assert len(list(grid.cache.glob("original-*.pt"))) == 1
    assert len(list(grid.cache.glob("retrain-*.pt"))) == 4  # R_s and the noise floor's R'_s per seed
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(trained, "train", no_training)
    result = invoke("run", "--config", grid.config, "--methods", "retrain", "--seeds", "1,2", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output


def test_second_identical_run_reuses_finished_rows(grid, grid_copy: Path):
    before = finished(grid_copy)
    result = invoke("run", "--config", grid.config, "--methods", GRID_METHODS, "--seeds", "1,2", "--out", grid_copy)
    assert result.exit_code == 0, result.output
    assert finished(grid_copy) == before


def test_interrupted_row_is_recomputed_alone(grid, grid_copy: Path):
    before = finished(grid_copy)
    with sqlite3.connect(grid_copy / "results.sqlite") as conn:  # a kill between start() and finish()
        conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE method = 'rl' AND seed = 2")
    result = invoke("run", "--config", grid.config, "--methods", GRID_METHODS, "--seeds", "1,2", "--out", grid_copy)
    assert result.exit_code == 0, result.output
    after = finished(grid_copy)
    assert len(rows(grid_copy)) == len(before) == 8
    assert after[("rl", 2)] is not None and after[("rl", 2)] > before[("rl", 2)]
    assert {k: v for k, v in after.items() if k != ("rl", 2)} == {k: v for k, v in before.items() if k != ("rl", 2)}
    assert all(r["status"] == "done" for r in rows(grid_copy))


# ------------------------------------------------------------------------------------------------ CLI errors


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "ft,salum"], r"Unknown method 'salum'\. Did you mean 'salun'"),
    (["--seeds", "0"], r"seeds '0'.*>= 1"),
    (["--seeds", "one"], r"seeds 'one'"),
    (["--forget", "random:2.0"], r"outside \(0, 1\)"),
    (["--dataset", "digit"], r"Unknown dataset 'digit'\. Did you mean 'digits'"),
    (["--model", "mlpp"], r"Unknown model 'mlpp'\. Did you mean 'mlp'"),
    (["--set", "salun.lrr=1"], r"'lrr'.*Did you mean 'lr'"),
    (["--methods", "ft", "--set", "rl.lr=0.1"], r"hparams given for \['rl'\]"),
    (["--profile", "ref"], r"Unknown profile 'ref'"),
], ids=["method", "seed-zero", "seed-word", "fraction", "dataset", "model", "hparam", "hparam-method", "profile"])
def test_bad_flag_exits_2_with_a_message_and_writes_nothing(tmp_path: Path, cache_dir: Path, args, message):
    out = tmp_path / "out"
    result = invoke("run", "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert not out.exists()
    assert not cache_dir.exists()


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("epochz: 5\n", r"Unknown config key 'epochz'.*Known config keys"),
    ("recipe: {epochz: 5}\n", r"Unknown recipe key\(s\) \['epochz'\].*allowed keys"),
    ("recipe: {epochs: five}\n", r"Recipe key 'epochs' expects a int"),
    ("seeds: [0]\n", r">= 1"),
    ("methods: [ft, salum]\n", r"Did you mean 'salun'"),
    ("- just\n- a list\n", r"must be a mapping"),
], ids=["key", "recipe-key", "recipe-type", "seeds", "method", "not-mapping"])
def test_bad_config_file_exits_2_with_a_message_and_writes_nothing(tmp_path: Path, cache_dir: Path, yaml_text,
                                                                   message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "out"
    result = invoke("run", "--config", config, "--out", out)
    assert result.exit_code == 2, result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert not out.exists()


def test_missing_config_file_exits_2(tmp_path: Path):
    result = invoke("run", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ failures as rows


@dataclasses.dataclass
class _Raises(Unlearner):
    error: Exception

    def run(self, model, data, ctx):
        raise self.error


def _break(monkeypatch, method: str, error: Exception) -> None:
    info = registry.get_method(method)
    monkeypatch.setitem(registry._REGISTRY, method, dataclasses.replace(
        info, method=registry.OneShot(lambda h, f: _Raises(error), info.defaults)))


def test_method_errors_become_row_statuses_and_the_grid_goes_on(grid, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    _break(monkeypatch, "ft", RuntimeError("boom from ft"))
    _break(monkeypatch, "rl", DivergenceError("loss became nan"))
    out = tmp_path / "out"
    result = invoke("run", "--config", grid.config, "--methods", "ft,rl,retrain,ga", "--seeds", "1", "--out", out)
    assert result.exit_code == 1, result.output  # a failed cell: non-zero, but not a usage error
    assert "1 cell(s) failed" in result.output and "Traceback" not in result.output
    status = {r["method"]: r for r in rows(out)}
    assert status["ft"]["status"] == "failed"
    assert "boom from ft" in status["ft"]["error"]
    assert status["rl"]["status"] == "diverged"
    assert "nan" in status["rl"]["error"]
    assert status["retrain"]["status"] == "done"
    assert status["ga"]["status"] == "done"  # runs after the failures
    assert (out / "table.md").is_file()

    monkeypatch.undo()  # the failed row is retried on the next run, the diverged one is final
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    diverged_at = status["rl"]["finished"]
    retried = invoke("run", "--config", grid.config, "--methods", "ft,rl,retrain,ga", "--seeds", "1", "--out", out)
    assert retried.exit_code == 0, retried.output
    assert "skipping 4 complete rows (3 done, 1 diverged); re-running 0 interrupted and 1 failed" in retried.output
    again = {r["method"]: r for r in rows(out)}
    assert again["ft"]["status"] == "done"
    assert again["rl"]["status"] == "diverged"
    assert again["rl"]["finished"] == diverged_at


def test_real_divergence_from_a_huge_learning_rate_is_a_diverged_row(grid, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    out = tmp_path / "out"
    result = invoke("run", "--config", grid.config, "--methods", "ga", "--seeds", "1", "--set", "ga.lr=1e30",
                    "--out", out)
    assert result.exit_code == 0, result.output
    # retrain, the reference of every gap, always runs first
    assert [(r["method"], r["status"]) for r in rows(out)] == [("retrain", "done"), (NOISE_FLOOR, "done"),
                                                                ("ga", "diverged")]


def test_scientific_notation_is_a_number_in_flags_and_config_files(grid, tmp_path: Path, monkeypatch):
    """YAML 1.1 reads ``1e-3`` as a string; a learning rate written that way must still be a float."""
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    config = tmp_path / "sci.yaml"
    config.write_text("recipe: {epochs: 5}\nhparams: {ft: {lr: 3e-3}}\n")
    out = tmp_path / "out"
    result = invoke("run", "--config", config, "--methods", "ft,rl", "--seeds", "1", "--set", "rl.lr=2e-2",
                    "--out", out)
    assert result.exit_code == 0, result.output
    got = {r["method"]: r["config"]["hparams"]["lr"] for r in rows(out) if r["method"] not in ("retrain",
                                                                                                NOISE_FLOOR)}
    assert got == {"ft": 3e-3, "rl": 2e-2}


# ------------------------------------------------------------------------------------------------ report, methods


def test_report_re_renders_the_stored_table(grid):
    result = invoke("report", grid.out)
    assert result.exit_code == 0, result.output
    assert (grid.out / "table.md").read_text().strip() in result.output


def test_report_all_rewrites_the_table_files(grid, grid_copy: Path):
    expected = {name: (grid_copy / name).read_text() for name in ("table.md", "table.csv", "table.tex")}
    for name in expected:
        (grid_copy / name).unlink()
    result = invoke("report", grid_copy, "--format", "all")
    assert result.exit_code == 0, result.output
    for name, text in expected.items():
        assert (grid_copy / name).read_text() == text


@pytest.mark.parametrize("fmt", ["latex", "csv"])
def test_report_renders_other_formats(grid, fmt):
    result = invoke("report", grid.out, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "retrain" in result.output


def test_report_of_a_folder_without_results_exits_2(tmp_path: Path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert "No results.sqlite" in result.output


def test_report_with_unknown_format_exits_2(grid):
    result = invoke("report", grid.out, "--format", "html")
    assert result.exit_code == 2
    assert "markdown, latex, csv or all" in result.output


def test_methods_lists_every_registered_method_with_its_composition():
    result = invoke("methods", "--no-defaults")
    assert result.exit_code == 0, result.output
    for name in ul.list_methods():
        info = ul.get_method(name)
        assert name in result.output
        assert info.composition in result.output, f"composition of {name} printed wrongly"


def test_methods_pattern_filters_the_list():
    result = invoke("methods", "scrub*", "--no-defaults")
    assert result.exit_code == 0
    assert "scrub-original" in result.output
    assert "salun" not in result.output


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_default_grid_end_to_end(tmp_path: Path, cache_dir: Path):
    out = tmp_path / "out"
    result = invoke("run", "--seeds", "1", "--out", out)
    assert result.exit_code == 0, result.output
    got = {r["method"]: r for r in rows(out)}
    assert set(got) == {*DEFAULT_METHODS, NOISE_FLOOR}
    for method, row in got.items():
        assert row["status"] == "done", f"{method}: {row['status']} {row['error']}"
        assert all(math.isfinite(v) for v in row["metrics"].values()), method
    retrain = got["retrain"]["metrics"]
    assert abs(retrain["ua"] - (100.0 - retrain["ta"])) < 5.0
    assert retrain["ta"] > 90.0
    assert table_methods((out / "table.md").read_text())[0] == "retrain"


def test_retrain_is_always_the_first_row_and_aliases_are_canonical(grid, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    out = tmp_path / "out"
    result = invoke("run", "--config", grid.config, "--methods", "neggrad+", "--seeds", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert [r["method"] for r in rows(out)] == ["retrain", NOISE_FLOOR, "neggrad-plus"]


def test_hyperparameters_for_the_benchmark_retrain_are_refused(grid, tmp_path: Path):
    out = tmp_path / "out"
    result = invoke("run", "--config", grid.config, "--set", "retrain.epochs=3", "--out", out)
    assert result.exit_code == 2 and "recipe" in result.output
    assert not out.exists()



def test_forget_quality_adds_the_neurips_score_to_the_first_seed_and_resumes(grid, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(grid.cache))
    out = tmp_path / "out"
    args = ("run", "--config", grid.config, "--methods", "ft", "--seeds", "1,2", "--forget-quality", "2",
            "--out", out)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    scored = {(r["method"], r["seed"]): r for r in rows(out) if "forget_score_eps" in r["metrics"]}
    assert set(scored) == {("retrain", 1), ("ft", 1)}  # the first seed only, every method
    for row in scored.values():
        assert 0.0 <= row["metrics"]["forget_score_eps"] <= 1.0
        assert "N=2" in row["definitions"]["forget_score_eps"]
        assert row["stats"]["forget_quality"]["n_models"] == 2
    assert "Forget quality" in (out / "table.md").read_text()
    before = finished(out)
    assert invoke(*args).exit_code == 0
    assert finished(out) == before  # nothing recomputed


def test_forget_quality_needs_at_least_two_models(grid, tmp_path: Path):
    result = invoke("run", "--config", grid.config, "--forget-quality", "1", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "forget_quality_n" in result.output
    assert not (tmp_path / "out").exists()
