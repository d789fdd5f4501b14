"""Checksummed checkpoints: a cached model or training state that is truncated, empty, bit-flipped or missing its
checksum is never loaded — the cache reports it in one line and retrains it, and a run over a damaged cache
gives the same table as a clean run."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import unlearnlab as ul
from unlearnlab.bench.cache import ModelCache, load_checkpoint, save_checkpoint
from unlearnlab.bench.store import ResultStore
from unlearnlab.checksums import DamagedFileError, checksum_path, read_checked, sha256_hex
from unlearnlab.cli import app


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip(path: Path) -> None:
    """One bit of the byte in the middle of the file (inside the weights of a small model)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


def _no_checksum(path: Path) -> None:
    checksum_path(path).unlink()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "checksum mismatch"),
    "empty": (_empty, "empty file"),
    "bit-flip": (_flip, "checksum mismatch"),
    "checksum-deleted": (_no_checksum, "checksum missing"),
}


def test_a_checkpoint_is_written_with_a_sha256sum_checksum_file(tmp_path: Path, digits_task):
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, ul.models.create("mlp", digits_task), {"model": "mlp"})
    assert digest == sha256_hex(path.read_bytes())
    assert checksum_path(path).read_text() == f"{digest}  m.pt\n"  # `sha256sum -c m.pt.sha256` checks it


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_refused_before_it_is_parsed(tmp_path: Path, digits_task, monkeypatch, damage):
    path = tmp_path / "m.pt"
    save_checkpoint(path, ul.models.create("mlp", digits_task, seed=1), {"model": "mlp"})
    corrupt, reason = DAMAGE[damage]
    corrupt(path)
    parsed: list[bytes] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: parsed.append(1))  # must never be reached
    model = ul.models.create("mlp", digits_task, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DamagedFileError) as err:
        load_checkpoint(path, model)
    assert err.value.reason == reason
    assert parsed == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bytes_are_checked_against_the_digest_a_worker_was_given(tmp_path: Path, digits_task):
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, ul.models.create("mlp", digits_task), {"model": "mlp"})
    data = path.read_bytes()
    assert load_checkpoint(data, ul.models.create("mlp", digits_task), digest)["sha256"] == digest
    flipped = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    with pytest.raises(DamagedFileError, match="checksum mismatch"):
        load_checkpoint(flipped, ul.models.create("mlp", digits_task), digest)
    with pytest.raises(DamagedFileError, match="checksum missing"):
        load_checkpoint(data, ul.models.create("mlp", digits_task))


IDENTITY = {"kind": "retrain", "dataset": "digits", "model": "mlp", "recipe": {"epochs": 2}, "data": "abc", "seed": 3}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_cache_reports_a_damaged_entry_and_retrains_it(tmp_path: Path, digits_task, damage):
    notes: list[str] = []
    cache = ModelCache(tmp_path / "cache", log=notes.append)
    recipe = ul.Recipe(epochs=2)
    calls: list[int] = []

    def fit(model: torch.nn.Module) -> dict:
        calls.append(1)
        ul.train(model, digits_task.train, recipe, seed=3)
        return {}

    first = ul.models.create("mlp", digits_task, seed=3)
    cache.get_or_train(IDENTITY, first, fit)
    corrupt, reason = DAMAGE[damage]
    path = cache.path(IDENTITY)
    corrupt(path)
    assert not cache.is_cached(IDENTITY)
    again = ul.models.create("mlp", digits_task, seed=3)
    meta, cached = cache.get_or_train(IDENTITY, again, fit)
    assert (cached, len(calls)) == (False, 2)
    assert notes == [f"cache entry {path.name} is damaged ({reason}): retraining it"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert meta["sha256"] == sha256_hex(read_checked(path))  # the entry is intact again
    assert cache.is_cached(IDENTITY)


# ------------------------------------------------------------------------------------------------ the CLI

CONFIG = "recipe: {epochs: 3}\nhparams: {ft: {epochs: 2}}\n"
ARGS = ["--methods", "ft", "--seeds", "1,2", "--threads", "1"]


def _table_without_rte(markdown: str) -> list[str]:
    return [line.rsplit("|", 2)[0] if line.startswith("|") else line for line in markdown.splitlines()]


def _metrics(out: Path) -> dict:
    with ResultStore(out) as store:
        return {(r["method"], r["seed"]): r["metrics"] for r in store.rows()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """One uninterrupted run and its model cache (1 original, 2 retrains, 2 noise-floor retrains)."""
    root = tmp_path_factory.mktemp("clean")
    (root / "tiny.yaml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNLAB_CACHE", str(root / "cache"))
        result = CliRunner().invoke(app, ["run", "--config", str(root / "tiny.yaml"), *ARGS, "--out",
                                          str(root / "out")])
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_run_over_a_damaged_cache_retrains_and_gives_the_clean_table(clean: Path, tmp_path: Path, monkeypatch,
                                                                         damage):
    cache = tmp_path / "cache"
    shutil.copytree(clean / "cache", cache)
    entries = sorted(cache.glob("*.pt"))
    assert len(entries) == 5
    corrupt, reason = DAMAGE[damage]
    for entry in entries:
        corrupt(entry)
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(cache))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--config", str(clean / "tiny.yaml"), *ARGS, "--out", str(out)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "5 to train (0 cached)" in text  # the estimate does not count damaged entries as cached
    said = re.findall(r"cache entry (\S+) is damaged \(([^)]*)\): retraining it", text)
    assert sorted(said) == sorted((e.name, reason) for e in entries)
    assert "is damaged" in (out / "run.log").read_text()
    assert _metrics(out) == _metrics(clean / "out")  # no damaged weight was used
    assert _table_without_rte((out / "table.md").read_text()) == _table_without_rte(
        (clean / "out" / "table.md").read_text())
    for entry in entries:
        read_checked(entry)  # retrained and intact
