"""Scale-out executors: serial, local process pool and Ray give the same rows; the driver alone writes the store;
an interrupted pooled run resumes without duplicating a row."""

from __future__ import annotations

import dataclasses
import importlib.util
import pickle
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from unlearnlab.bench import executors, plan, runner
from unlearnlab.bench.classification import ClassificationCell
from unlearnlab.bench.config import RunConfig, from_dict
from unlearnlab.bench.plan import NOISE_FLOOR
from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app
from unlearnlab.errors import UnlearnlabError

SEEDS = (1, 2)
METHODS = ("ft", "ga")  # + retrain, always first, and its noise floor: 4 cells per seed
CELLS = (len(METHODS) + 2) * len(SEEDS)  # + Retrain and its noise floor
COUNTERS = ("forward_samples", "backward_samples", "optimizer_steps")


def config(root: Path, name: str, **kwargs) -> RunConfig:
    return RunConfig(dataset="digits", model="mlp", forget="random:0.1", methods=METHODS, seeds=SEEDS,
                     out=str(root / name), cache_dir=str(root / "cache"), device="cpu", recipe={"epochs": 3},
                     hparams={"ft": {"epochs": 2}, "ga": {"epochs": 2}}, **kwargs)


def rows(out: str | Path) -> list[dict]:
    with ResultStore(out) as store:
        return store.rows()


def signature(out: str | Path) -> list[tuple]:
    """Everything a row holds that does not depend on timing or on where it ran, in row order."""
    return [(r["run_key"], r["task_key"], r["protocol"], r["method"], r["seed"], r["config_hash"], r["split_hash"],
             r["status"], r["metrics"], r["definitions"], {k: r["stats"].get(k) for k in COUNTERS})
            for r in rows(out)]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> SimpleNamespace:
    """The tiny grid run in-process (today's behaviour), recording the work of every cell."""
    root = tmp_path_factory.mktemp("executors")
    specs: list[ClassificationCell] = []
    real = executors.execute

    def spy(work, *args, **kwargs):
        specs.append(work)
        return real(work, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(executors, "execute", spy)
        cfg = config(root, "serial", executor="serial")
        runner.run_grid(cfg, log=lambda text: None)
    return SimpleNamespace(root=root, out=Path(cfg.out), specs=specs)


def test_serial_grid_is_complete(serial):
    got = rows(serial.out)
    assert len(got) == CELLS
    assert all(r["status"] == "done" for r in got), [(r["method"], r["error"]) for r in got]
    assert [r["method"] for r in got] == ["retrain", NOISE_FLOOR, *METHODS] * len(SEEDS)


def test_workers_get_a_small_spec_without_the_store_or_the_output_folder(serial):
    assert len(serial.specs) == CELLS
    names = {f.name for f in dataclasses.fields(ClassificationCell)}
    assert not names & {"out", "store", "store_path", "db", "results"}
    for spec in serial.specs:
        blob = pickle.dumps(spec)
        assert len(blob) < 8_000, "a spec is a small description, not models or data"
        text = repr(spec)
        assert str(serial.out) not in text and "results.sqlite" not in text
        assert Path(spec.original).parent == Path(spec.retrain).parent == serial.root / "cache"
        assert spec.device == "cpu"
    assert len({s.original for s in serial.specs}) == 1  # one original per data split
    assert len({s.retrain for s in serial.specs}) == 2 * len(SEEDS)  # one retrain and one noise floor per seed


def test_local_process_pool_gives_the_same_rows_as_serial(serial):
    cfg = config(serial.root, "local", executor="local", workers=2)
    done: list[int] = []
    runner.run_grid(cfg, log=lambda text: None, cell_done=lambda: done.append(1))
    assert len(done) == CELLS  # the grid bar advances once per finished cell
    assert signature(cfg.out) == signature(serial.out)  # metrics bit-identical, same row order


def test_interrupted_local_run_resumes_without_duplicating_rows(serial):
    cfg = config(serial.root, "interrupted", executor="local", workers=2)
    arrived: list[int] = []

    def interrupt_after_two() -> None:
        arrived.append(1)
        if len(arrived) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run_grid(cfg, log=lambda text: None, cell_done=interrupt_after_two)
    partial = rows(cfg.out)
    finished = {r["run_key"]: r["finished"] for r in partial if r["status"] == "done"}
    assert 2 <= len(finished) < CELLS
    assert {r["status"] for r in partial} <= {"done", "running"}

    resumed: list[int] = []
    runner.run_grid(cfg, log=lambda text: None, cell_done=lambda: resumed.append(1))
    assert len(resumed) == CELLS  # finished-earlier cells count too
    after = rows(cfg.out)
    assert len(after) == len({r["run_key"] for r in after}) == CELLS
    assert all(r["status"] == "done" for r in after)
    assert {k: r["finished"] for r in after for k in [r["run_key"]] if k in finished} == finished  # not re-run
    assert signature(cfg.out) == signature(serial.out)
    with sqlite3.connect(Path(cfg.out) / "results.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == CELLS


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (optional extra: pip install 'unlearnlab[ray]')")
def test_ray_local_instance_gives_the_same_rows_as_serial(serial):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = config(serial.root, "ray", executor="ray")
        done: list[int] = []
        runner.run_grid(cfg, log=lambda text: None, cell_done=lambda: done.append(1))
        assert ray.is_initialized(), "a Ray instance started by the caller is left running"
    finally:
        ray.shutdown()
    assert len(done) == CELLS
    assert signature(cfg.out) == signature(serial.out)


# ------------------------------------------------------------------------------------------------ choice, errors


def test_executor_defaults():
    assert executors.resolve(None, None) == ("serial", 1)
    assert executors.resolve(None, 1) == ("serial", 1)
    assert executors.resolve(None, 3) == ("local", 3)
    assert executors.resolve("local", None)[1] >= 1
    assert executors.resolve("ray", None) == ("ray", None)
    assert isinstance(executors.make_executor(None, None, "cpu"), executors.SerialExecutor)


@pytest.mark.parametrize(("data", "message"), [
    ({"executor": "rey"}, r"Unknown executor 'rey'\. Did you mean 'ray'"),
    ({"workers": 0}, r"'workers' must be an integer >= 1"),
    ({"workers": "two"}, r"'workers' must be an integer >= 1"),
])
def test_bad_executor_keys_are_refused(data, message):
    with pytest.raises(UnlearnlabError, match=message):
        from_dict(data)


def test_plain_config_yaml_is_unchanged_by_the_new_keys():
    assert not {"executor", "workers", "ray_address"} & set(RunConfig().to_dict())
    assert RunConfig(executor="local", workers=2).to_dict()["workers"] == 2


def test_ray_executor_without_ray_fails_before_writing(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    with pytest.raises(UnlearnlabError, match=r"pip install 'unlearnlab\[ray\]'"):
        plan.plan(config(tmp_path, "out", executor="ray"))
    result = CliRunner().invoke(app, ["run", "--executor", "ray", "--out", str(tmp_path / "cli")],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 2 and "unlearnlab[ray]" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--executor", "pool"], r"Unknown executor 'pool'"),
    (["--workers", "0"], r"'workers' must be an integer >= 1"),
])
def test_cli_rejects_bad_executor_flags(tmp_path: Path, args, message):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    assert __import__("re").search(message, " ".join(result.output.split())), result.output
    assert not (tmp_path / "out").exists()


def test_cli_runs_a_grid_on_the_local_executor(serial, tmp_path: Path):
    """--executor/--workers reach the runner: a grid whose rows all exist (copied from the serial run) is
    recognised as complete without starting any cell."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(serial.out, out)
    cfg = config(serial.root, "unused")
    (tmp_path / "c.yaml").write_text(f"recipe: {{epochs: 3}}\nhparams: {{ft: {{epochs: 2}}, ga: {{epochs: 2}}}}\n"
                                     f"cache_dir: {cfg.cache_dir}\n")
    before = {r["run_key"]: r["finished"] for r in rows(out)}
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "c.yaml"), "--methods", ",".join(METHODS),
                                      "--seeds", "1,2", "--device", "cpu", "--out", str(out), "--executor", "local",
                                      "--workers", "2"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "executor local × 2" in result.output
    assert {r["run_key"]: r["finished"] for r in rows(out)} == before
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["executor"], saved["workers"]) == ("local", 2)
