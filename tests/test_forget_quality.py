"""Forget quality (bench/forget_quality.py): the NeurIPS 2023 ε forget score of a method, N unlearned vs N retrained.

digits / mlp with a tiny recipe and N = 3 (ε̄ = ceil(ln 2) = 1: an example scores 1 at ε = 0, ½ at ε = log 2 and
0 at ε = 50), so the whole module runs in seconds on one CPU thread.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

import unlearnlab as ul
from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.forget_quality import (
    DEFAULT_N_MODELS,
    HISTOGRAM_BUCKETS,
    eps_histogram,
    forget_quality,
    retrain_factory,
)
from unlearnlab.bench.plan import plan
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.forget_score import eps_bar

N = 3
TINY = ul.Recipe(epochs=4, batch_size=128, lr=0.1)


@pytest.fixture(scope="module")
def original(digits_task: ul.ForgetTask) -> torch.nn.Module:
    model = ul.models.create("mlp", digits_task, seed=1)
    ul.train(model, digits_task.train, TINY, seed=1)
    return model.eval()


@pytest.fixture(scope="module")
def retrained(digits_task: ul.ForgetTask) -> dict[int, torch.nn.Module]:
    """Retrained models by seed, trained on first use (a stand-in for the model cache)."""
    return {}


@pytest.fixture
def retrain_fn(digits_task: ul.ForgetTask, retrained: dict[int, torch.nn.Module]):
    calls: Counter[int] = Counter()

    def fn(seed: int) -> torch.nn.Module:
        calls[seed] += 1
        if seed not in retrained:
            model = ul.models.create("mlp", digits_task, seed=seed)
            ul.train(model, digits_task.retain, TINY, seed=seed)
            retrained[seed] = model.eval()
        return retrained[seed]

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def test_identical_families_score_one(digits_task, original, retrain_fn):
    """The same N retrained models as both families: every ε_i = 0, F = 1 and the final score is exactly 1."""
    res = forget_quality(digits_task, original, lambda seed: retrain_fn(seed), None, N, retrain_fn)
    n_f = len(digits_task.forget)
    assert res["F"] == 1.0
    assert res["final_score"] == 1.0
    assert res["eps_histogram"]["counts"][0] == n_f and res["eps_max"] == 0.0
    assert res["points_histogram"] == {"1": n_f, "0.5": 0, "0": 0}
    assert res["ra_u"] == res["ra_r"] and res["ta_u"] == res["ta_r"]


def test_untouched_original_scores_below_retrain_vs_retrain(digits_task, original, retrain_fn):
    """'ft' with a vanishing lr leaves N copies of the original (a collapsed family: ε = 50, F = 0); the
    registered 'retrain' method (its own init seeds, independent of retrain_fn's) is the finite-N noise floor."""
    noop = forget_quality(digits_task, original, "ft", {"lr": 1e-9, "epochs": 1}, N, retrain_fn)
    rr = forget_quality(digits_task, original, "retrain", TINY.to_dict(), N, retrain_fn)
    assert noop["F"] < rr["F"]
    assert noop["F"] == 0.0 and noop["eps_cap_fraction"] == 1.0 and noop["eps_median"] == 50.0
    assert rr["F"] > 0.0
    # N = 3: ε_i ∈ {0, log 2, 50}, i.e. points 1, 1/2, 0 (documented resolution limit)
    assert sum(rr["points_histogram"].values()) == len(digits_task.forget)
    assert rr["F"] == pytest.approx(rr["points_histogram"]["1"] / len(digits_task.forget)
                                    + 0.5 * rr["points_histogram"]["0.5"] / len(digits_task.forget))
    assert rr["method"] == "retrain" and rr["hparams"]["epochs"] == TINY.epochs
    # the original was not modified by the N unlearning runs
    fresh = ul.models.create("mlp", digits_task, seed=1)
    ul.train(fresh, digits_task.train, TINY, seed=1)
    for a, b in zip(fresh.state_dict().values(), original.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_result_is_json_and_reports_eps_bar(digits_task, original, retrain_fn):
    progress: list[tuple[str, float]] = []
    res = forget_quality(digits_task, original, "ft", {"lr": 1e-9, "epochs": 1}, N, retrain_fn, seed0=4,
                         progress=lambda label, f: progress.append((label, f)))
    again = json.loads(json.dumps(res, allow_nan=False))
    assert again == res
    assert res["definition"] == "forget_score_eps"
    assert res["eps_bar"] == math.ceil(math.log(N - 1)) == eps_bar(N) == 1
    assert res["n_models"] == N and res["n_forget"] == len(digits_task.forget)
    assert res["seeds_unlearned"] == res["seeds_retrained"] == [4, 5, 6]
    hist = res["eps_histogram"]
    assert hist["bucket_width"] == 0.5 and hist["upper"] == 50.0 and len(hist["counts"]) == HISTOGRAM_BUCKETS == 100
    assert sum(hist["counts"]) == len(digits_task.forget)
    assert {"forget_score_eps", "final_score"} <= set(res["definitions"])
    assert len(res["per_model"]["ra_u"]) == len(res["per_model"]["ta_r"]) == N
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_retrain_fn_called_once_per_seed(digits_task, original, retrain_fn):
    forget_quality(digits_task, original, "ft", {"lr": 1e-9, "epochs": 1}, N, retrain_fn, seed0=2)
    assert retrain_fn.calls == Counter({2: 1, 3: 1, 4: 1})


def test_eps_histogram_buckets():
    counts = eps_histogram(torch.tensor([0.0, 0.49, 0.5, 0.6931, 49.5, 50.0]).numpy())
    assert counts[0] == 2 and counts[1] == 2 and counts[99] == 2 and sum(counts) == 6


def test_bad_arguments(digits_task, original, retrain_fn):
    with pytest.raises(UnlearnlabError, match="n_models"):
        forget_quality(digits_task, original, "ft", None, 1, retrain_fn)
    with pytest.raises(UnlearnlabError, match="callable method"):
        forget_quality(digits_task, original, retrain_fn, {"lr": 0.1}, N, retrain_fn)
    with pytest.raises(UnlearnlabError, match="original"):
        forget_quality(digits_task, None, "ft", None, N, retrain_fn)
    with pytest.raises(UnlearnlabError, match="nn.Module"):
        forget_quality(digits_task, original, retrain_fn, None, N, lambda seed: None)
    assert DEFAULT_N_MODELS >= 2


def test_retrain_factory_serves_the_runner_cache(tmp_path: Path, digits_task):
    """retrain_factory → trained.retrained_model: seed s is trained once, then loaded from the content-addressed
    cache."""

    config = RunConfig(methods=("retrain",), seeds=(1,), recipe={"epochs": 2, "batch_size": 128}, device="cpu",
                       cache_dir=str(tmp_path), out=str(tmp_path / "out"))
    p = plan(config)
    cache = ModelCache(tmp_path)
    fn = retrain_factory(cache, p, digits_task)
    first = fn(1)
    assert len(list(tmp_path.glob("retrain-*.pt"))) == 1
    second = fn(1)
    assert first is not second
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    fn(2)
    assert len(list(tmp_path.glob("retrain-*.pt"))) == 2
