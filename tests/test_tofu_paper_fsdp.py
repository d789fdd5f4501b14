"""The paper-tier LLM script of docs/scaling.md runs as written on two ranks under FSDP (gloo, CPU): the ranks end
with the same model, equal to the single-process run on the same global batches, and the main process writes the
OpenUnlearning files and the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from dist_launch import environment, free_port, two_rank_job
from llm_helpers import write_paper_files

from unlearnlab import language as lm
from unlearnlab.bench.store import ResultStore

WORKER = Path(__file__).parent / "tofu_paper_worker.py"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tofu-paper-fsdp")
    return write_paper_files(root)


def _args(files: Path) -> list[str]:
    return [str(files / "TOFU"), str(files / "target"), str(files / "retain")]


def test_the_documented_paper_tier_script_runs_on_two_fsdp_ranks_as_on_one_process(files: Path, tmp_path: Path):
    single = tmp_path / "single"
    single.mkdir()
    done = subprocess.run([sys.executable, str(WORKER), str(single), *_args(files), "none"], env=environment(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = torch.load(single / "rank0.pt", weights_only=True)["state"]
    sharded = tmp_path / "fsdp"
    sharded.mkdir()
    ranks = [r["state"] for r in two_rank_job(WORKER, sharded, *_args(files), "fsdp")]
    target, _ = lm.load_lm(files / "target")
    start = {k: v.float() for k, v in target.state_dict().items()}
    for name, value in reference.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # every rank holds the same model
        moved = (value.float() - start[name]).norm()
        assert (ranks[0][name].float() - value.float()).norm() <= 1e-4 * moved + 1e-6, name
    assert any((v.float() - start[k]).norm() > 0 for k, v in reference.items())  # the run moved the model
    for out in (single, sharded):
        assert (out / "tofu-forget10" / "TOFU_EVAL.json").is_file()
        assert (out / "tofu-forget10" / "model" / "config.json").is_file()


def _rows(out: Path) -> dict[tuple[str, int], dict]:
    with ResultStore(out) as store:
        return {(r["method"], r["seed"]): r for r in store.rows()}


def test_the_paper_tier_protocol_runs_under_torchrun_with_fsdp_as_in_one_process(files: Path, tmp_path: Path):
    """`torchrun … unlearnlab run --protocol tofu-forget10 --parallel fsdp`: rank 0 writes each row once, with the
    numbers of the single-process run (the ranks share each unlearning; rank 0 evaluates)."""
    common = ["run", "--protocol", "tofu-forget10", "--root", str(files / "TOFU"), "--original", str(files / "target"),
              "--set", f"retain.model={files / 'retain'}", "--methods", "llm/ga-gd", "--set", "llm/ga-gd.epochs=1",
              "--set", "llm/ga-gd.lr=1e-3",
              "--seeds", "1", "--threads", "1"]
    env = environment(UNLEARNLAB_CACHE=str(tmp_path / "cache"))
    single = subprocess.run([sys.executable, "-m", "unlearnlab.cli", *common, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    shared = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                             "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "unlearnlab.cli",
                             *common, "--parallel", "fsdp", "--out", str(tmp_path / "two")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert shared.returncode == 0, shared.stdout[-3000:] + shared.stderr[-3000:]
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert sorted(two) == sorted(one) == [("llm/ga-gd", 1), ("retain", 1), ("target", 1)]
    assert {r["status"] for r in two.values()} == {"done"}
    for key in ("forget_quality", "model_utility", "extraction_strength", "privleak"):
        assert two[("llm/ga-gd", 1)]["metrics"][key] == pytest.approx(one[("llm/ga-gd", 1)]["metrics"][key],
                                                                      rel=1e-3, abs=1e-4), key
    unlearned, target = one[("llm/ga-gd", 1)]["metrics"], one[("target", 1)]["metrics"]
    assert unlearned["model_utility"] != target["model_utility"]  # the row unlearned something


def test_a_mini_tofu_protocol_refuses_torchrun(tmp_path: Path):
    """The generated tiers train their own models in one process: under torchrun they stop before writing."""
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(free_port()), "-m", "unlearnlab.cli", "run",
                           "--protocol", "tofu-mini-forget10", "--quick", "--out", str(tmp_path / "out")],
                          env=environment(UNLEARNLAB_CACHE=str(tmp_path / "cache")), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "runs in a single process, not under torchrun" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()
