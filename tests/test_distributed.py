"""Distributed runs (docs/scaling.md): two processes on the CPU with the gloo backend take the steps of the
single-process run on the same global batches; ``unlearnlab run`` across two ranks writes each row once, and only
rank 0 touches the output folder and the model cache."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dist_worker as worker
import pytest
import torch
import torch.distributed as dist
from dist_launch import environment, free_port, two_rank_job
from typer.testing import CliRunner

import unlearnlab as ul
import unlearnlab.api as api
from unlearnlab.bench.executors import resolve
from unlearnlab.cli import app
from unlearnlab.distributed.batches import Shard, drawn_for, global_rows, shard_of, split_rows
from unlearnlab.distributed.env import Launch
from unlearnlab.distributed.serve import single_process_only
from unlearnlab.families import get_family
from unlearnlab.families.classification import Classification

pytestmark = [pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                 reason="needs torch.distributed with the gloo backend"),
              pytest.mark.filterwarnings("ignore:.*forget accuracy did not move:UserWarning")]

LAUNCH = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
#: every case the two ranks run in one torchrun job (see tests/dist_worker.py)
TWO_RANK_CASES = [*worker.CASES, *worker.TRAIN_CASES, "fsdp/shards"]


# ------------------------------------------------------------------------------------------- two ranks vs one


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, trained_mlp: torch.nn.Module) -> Path:
    path = tmp_path_factory.mktemp("weights") / "original.pt"
    torch.save(trained_mlp.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, weights: Path) -> dict:
    """The cases in this process (no launch variables: one device). "train/resume" leaves the state of its first
    epoch in ``single["folder"]``."""
    folder = tmp_path_factory.mktemp("single")
    forget, retain = worker.task_data()
    model = worker.original(weights)
    cases = {name: worker.run_case(name, model, forget, retain, folder)
             for name in [*worker.CASES, *worker.TRAIN_CASES] if name != "certified-gradclip/secure"}
    return {**cases, "folder": folder}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory, weights: Path, single: dict) -> list[dict]:
    """Every case's outcome on rank 0 and rank 1 of one ``torchrun --nproc-per-node 2`` job; rank 0 finds the
    training state the single-process "train/resume" left after its first epoch."""
    out = tmp_path_factory.mktemp("ranks")
    for state in single["folder"].glob("resume.state*"):
        shutil.copy(state, out / state.name)
    return two_rank_job(worker.__file__, out, str(weights), *TWO_RANK_CASES)


def assert_same_steps(case: str, two_ranks: list[dict], single: dict) -> None:
    rank0, rank1 = two_ranks[0][case], two_ranks[1][case]
    assert "error" not in rank0, rank0.get("error")
    for key, value in rank0["state"].items():  # every rank ends with the same model, bit for bit
        assert torch.equal(value, rank1["state"][key]), f"{case}: ranks differ on {key}"
        torch.testing.assert_close(value, single[case]["state"][key], rtol=0, atol=1e-5,
                                   msg=lambda m, key=key: f"{case}: {key} differs from one process: {m}")


@pytest.mark.parametrize("case", ["ft", "salun", "salun+dualoptim", "ungrad", "certified-gradclip", "minnorm-og",
                                  "train"])
def test_two_ddp_ranks_take_the_single_process_steps(case, two_ranks, single):
    assert_same_steps(case, two_ranks, single)


def test_every_rank_resumes_a_training_from_rank_0s_state(two_ranks, single):
    """Rank 0 alone reads the state the single-process run left after epoch 1; had the other rank not received it,
    the ranks would train different epochs (and never meet)."""
    assert sorted(p.name for p in single["folder"].iterdir()) == ["resume.state", "resume.state.sha256"]
    assert two_ranks[0]["train/resume"]["stats"]["optimizer_steps"] == single["train/resume"]["stats"][
        "optimizer_steps"] == 14  # 7 steps per epoch, the first epoch's counted in the state
    assert_same_steps("train/resume", two_ranks, single)


@pytest.mark.parametrize("case", ["eupmu", "fsdp/eupmu"])
def test_eupmu_learns_the_single_process_multiplier_from_the_global_retain_loss(case, two_ranks, single):
    assert_same_steps(case, two_ranks, single)
    lam = single[case]["stats"]["lambda_final"]
    assert lam > 0.1  # the dual ascent moved: the retain signal drives λ here
    assert two_ranks[0][case]["stats"]["lambda_final"] == pytest.approx(lam, rel=1e-5)
    assert two_ranks[1][case]["stats"]["lambda_final"] == two_ranks[0][case]["stats"]["lambda_final"]


@pytest.mark.parametrize("case", ["fsdp/ft", "fsdp/rl+dualoptim", "fsdp/scrub", "fsdp/train"])
def test_two_fsdp_ranks_take_the_single_process_steps(case, two_ranks, single):
    assert_same_steps(case, two_ranks, single)


@pytest.mark.parametrize("case", ["bn/ft", "fsdp/bn/ft"])
def test_batchnorm_statistics_end_averaged_so_every_rank_returns_the_same_model(case, two_ranks):
    rank0, rank1 = (two_ranks[r][case]["state"] for r in range(2))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    fresh = ul.models.create("bn_cnn", worker.task(), seed=4).state_dict()
    assert not torch.equal(rank0["1.1.running_mean"], fresh["1.1.running_mean"])


def test_fsdp_shards_parameters_and_both_dualoptim_states(two_ranks):
    fractions = [two_ranks[r]["fsdp/shards"]["shards"] for r in range(2)]
    assert set(fractions[0]) == {"params", "forget/AdamW/exp_avg", "forget/AdamW/exp_avg_sq",
                                 "retain/SGD/momentum_buffer"}
    for key in fractions[0]:  # each rank holds a disjoint half (up to a padded row) of every tensor
        assert fractions[0][key] + fractions[1][key] == pytest.approx(1.0)
        assert 0.4 < fractions[0][key] < 0.6


def test_secure_noise_is_one_draw_for_every_rank(two_ranks):
    rank0, rank1 = (two_ranks[r]["certified-gradclip/secure"]["state"] for r in range(2))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    seeded = two_ranks[0]["certified-gradclip"]["state"]
    assert not all(torch.equal(rank0[k], seeded[k]) for k in rank0)  # the secure seed is not the run seed's


@pytest.mark.parametrize("case", ["ft", "fsdp/ft"])
def test_counters_sum_the_samples_of_every_rank(case, two_ranks, single):
    # 2 epochs over 101 retain samples; the ranks' shares add up to the single-process count (under FSDP through
    # the counting hooks carried over to the sharded copy)
    assert two_ranks[0][case]["stats"]["forward_samples"] == single[case]["stats"]["forward_samples"] == 202


@pytest.mark.parametrize(("case", "words"), [
    ("fsdp/salun", ["parallel='fsdp' cannot run the modifier SaliencyMask", "parallel='ddp'"]),
    ("sfron", ["WeightedAscent is not a mean of per-sample losses", "parallel='none'"]),
])
def test_parts_that_cannot_run_across_ranks_are_refused_on_every_rank(case, words, two_ranks, single):
    for rank in range(2):
        for word in words:
            assert word in two_ranks[rank][case]["error"]
    assert "error" not in single[case]  # one process runs them


# ------------------------------------------------------------------------------------------- unlearnlab run


GRID = """dataset: digits
model: mlp
forget: random:0.1
methods: [retrain, ft, sfron]
seeds: [1]
recipe: {epochs: 2}
hparams: {ft: {epochs: 1}, sfron: {iterations: 2}}
threads: 1
noise_floor: false
"""


def test_unlearnlab_run_on_two_ranks_writes_each_row_once_from_rank_0(tmp_path):
    """Started by a launcher that only sets the standard variables; rank 1 is given its own --out and model cache,
    which must never appear. SFR-on cannot run across ranks: its cell fails on both, rank 0 exits 1 after the grid
    and releases rank 1, which exits 0."""
    config = tmp_path / "grid.yaml"
    config.write_text(GRID)
    port, logs = str(free_port()), []
    procs = []
    for rank in range(2):
        out, cache = tmp_path / f"out{rank}", tmp_path / f"cache{rank}"
        log = open(tmp_path / f"rank{rank}.log", "w")
        logs.append(log)
        env = environment(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=port, UNLEARNLAB_CACHE=str(cache), COLUMNS="200")
        procs.append(subprocess.Popen([sys.executable, "-m", "unlearnlab.cli", "run", "-c", str(config),
                                       "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
        for log in logs:
            log.close()
    text = (tmp_path / "rank0.log").read_text()
    assert codes == [1, 0], text[-3000:] + (tmp_path / "rank1.log").read_text()[-3000:]
    assert "executor torchrun × 2" in text
    with sqlite3.connect(tmp_path / "out0" / "results.sqlite") as db:
        rows = db.execute("SELECT method, seed, status, error FROM runs ORDER BY method").fetchall()
    assert [row[:3] for row in rows] == [("ft", 1, "done"), ("retrain", 1, "done"), ("sfron", 1, "failed")]
    assert "WeightedAscent is not a mean of per-sample losses" in rows[2][3]
    log = (tmp_path / "out0" / "run.log").read_text().splitlines()
    assert len([line for line in log if ": done · " in line]) == 2
    assert len([line for line in log if ": failed · " in line]) == 1
    assert len(list((tmp_path / "cache0").glob("*.pt"))) == 2  # the original and the retrain, stored by rank 0
    assert not (tmp_path / "out1").exists() and not (tmp_path / "cache1").exists()


# ------------------------------------------------------------------------------------------- one process


def test_a_global_batch_splits_into_shares_that_cover_it_once():
    batch = {"x": torch.arange(10.0)[:, None], "y": torch.arange(10)}
    shares = [shard_of(batch, rank, 4) for rank in range(4)]
    assert [s["y"].tolist() for s in shares] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert [(s.start, s.weight, s.total) for s in shares] == [(0, 3, 10), (3, 3, 10), (6, 2, 10), (8, 2, 10)]
    assert [split_rows(10, r, 4) for r in range(4)] == [(0, 3), (3, 3), (6, 2), (8, 2)]


def test_a_rank_without_rows_holds_a_stand_in_of_weight_zero():
    share = shard_of({"y": torch.tensor([7])}, 1, 2)
    assert isinstance(share, Shard) and share["y"].tolist() == [7] and share.weight == 0 and share.total == 1


def test_draws_for_a_share_are_the_global_batch_draws_of_its_rows():
    batch = {"y": torch.zeros(10, dtype=torch.long)}

    def draw(n: int) -> torch.Tensor:
        return torch.randint(0, 100, (n,), generator=torch.Generator().manual_seed(3))

    whole = drawn_for(batch, draw)
    assert torch.equal(whole, draw(10))  # one process: the batch's own draw
    parts = [drawn_for(shard_of(batch, r, 3), draw) for r in range(3)]
    assert torch.equal(torch.cat(parts), whole)
    assert global_rows(shard_of(batch, 2, 3)) == global_rows(batch) == 10


def test_the_launch_comes_from_the_standard_variables():
    assert Launch.from_environ({}) is None and Launch.from_environ({"WORLD_SIZE": "1"}) is None
    assert Launch.from_environ(LAUNCH) == Launch(1, 2, 1)
    with pytest.raises(ul.UnlearnlabError, match="MASTER_PORT is not set"):
        Launch.from_environ({k: v for k, v in LAUNCH.items() if k != "MASTER_PORT"})
    with pytest.raises(ul.UnlearnlabError, match="RANK=2, LOCAL_RANK=1 do not fit WORLD_SIZE=2"):
        Launch.from_environ({**LAUNCH, "RANK": "2"})


def test_one_process_has_no_runtime_and_rejects_an_unknown_mode():
    assert ul.distributed.runtime() is None and ul.distributed.runtime("fsdp") is None
    with pytest.raises(ul.UnlearnlabError, match="parallel='zero'"):
        ul.distributed.runtime("zero")


def test_the_grid_executor_is_torchrun_under_torchrun_and_nowhere_else(monkeypatch):
    with pytest.raises(ul.UnlearnlabError, match="start the run with `torchrun"):
        resolve("torchrun", None)
    for key, value in LAUNCH.items():
        monkeypatch.setenv(key, value)
    assert resolve(None, None) == ("torchrun", 2)
    with pytest.raises(ul.UnlearnlabError, match="--executor local: under torchrun each cell runs on every rank"):
        resolve("local", 2)
    with pytest.raises(ul.UnlearnlabError, match="unlearnlab tune runs in a single process"):
        single_process_only("unlearnlab tune")


def test_run_refuses_parallel_without_torchrun(tmp_path):
    result = CliRunner().invoke(app, ["run", "--parallel", "fsdp", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--parallel fsdp shares a run across the ranks of a torchrun job" in result.output
    assert not (tmp_path / "out").exists()


class LocalDraws(Classification):
    """A family of one's own whose loss draws per-sample noise for the batch it is given, not the global batch:
    it says so, and its runs are refused across ranks."""

    name = "local_draws"
    distributed = False


def test_a_family_whose_runs_cannot_be_shared_is_refused_under_torchrun(monkeypatch):
    monkeypatch.setattr(api, "runtime", lambda parallel: ul.distributed.Runtime(0, 2, torch.device("cpu"), "ddp"))
    with pytest.raises(ul.UnlearnlabError, match="The local_draws family does not run across ranks"):
        api._runtime(None, LocalDraws())
    for family in ("classification", "generation"):
        assert api._runtime(None, get_family(family)).world == 2
