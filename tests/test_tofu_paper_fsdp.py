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

from dist_launch import environment, two_rank_job
from llm_helpers import tiny_data, trained_tiny

from unlearnlab import language as lm

WORKER = Path(__file__).parent / "tofu_paper_worker.py"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tofu-paper-fsdp")
    data = tiny_data()
    data.write(root / "TOFU")
    for split, name in (("full", "target"), ("retain90", "retain")):
        model, tok = trained_tiny(data, split)
        lm.save_lm(model, tok, root / name)
    return root


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
