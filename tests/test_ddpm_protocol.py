"""The ddpm-<tier>-class<c> protocols from the command line: rows, table, gates, pictures, report, resume, the user's
original and the CIFAR-10 tier on tiny files in the official format.

Every run here uses the protocol's own mechanism for changed settings (``--set tier.…``, ``--set sampler.…`` and
method budgets), so a CPU runs it in seconds; those changes are recorded in the rows and named above the table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch
from conftest import write_cifar10_binary
from typer.testing import CliRunner

from unlearnlab.bench.store import ResultStore
from unlearnlab.cli import app
from unlearnlab.experiments import ddpm, ddpm_tables
from unlearnlab.generation import diffusion_recipe, digits_denoiser, train_denoiser, unet_denoiser
from unlearnlab.generation.evaluation import Gate
from unlearnlab.generation.tiers import generation_task, get_tier
from unlearnlab.train_state import TrainCheckpoint

#: the digits tier at a size a test can afford (the CLI's --set)
TINY = ["--set", "tier.epochs=2", "--set", "tier.n_forget=6", "--set", "tier.n_per_class=6",
        "--set", "tier.classifier_epochs=1", "--set", "sampler.steps=2"]
QUICK_BUDGETS = ["--set", "ddpm/rl.iterations=2", "--set", "ddpm/salun.iterations=2",
                 "--set", "ddpm/salun+eupmu.epochs=1", "--set", "ddpm/rl+dualoptim.iterations=2",
                 "--set", "ddpm/salun+dualoptim.iterations=2"]
TWO_METHODS = ["--methods", "retrain,ddpm/rl,ddpm/salun", "--set", "ddpm/rl.iterations=2",
               "--set", "ddpm/salun.iterations=2"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", "--threads", "1", *args], env={"COLUMNS": "250"})


def rows_of(out: Path) -> list[dict]:
    with ResultStore(out) as store:
        return store.rows()


def test_quick_digits_run_writes_rows_table_gates_pictures_and_report(tmp_path, cache_dir):
    out = tmp_path / "out"
    result = invoke("--protocol", "ddpm-digits-class0", "--quick", "--out", str(out), *TINY, *QUICK_BUDGETS)
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    expected = [("original", 1), ("retrain", 1), ("ddpm/rl", 1), ("ddpm/salun", 1), ("ddpm/salun+eupmu", 1),
                ("ddpm/rl+dualoptim", 1), ("ddpm/salun+dualoptim", 1)]
    assert [(r["method"], r["seed"]) for r in rows] == expected
    assert {r["status"] for r in rows} == {"done"} and {r["protocol"] for r in rows} == {"ddpm-digits-class0 v1 quick"}
    salun = rows[3]
    assert salun["config"]["tier"]["sampler"]["steps"] == 2 and salun["config"]["tier"]["n_forget"] == 6
    assert salun["config"]["changes"]["sampler"] == {"steps": 2} and "ddpm/rl" not in salun["config"]["changes"]
    assert salun["config"]["hparams"]["iterations"] == 2 and salun["config"]["forget_class"] == 0
    assert salun["definitions"]["fd_clf"].startswith("v1:") and "ua_gap" in salun["metrics"]
    assert salun["env"]["unlearnlab"] and salun["split_hash"] == rows[0]["split_hash"]
    assert salun["stats"]["rte_seconds"] == pytest.approx(salun["stats"]["seconds"] + salun["stats"]["seconds_eval"])
    # two epochs of training make no recognisable generator: the gates fail, in the rows and in the table
    assert salun["stats"]["valid"] is False and salun["stats"]["gates"]["passed"] is False
    text = " ".join(result.output.split())
    assert "INVALID RUN" in text and "FAIL original_recognition" in text and "test accuracy" in text
    assert "Changed from the protocol: " in text.replace("**", "") and "sampler.steps=2" in text
    assert "| ddpm/salun+eupmu | 1 |" in result.output
    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples == ["ddpm_rl+dualoptim-seed1.png", "ddpm_rl-seed1.png", "ddpm_salun+dualoptim-seed1.png",
                       "ddpm_salun+eupmu-seed1.png", "ddpm_salun-seed1.png", "original-seed1.png",
                       "retrain-seed1.png"]
    assert (out / "table.md").read_text() in result.output
    # report rebuilds the table and the comparison figure from the rows and the saved samples, training nothing
    (out / "comparison.png").unlink()
    for entry in cache_dir.iterdir():
        entry.unlink()
    report = CliRunner().invoke(app, ["report", str(out)], env={"COLUMNS": "250"})
    assert report.exit_code == 0, report.output
    assert (out / "comparison.png").stat().st_size > 0 and not any(cache_dir.iterdir())
    assert "| ddpm/salun+dualoptim | 1 |" in report.output and "INVALID RUN" in report.output


def test_resume_runs_each_row_once_after_an_interrupt_and_skips_finished_rows(tmp_path, cache_dir, monkeypatch):
    out = tmp_path / "out"
    calls: list[str] = []
    real = ddpm.unlearn

    def counted(*args, **kwargs):
        calls.append(kwargs["method"])
        if kwargs["method"] == "ddpm/salun" and calls.count("ddpm/salun") == 1:
            raise KeyboardInterrupt  # Ctrl-C while SalUn runs
        return real(*args, **kwargs)

    monkeypatch.setattr(ddpm, "unlearn", counted)
    first = invoke("--protocol", "ddpm-digits-class0", "--out", str(out), "--seeds", "1", *TINY, *TWO_METHODS)
    assert first.exit_code == 130 and "re-run the same command to resume" in first.output
    assert [(r["method"], r["status"]) for r in rows_of(out)] == [
        ("original", "done"), ("retrain", "done"), ("ddpm/rl", "done"), ("ddpm/salun", "running")]
    second = invoke("--protocol", "ddpm-digits-class0", "--out", str(out), "--seeds", "1", *TINY, *TWO_METHODS)
    assert second.exit_code == 0, second.output
    assert calls == ["ddpm/rl", "ddpm/salun", "ddpm/salun"]  # the interrupted row again, the finished one not
    assert "4 rows (1 to run, 3 done before)" in " ".join(second.output.split())
    rows = rows_of(out)
    assert [(r["method"], r["status"]) for r in rows] == [
        ("original", "done"), ("retrain", "done"), ("ddpm/rl", "done"), ("ddpm/salun", "done")]
    # a row left `running` by a killed process is re-run; a third run runs nothing
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("UPDATE runs SET status = 'running' WHERE method = 'ddpm/rl'")
    third = invoke("--protocol", "ddpm-digits-class0", "--out", str(out), "--seeds", "1", *TINY, *TWO_METHODS)
    assert third.exit_code == 0 and calls == ["ddpm/rl", "ddpm/salun", "ddpm/salun", "ddpm/rl"]
    fourth = invoke("--protocol", "ddpm-digits-class0", "--out", str(out), "--seeds", "1", *TINY, *TWO_METHODS)
    assert fourth.exit_code == 0 and len(calls) == 4 and len(rows_of(out)) == 4


def test_the_users_original_is_used_and_recorded(tmp_path, cache_dir):
    model = digits_denoiser(seed=7)
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    out = tmp_path / "out"
    result = invoke("--protocol", "ddpm-digits-class2", "--out", str(out), "--seeds", "1", "--original",
                    str(tmp_path / "mine.pt"), "--methods", "retrain", *TINY)
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    assert [r["method"] for r in rows] == ["original", "retrain"]
    assert len(rows[0]["config"]["original"]) == 64 and rows[0]["stats"]["seconds"] is None
    assert not any(p.name.startswith("ddpm-original") for p in cache_dir.iterdir())  # not trained
    assert any(p.name.startswith("ddpm-retrain") for p in cache_dir.iterdir())


def test_cifar10_tier_runs_end_to_end_on_tiny_official_files(tmp_path, cache_dir):
    """The paper tier on tiny files in the official binary format, with a smaller UNet, and the user's original as
    a bare diffusers UNet2DModel state dict (as a user who trained one with diffusers would pass it)."""
    pytest.importorskip("diffusers")
    root = write_cifar10_binary(tmp_path / "data")
    mine = unet_denoiser("fmnist", (3, 32, 32), seed=4).net.unet
    torch.save(mine.state_dict(), tmp_path / "unet.pt")
    out = tmp_path / "out"
    result = invoke("--protocol", "ddpm-cifar10-class3", "--out", str(out), "--root", str(root), "--seeds", "1",
                    "--methods", "retrain,ddpm/salun", "--set", "tier.model=unet:fmnist", "--set", "tier.epochs=1",
                    "--set", "tier.n_forget=2", "--set", "tier.n_per_class=2", "--set", "tier.classifier_epochs=1",
                    "--set", "sampler.steps=2", "--set", "ddpm/salun.iterations=1", "--device", "cpu",
                    "--original", str(tmp_path / "unet.pt"))
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    assert [(r["method"], r["status"]) for r in rows] == [("original", "done"), ("retrain", "done"),
                                                          ("ddpm/salun", "done")]
    assert not any(p.name.startswith("ddpm-original") for p in cache_dir.iterdir())  # the user's was used
    tier = rows[2]["config"]["tier"]
    assert tier["tier"] == "cifar10" and tier["model"] == "unet:fmnist" and tier["profile"] == "reference"
    assert rows[2]["config"]["hparams"]["iterations"] == 1
    assert rows[2]["stats"]["settings"]["image_shape"] == [3, 32, 32]
    assert (out / "samples" / "ddpm_salun-seed1.png").exists() and (out / "comparison.png").exists()


# ------------------------------------------------------------------------------------------ resumable training


class Stop(Exception):
    pass


def _stop_after(epochs: int):
    def progress(done: int, total: int) -> None:
        if done == epochs:
            raise Stop

    return progress


@pytest.mark.parametrize("flip", [False, True])
def test_denoiser_training_resumed_after_an_interrupt_is_bit_identical(tmp_path, flip):
    task = generation_task("digits", 1)
    recipe = diffusion_recipe(epochs=4, lr=1e-3)
    whole = digits_denoiser(width=32, depth=1)
    train_denoiser(whole, task.train, recipe, seed=3, flip=flip)
    checkpoint = TrainCheckpoint(tmp_path / "state")
    resumed = digits_denoiser(width=32, depth=1)
    with pytest.raises(Stop):
        train_denoiser(resumed, task.train, recipe, seed=3, flip=flip, checkpoint=checkpoint,
                       progress=_stop_after(2))
    resumed = digits_denoiser(width=32, depth=1)  # a new process: fresh weights, the state on disk
    train_denoiser(resumed, task.train, recipe, seed=3, flip=flip, checkpoint=checkpoint)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_minimum_interval_saves_fewer_states(tmp_path):
    task = generation_task("digits", 1)
    recipe = diffusion_recipe(epochs=3, lr=1e-3)
    for interval, saved in ((0.0, True), (3600.0, False)):
        path = tmp_path / f"state-{interval}"
        with pytest.raises(Stop):
            train_denoiser(digits_denoiser(width=16, depth=1), task.train, recipe,
                           checkpoint=TrainCheckpoint(path, min_interval=interval), progress=_stop_after(2))
        assert path.exists() == saved


# ------------------------------------------------------------------------------------------ table and gates


def _row(method: str, seed: int, ua: float, fd: float, recognition: float, status: str = "done") -> dict:
    tier = get_tier("digits").settings()
    metrics = {"ua": ua, "p_forget": 0.1, "entropy_forget": 1.0, "fidelity": 99.0, "fd_clf": fd, "kid_clf": 0.1,
               "fd_clf_floor": 0.1}
    if method not in ("original", "retrain"):
        metrics |= {"ua_gap": 2.0, "fd_gap": 0.1, "avg_gap": 1.05}
    return {"method": method, "seed": seed, "status": status, "metrics": metrics, "definitions": {},
            "config": {"tier": tier, "forget_class": 0, "changes": {}},
            "stats": {"per_class": {str(k): recognition for k in range(10)}, "rte_seconds": 60.0 * seed,
                      "classifier": {"dataset": "digits", "test_accuracy": 96.6}}}


def test_gates_pass_only_when_every_seed_passes_and_the_table_says_so():
    rows = [_row("original", 1, 0.0, 0.5, 98.0), _row("retrain", 1, 99.0, 0.6, 98.0), _row("retrain", 2, 97.0, 0.6, 98),
            _row("ddpm/rl", 1, 95.0, 0.7, 98.0), _row("ddpm/rl", 2, 93.0, 0.9, 98.0)]
    gates = ddpm_tables.run_gates(rows)
    assert gates.passed and [g.name for g in gates.gates] == [
        "original_recognition", "retrain_ua (seed 1)", "original_fd_clf", "retrain_ua (seed 2)"]
    table = ddpm_tables.render(rows, "ddpm-digits-class0 v1", ["ddpm/rl"], (1, 2))
    assert "All gates passed" in table and "INVALID" not in table and "test accuracy 96.6 %" in table
    assert "| ddpm/rl | 2 | 94.0 ± 1.4 |" in table  # mean ± std (ddof 1) over the seeds
    rl_line = next(line for line in table.splitlines() if line.startswith("| ddpm/rl |"))
    assert rl_line.endswith("| 1.50 (×1.00) |")  # RTE: (60 + 120)/2 s, as Retrain's mean
    rows[2] = _row("retrain", 2, 80.0, 0.6, 98.0)  # one seed's Retrain still recognises class c
    gates = ddpm_tables.run_gates(rows)
    assert not gates.passed and [g.name for g in gates.gates if not g.passed] == ["retrain_ua (seed 2)"]
    assert "INVALID RUN" in ddpm_tables.render(rows, "x v1", ["ddpm/rl"], (1, 2))
    assert isinstance(gates.gates[0], Gate)


def test_failed_and_diverged_rows_are_counted_not_averaged():
    rows = [_row("original", 1, 0.0, 0.5, 98.0), _row("retrain", 1, 99.0, 0.6, 98.0),
            _row("ddpm/ga", 1, 100.0, 9.0, 98.0), _row("ddpm/ga", 2, 0.0, 0.0, 98.0, status="diverged")]
    table = ddpm_tables.render(rows, "x v1", ["ddpm/ga"], (1, 2))
    assert "| ddpm/ga | 1 (1 diverged) | 100.0 |" in table


def test_file_names_of_methods_are_safe():
    assert ddpm_tables.file_stem("ddpm/salun+eupmu", 3) == "ddpm_salun+eupmu-seed3"
    assert ddpm_tables.file_stem("a b/../c", 1) == "a_b_.._c-seed1"
