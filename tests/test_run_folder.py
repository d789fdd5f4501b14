"""Long runs: progress as lines and in run.log, the work estimate and final summary, the folder lock, SIGINT /
SIGTERM with the resume hint, and no worker outliving a killed ``--executor local`` driver."""

from __future__ import annotations

import errno
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unlearnlab.bench import outdir, runner
from unlearnlab.bench.outdir import LOCK_NAME, RunFolder
from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app

TINY = "recipe: {epochs: 3}\nhparams: {ft: {epochs: 2}}\n"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def tiny(tmp_path: Path, cache_dir: Path) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    return config


def statuses(out: Path) -> dict[tuple[str, int], str]:
    with ResultStore(out) as store:
        return {(r["method"], r["seed"]): r["status"] for r in store.rows()}


def test_progress_estimate_and_summary_go_to_stderr_lines_and_run_log(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1,2", "--out", out)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "work: 6 cells (3 method(s) × 2 seed(s)), 6 to run · models: 1 original + 4 retrained, 5 to train " \
           "(0 cached) · executor serial" in text  # Retrain, the noise floor and ft; R_s and R'_s per seed
    assert re.search(r"training original \(seed 1\): 100% · [\d.]+ s elapsed · done", text)
    assert re.search(r"ft \(seed 2\): done · 6/6 cells · [\d.]+ s elapsed · ETA 0\.0 s", text)
    assert f"rows: 6 done, 0 diverged, 0 failed (of 6) · outputs in {out}: table.md, table.csv, table.tex, " \
           "results.sqlite, config.yaml, run.log" in " ".join(text.split())
    log = (out / "run.log").read_text()
    for line in ("work: 6 cells", "training retrain (seed 2): started", "ft (seed 1): done · 3/6 cells",
                 "rows: 6 done"):
        assert line in log, line
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d  ", log)  # every line is timestamped
    assert "[" not in log.split("rows:")[1]  # plain text, no rich markup

    again = invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1,2", "--out", out)
    assert again.exit_code == 0, again.output
    assert "0 to run" in again.output and "to train (5 cached)" in again.output
    assert "skipping 6 complete rows (6 done, 0 diverged); re-running 0 interrupted and 0 failed rows" in \
        " ".join(again.output.split())
    assert (out / "run.log").read_text().startswith(log)  # appended, never truncated


def test_a_second_run_on_a_folder_in_use_is_refused(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with RunFolder(out, "unlearnlab run (the first)"):
        before = sorted(p.name for p in out.iterdir())
        result = invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1", "--out", out)
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert f"is in use by another unlearnlab run (pid {os.getpid()} on" in text
        assert "wait for it to finish, or choose another --out" in text
        assert "Traceback" not in result.output
        assert sorted(p.name for p in out.iterdir()) == before
    assert invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1", "--out", out).exit_code == 0


def test_the_lock_of_a_dead_run_is_taken_over(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("pid: 4194000\nhost: gone\nstarted: 2020-01-01T00:00:00\ncommand: unlearnlab run\n")
    result = invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "took over the lock of an earlier run that is gone (pid 4194000, started 2020-01-01T00:00:00)" in \
        " ".join(result.output.split())
    assert f"pid: {os.getpid()}" in (out / LOCK_NAME).read_text()


def test_a_file_system_without_locks_runs_unlocked_and_says_so(tiny: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(outdir.fcntl, "flock", no_locks)
    out = tmp_path / "out"
    result = invoke("run", "--config", tiny, "--methods", "ft", "--seeds", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"{out} is not locked: its file system does not support locks" in " ".join(result.output.split())
    assert "is not locked" in (out / "run.log").read_text()


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"),
                                                      (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_stops_the_run_with_the_resume_hint_and_the_rerun_resumes(tiny: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            signum: int, code: int, name: str):
    out = tmp_path / "out"
    args = ("run", "--config", tiny, "--methods", "ft,rl", "--set", "rl.epochs=2", "--seeds", "1,2", "--out", out)
    recorded: list[int] = []
    real = runner._record

    def record_then_signal(*a, **k):
        real(*a, **k)
        recorded.append(1)
        if len(recorded) == 2:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(runner, "_record", record_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert f"interrupted ({name}) — re-run the same command to resume (2 of 8 rows done)" in result.output
    assert "Traceback" not in result.output
    assert sorted(statuses(out).values()) == ["done", "done"]
    assert signal.getsignal(signal.SIGTERM) is handler  # the CLI's handler was removed again

    monkeypatch.undo()
    resumed = invoke(*args)
    assert resumed.exit_code == 0, resumed.output
    assert "skipping 2 complete rows" in resumed.output
    assert set(statuses(out).values()) == {"done"} and len(statuses(out)) == 8


def _children(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_no_local_worker_outlives_its_driver(tiny: Path, tmp_path: Path, cache_dir: Path, signum: int):
    (tmp_path / "slow.yaml").write_text("recipe: {epochs: 3}\nhparams: {ft: {epochs: 3000}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "UNLEARNLAB_CACHE": str(cache_dir)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "unlearnlab.cli", "run", "--config", str(tmp_path / "slow.yaml"), "--methods", "ft",
         "--seeds", "1,2", "--executor", "local", "--workers", "2", "--threads", "1", "--out", str(tmp_path / "out")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, workers = time.monotonic() + 120, set()
        while time.monotonic() < deadline and driver.poll() is None:
            workers = {pid for pid in _children(driver.pid)
                       if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")}
            if len(workers) == 2 and statuses_running(tmp_path / "out"):
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the pool did not start"
        helpers = _children(driver.pid)  # workers and multiprocessing's resource tracker
        driver.send_signal(signum)
        driver.wait(timeout=60)
        deadline = time.monotonic() + 60  # a worker still importing torch on a loaded machine needs a while
        while time.monotonic() < deadline and any(_alive(pid) for pid in helpers):
            time.sleep(0.2)
        assert not [pid for pid in helpers if _alive(pid)], "processes outlived the driver"
        if signum == signal.SIGTERM:
            assert driver.returncode == 143
            assert b"interrupted (SIGTERM)" in driver.stderr.read()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def statuses_running(out: Path) -> bool:
    """True once the driver has started a cell (the pool received work); reads without writing."""
    path = out / "results.sqlite"
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] > 0
    except sqlite3.Error:  # the driver is creating the database
        return False
