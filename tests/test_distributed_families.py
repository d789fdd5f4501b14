"""Language-model and diffusion runs across ranks (docs/scaling.md): two processes on the CPU with the gloo backend,
under DDP and FSDP, take the steps of the single-process run on the same global batches — the LM losses combined
as means over the global batch's answer tokens, the diffusion draws those of the global batch."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

pytest.importorskip("unlearnlab.language")  # the LM cases need the llm extra (transformers)

import dist_family_worker as worker
from dist_launch import two_rank_job

from unlearnlab.distributed.batches import shard_of
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families import get_family
from unlearnlab.generation.family import epsilon_loss
from unlearnlab.language.objectives import IdkNLL
from unlearnlab.utils import torch_generator

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with the gloo backend")

ALL_CASES = [*worker.CASES, *worker.TRAIN_CASES]
#: a distributed run's parameters may differ from the single-process run's by float summation order: at most
#: this fraction of how far the single-process run moved them (measured: ≤ 3·10⁻⁵; weighting the LM ranks' shares
#: by rows instead of answer tokens, or drawing diffusion noise per share, gives ≥ 5·10⁻³)
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    worker.save_models(folder)
    return folder


@pytest.fixture(scope="module")
def single(models: Path) -> dict:
    """Every case in this process (one device; an "fsdp/" case is its plain case here)."""
    return {name: worker.run_case(name, models) for name in ALL_CASES if not name.startswith("fsdp/")}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory, models: Path) -> list[dict]:
    """Every case's outcome on rank 0 and rank 1 of one ``torchrun --nproc-per-node 2`` job."""
    return two_rank_job(worker.__file__, tmp_path_factory.mktemp("ranks"), str(models), *ALL_CASES)


def original(models: Path, case: str) -> dict[str, torch.Tensor]:
    return worker.load(models, "ddpm" if "ddpm/" in case else "llm")[0].state_dict()


def assert_same_steps(case: str, two_ranks: list[dict], single: dict, models: Path) -> None:
    """Both ranks end with the same parameters, bit for bit, and these are the single-process run's:
    ‖θ_ranks − θ_single‖ ≤ RELATIVE_TOLERANCE · ‖θ_single − θ_0‖."""
    rank0, rank1 = two_ranks[0][case], two_ranks[1][case]
    assert "error" not in rank0, rank0.get("error")
    reference, start = single[case.removeprefix("fsdp/")]["state"], original(models, case)
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), f"{case}: ranks differ on {key}"
    gap = sum(float(((rank0["state"][k].double() - reference[k].double()) ** 2).sum()) for k in reference) ** 0.5
    moved = sum(float(((start[k].double() - reference[k].double()) ** 2).sum()) for k in reference) ** 0.5
    assert moved > 1e-3, f"{case}: the run barely moved the parameters ({moved})"
    assert gap <= RELATIVE_TOLERANCE * moved, f"{case}: {gap:.3g} from one process, which moved {moved:.3g}"


LM_CASES = [name for name in ALL_CASES if "llm/" in name]
DDPM_CASES = [name for name in ALL_CASES if "ddpm/" in name and name != "ddpm/sfron"]


@pytest.mark.parametrize("case", LM_CASES)
def test_language_model_runs_on_two_ranks_take_the_single_process_steps(case, two_ranks, single, models):
    assert_same_steps(case, two_ranks, single, models)


@pytest.mark.parametrize("case", DDPM_CASES)
def test_diffusion_runs_on_two_ranks_take_the_single_process_steps_and_draws(case, two_ranks, single, models):
    """Same steps, and the denoiser's noise stream ends where one process leaves it (under FSDP too, where the
    steps run on a sharded copy)."""
    assert_same_steps(case, two_ranks, single, models)
    expected = single[case.removeprefix("fsdp/")]["noise"]
    for rank in range(2):
        assert torch.equal(two_ranks[rank][case]["noise"], expected)


@pytest.mark.parametrize("case", ["llm/npo-gd+eupmu", "fsdp/llm/npo-gd+eupmu"])
def test_eupmu_on_a_language_model_learns_the_single_process_multiplier(case, two_ranks, single):
    lam = single["llm/npo-gd+eupmu"]["stats"]["lambda_final"]
    assert lam > 0.1  # the dual ascent moved
    assert two_ranks[0][case]["stats"]["lambda_final"] == pytest.approx(lam, rel=1e-5)
    assert two_ranks[1][case]["stats"]["lambda_final"] == two_ranks[0][case]["stats"]["lambda_final"]


def test_a_diffusion_objective_that_is_not_a_per_sample_mean_is_refused_on_every_rank(two_ranks, single):
    for rank in range(2):
        assert "WeightedAscent is not a mean of per-sample losses" in two_ranks[rank]["ddpm/sfron"]["error"]
        assert "parallel='none'" in two_ranks[rank]["ddpm/sfron"]["error"]
    assert "error" not in single["ddpm/sfron"]  # one process runs it


# ------------------------------------------------------------------------------------------- one process


def test_token_weighted_shares_make_the_global_answer_token_mean(models):
    """Shares' means over answer tokens, weighted by their token counts, give the whole batch's mean; weighted by
    their rows they do not (the answers differ in length)."""
    model, data = worker.load(models, "llm")
    batch = data["task"].forget.gather(torch.arange(3))
    family = get_family("language_model")
    with torch.no_grad():
        whole = family.loss(model, batch)
        parts = [family.weighted_loss(model, shard_of(batch, rank, 2)) for rank in range(2)]
    tokens = sum(float(w) for _, w in parts)
    assert sum(float(loss) * float(w) for loss, w in parts) / tokens == pytest.approx(float(whole), rel=1e-5)
    by_rows = (2 * float(parts[0][0]) + float(parts[1][0])) / 3
    assert by_rows != pytest.approx(float(whole), rel=1e-3)


def test_a_share_of_a_diffusion_batch_gets_the_global_batchs_draws(models):
    """The per-sample ε-losses of two shares, each drawn from the same generator state, are the whole batch's."""
    model, data = worker.load(models, "ddpm")
    batch = data["retain"].gather(torch.arange(15))

    def losses(part: dict) -> torch.Tensor:
        with torch.no_grad():
            return epsilon_loss(model, part, torch_generator(0, "test"), reduction="none")

    whole = losses(batch)
    torch.testing.assert_close(torch.cat([losses(shard_of(batch, rank, 2)) for rank in range(2)]), whole)



class LongerElsewhere:
    """Stands in for the runtime of a rank whose peer's share, with its refusals, is ``width`` tokens long."""

    def __init__(self, width: int):
        self.width = width

    def global_max(self, value: int) -> int:
        return max(value, self.width)


def test_a_refusal_batch_too_long_on_another_rank_is_an_error_on_this_one(models):
    """The context check takes the global batch's longest sequence, so every rank raises it (none waits alone)."""
    task = worker.load(models, "llm")[1]["task"]
    share = task.forget.gather(torch.arange(2))
    ctx = SimpleNamespace(generator=lambda name: torch_generator(1, name), dist=None)
    own = IdkNLL(_pool=task.refusal_ids, _context=1000).refusal_batch(share, ctx)["input_ids"].shape[1]
    objective = IdkNLL(_pool=task.refusal_ids, _context=own)
    ctx.dist = LongerElsewhere(own)
    assert objective.refusal_batch(share, ctx)["input_ids"].shape[1] == own  # the longest fits
    ctx.dist = LongerElsewhere(own + 1)
    with pytest.raises(UnlearnlabError, match=f"A question with a refusal is {own + 1} tokens long, more than the "
                                              f"model's context \\({own}\\)"):
        objective.refusal_batch(share, ctx)
