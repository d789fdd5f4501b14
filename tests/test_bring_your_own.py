"""Bring your own: ``run --original PATH`` unlearns from the user's trained model (its hash in every row),
``--save-models`` keeps every unlearned model (checksummed, loadable), and the after-unlearning health warnings
reach ``run.log`` and the row, not only standard error."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import unlearnlab as ul
from unlearnlab.bench.cache import load_checkpoint
from unlearnlab.bench.store import ResultStore
from unlearnlab.checksums import checksum_path, read_checked
from unlearnlab.cli import app
from unlearnlab.errors import HealthWarning

CONFIG = "recipe: {epochs: 3}\nhparams: {ft: {epochs: 2}}\n"
ARGS = ["--methods", "ft", "--seeds", "1,2", "--threads", "1"]


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def rows(out: Path) -> dict[tuple[str, int], dict]:
    with ResultStore(out) as store:
        return {(r["method"], r["seed"]): r for r in store.rows()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run that trains its original (cached) and saves every unlearned model."""
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.yaml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNLAB_CACHE", str(root / "cache"))
        result = invoke("run", "--config", root / "tiny.yaml", *ARGS, "--save-models", "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root


def test_original_from_a_state_dict_replaces_the_trained_one_and_its_hash_joins_the_rows(trained: Path,
                                                                                          tmp_path: Path,
                                                                                          monkeypatch):
    """The user's file holds the weights of the original the first run trained: every unlearned row gets the
    same metrics, while the run trains no original and keeps its rows apart (another run key)."""
    cached = next((trained / "cache").glob("original-*.pt"))
    model = ul.models.create("mlp", ul.make_task("digits", "random:0.1", seed=1))
    load_checkpoint(cached, model)
    mine = tmp_path / "my_model.pt"
    torch.save(model.state_dict(), mine)  # a plain state dict, no checksum file
    digest = hashlib.sha256(mine.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    cache.mkdir()
    for retrain in (trained / "cache").glob("retrain-*"):
        (cache / retrain.name).write_bytes(retrain.read_bytes())
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(cache))
    out = tmp_path / "out"
    result = invoke("run", "--config", trained / "tiny.yaml", *ARGS, "--original", mine, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"models: your original {mine} (sha256 {digest[:12]}…) + 4 retrained, 0 to train (4 cached)" in \
        " ".join(result.output.split())
    assert not list(cache.glob("original-*")), "an original was trained although the user gave one"
    mine_rows, theirs = rows(out), rows(trained / "out")
    assert mine_rows.keys() == theirs.keys()
    for key, row in mine_rows.items():
        assert row["status"] == "done"
        assert row["metrics"] == theirs[key]["metrics"]
        assert row["config"]["original_sha256"] == digest
        assert f"|original={digest[:16]}" in row["task_key"]
        assert row["run_key"] != theirs[key]["run_key"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["original"], config["resolved_original_sha256"]) == (str(mine), digest)


def test_original_in_our_checkpoint_format_with_its_checksum_is_accepted(trained: Path, tmp_path: Path,
                                                                         monkeypatch):
    saved = trained / "out" / "models" / "ft-seed1.pt"  # an unlearned model, as --save-models wrote it
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = invoke("run", "--config", trained / "tiny.yaml", "--methods", "ft", "--seeds", "1", "--threads", "1",
                    "--original", saved, "--out", out)
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    assert {r["config"]["original_sha256"] for r in rows(out).values()} == {digest}


def test_save_models_writes_every_unlearned_model_checksummed_and_loadable(trained: Path):
    models = trained / "out" / "models"
    assert sorted(p.name for p in models.glob("*.pt")) == ["ft-seed1.pt", "ft-seed2.pt", "retrain-seed1.pt",
                                                           "retrain-seed2.pt"]
    task = ul.make_task("digits", "random:0.1", seed=2)
    by_row = rows(trained / "out")
    for (method, seed), row in by_row.items():
        path = models / f"{method}-seed{seed}.pt"
        read_checked(path)  # intact, with its checksum file
        assert checksum_path(path).exists()
        assert row["stats"]["model_file"] == {"file": str(path), "sha256": hashlib.sha256(
            path.read_bytes()).hexdigest()}
        if seed == 2:  # the saved model is the one that was scored
            model = ul.models.create("mlp", task)
            meta = load_checkpoint(path, model)
            assert (meta["method"], meta["seed"]) == (method, seed)
            scores = ul.evaluate(model.eval(), task)
            for key in ("ua", "ra", "ta"):
                assert scores[key] == pytest.approx(row["metrics"][key], abs=1e-9), key


def test_without_save_models_only_certified_models_are_saved(tmp_path: Path, cache_dir: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = invoke("run", "--config", config, "--methods", "ft", "--seeds", "1", "--threads", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert not (out / "models").exists()
    again = invoke("run", "--config", config, "--methods", "ft", "--seeds", "1", "--threads", "1", "--out", out,
                   "--save-models")
    assert again.exit_code == 0, again.output
    assert "--save-models: 3 done row(s) ran without it and have no saved model" in " ".join(again.output.split())


def test_health_warnings_reach_run_log_and_the_row(tmp_path: Path, cache_dir: Path):
    """GA with a vanishing learning rate leaves the forget accuracy where it was: the run says so in run.log and
    keeps the warning in the row, and does not print a Python warning."""
    config = tmp_path / "tiny.yaml"
    config.write_text("recipe: {epochs: 3}\n")
    out = tmp_path / "out"
    result = invoke("run", "--config", config, "--methods", "ga", "--seeds", "1", "--threads", "1",
                    "--set", "ga.lr=1e-12", "--set", "ga.epochs=1", "--out", out)
    assert result.exit_code == 0, result.output
    expected = "ga (seed 1): warning — ga: forget accuracy did not move"
    assert expected in " ".join(result.output.split())
    assert "HealthWarning" not in result.output and "UserWarning" not in result.output
    assert expected in (out / "run.log").read_text()
    row = rows(out)[("ga", 1)]
    assert row["status"] == "done"
    assert len(row["stats"]["warnings"]) == 1 and "forget accuracy did not move" in row["stats"]["warnings"][0]
    assert "warnings" not in rows(out)[("retrain", 1)]["stats"]


@pytest.mark.parametrize(("hparams", "message"), [
    ({"lr": 1e-12, "epochs": 1}, r"ga: forget accuracy did not move \(100\.0 % → 100\.0 %\)"),
    ({"lr": 1.0, "epochs": 5}, r"ga: retain accuracy collapsed from 9\d\.\d % to \d+\.\d %"),
])
def test_the_api_warns_and_returns_the_health_warnings(trained_mlp, digits_task, hparams, message):
    with pytest.warns(HealthWarning, match=message):
        result = ul.unlearn(trained_mlp, digits_task, method="ga", **hparams)
    assert len(result.stats["warnings"]) == 1 and re.match(message, result.stats["warnings"][0])


def test_a_healthy_unlearning_warns_nothing(trained_mlp, digits_task):
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        healthy = ul.unlearn(trained_mlp, digits_task, method="rl")
    assert "warnings" not in healthy.stats
