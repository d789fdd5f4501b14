"""Fault injection: ``unlearnlab run`` killed with SIGKILL at chosen and random points — halfway through writing a
per-epoch training checkpoint, its checksum file or a cached model, inside the transaction that finishes a row,
at random times — and resumed until it completes, gives the same rows and the same table (timings aside) as an
uninterrupted run: trainings resume mid-way (or restart when their checkpoint was damaged) and produce the same
models, and the cache ends with intact, checksummed entries only."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unlearnlab.bench.store import ResultStore
from unlearnlab.checksums import read_checked
from unlearnlab.cli import app

CONFIG = "recipe: {epochs: 3}\nhparams: {ft: {epochs: 2}, rl: {epochs: 2}}\n"
ARGS = ["--methods", "ft,rl", "--seeds", "1,2", "--threads", "1"]
CELLS = 8  # retrain, its noise floor, ft, rl × 2 seeds

#: runs ``unlearnlab run`` and kills itself with SIGKILL at the fault point given on its command line
DRIVER = textwrap.dedent("""
    import os, signal, sys, tempfile, threading
    from pathlib import Path

    point, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    count = [0]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "checkpoint":  # halfway through the nth write of a checkpoint or checksum file
        from unlearnlab import checksums
        real_write = checksums.atomic_write_bytes

        def half_written(path, data, durable=True):
            count[0] += 1
            if count[0] == nth:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                fd, _ = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                die()
            real_write(path, data, durable)

        checksums.atomic_write_bytes = half_written
    elif point == "result":  # inside the transaction that finishes a row
        from unlearnlab.bench import store
        real_finish = store.ResultStore.finish

        def finish(self, run_key, status, *args, **kwargs):
            count[0] += 1
            if count[0] == nth:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("UPDATE runs SET status = ?, metrics_json = '{}' WHERE run_key = ?",
                                   (status, run_key))
                die()
            return real_finish(self, run_key, status, *args, **kwargs)

        store.ResultStore.finish = finish
    elif point == "time":  # nth milliseconds after start
        threading.Timer(nth / 1000, die).start()

    from unlearnlab.cli import app
    app(argv, prog_name="unlearnlab")
""")


def _rows(out: Path) -> dict[tuple[str, int], tuple]:
    with ResultStore(out) as store:
        return {(r["method"], r["seed"]): (r["status"], r["split_hash"], r["config_hash"], r["metrics"],
                                           r["definitions"]) for r in store.rows()}


def _table_without_rte(markdown: str) -> list[str]:
    """The table's lines with the last column (RTE: wall-clock time) removed."""
    return [line.rsplit("|", 2)[0] if line.startswith("|") else line for line in markdown.splitlines()]


@pytest.mark.slow
def test_sigkill_at_any_point_then_resume_gives_the_uninterrupted_table(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(tmp_path / "cache-clean"))
    clean = tmp_path / "clean"
    result = CliRunner().invoke(app, ["run", "--config", str(config), *ARGS, "--out", str(clean)])
    assert result.exit_code == 0, result.output

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "UNLEARNLAB_CACHE": str(tmp_path / "cache")}
    command = ["run", "--config", str(config), *ARGS, "--out", str(out)]
    rng = random.Random(13)
    # writes of one training (3 epochs): state after epoch 1 (file 1, checksum 2), after epoch 2 (3, 4), model (5, 6)
    faults = [("checkpoint", 3),  # writing the epoch-2 state: the next run resumes after epoch 1
              ("checkpoint", 2),  # writing the new state's checksum: the next run finds it damaged, restarts
              ("checkpoint", 5),  # writing the finished model: the next run resumes after epoch 2
              ("result", 2), ("result", 1), ("time", rng.randint(1500, 6000)), ("time", rng.randint(1500, 6000))]
    killed, said = 0, ""
    for point, nth in faults:
        run = subprocess.run([sys.executable, "-c", DRIVER, point, str(nth), *command], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode in (0, -signal.SIGKILL), run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        killed += run.returncode == -signal.SIGKILL
        said += run.stderr
    assert killed >= 5, "the injected faults did not fire"
    said = " ".join(said.split())
    assert "resuming training from epoch 1 of 3" in said
    assert re.search(r"training checkpoint original-\w+\.pt\.train-state is damaged \(checksum mismatch\): "
                     "training from the start", said)
    assert "resuming training from epoch 2 of 3" in said
    final = subprocess.run([sys.executable, "-m", "unlearnlab.cli", *command], env=env, capture_output=True,
                           text=True, timeout=300)
    assert final.returncode == 0, final.stderr

    assert _rows(out) == _rows(clean)
    with closing(sqlite3.connect(out / "results.sqlite")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == CELLS  # no duplicate, none left over
    assert _table_without_rte((out / "table.md").read_text()) == _table_without_rte((clean / "table.md").read_text())
    entries = list((tmp_path / "cache").glob("*.pt"))
    assert len(entries) == 5  # 1 original + 2 retrains + 2 noise floors, each complete
    for entry in entries:
        read_checked(entry)  # intact, with its checksum
    left = [p.name for p in (tmp_path / "cache").glob("*.train-state*") if not p.name.startswith(".")]
    assert not left, "a training checkpoint was left behind (killed writes may leave hidden .tmp files)"
