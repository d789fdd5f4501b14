"""The certified budget experiment (docs/certified_budget.md, experiments/certified_budget.py) at a tiny size."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.store import ResultStore
from unlearnlab.certify import Certificate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.experiments import ExperimentContext
from unlearnlab.experiments import certified_budget as cb

# the smallest grid (`QUICK_GRIDS`, docs/certified_budget.md, "Grids"), ε = 1, one budget, one seed pair,
# a short original
TINY = dataclasses.replace(cb.QUICK, epsilons=(1.0,), budgets=(1,), grids=cb.QUICK_GRIDS, original_epochs=5)


def _ctx(tmp_path, store, quick=True, seeds=()):
    return ExperimentContext(out=tmp_path / "out", quick=quick, seeds=seeds, store=store,
                             cache=ModelCache(tmp_path / "cache"), device=torch.device("cpu"),
                             protocol="certified-budget")


@pytest.fixture
def counted(monkeypatch):
    calls: list[str] = []
    real = cb.unlearn

    def wrapper(*args, **kwargs):
        calls.append(kwargs["method"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cb, "unlearn", wrapper)
    return calls


def test_rows_certificates_and_resume(tmp_path, counted, monkeypatch):
    monkeypatch.setattr(cb, "QUICK", TINY)
    with ResultStore(tmp_path / "out") as store:
        ctx = _ctx(tmp_path, store)
        table = cb.run(ctx)
        rows = store.rows()
        # retrain once per (E, seed pair) + 3 certified methods × 1 config × 1 ε
        assert len(rows) == 4 and sorted(counted) == sorted([*cb.CERTIFIED, "retrain"])
        assert {r["status"] for r in rows} == {"done"}
        for r in rows:
            m = r["metrics"]
            assert all(math.isfinite(m[k]) and 0 <= m[k] <= 100 for k in ("test_acc", "val_acc", "ua", "ra"))
            assert r["seed"] == 1234 and r["config"]["split_seed"] == 142 and r["config"]["epochs"] == 1
            if r["method"] == "retrain":
                assert r["config"]["epsilon"] is None and "certificate" not in r["stats"]
                assert m["cert_epsilon"] is None and m["cert_delta"] is None
            else:
                cert = Certificate.from_dict(r["stats"]["certificate"])
                assert cert.verify(allow_uncertified=True) and not cert.certified  # research curve: seeded
                assert cert.epsilon == pytest.approx(1.0, rel=1e-9) and cert.delta == cb.DELTA
                assert m["cert_epsilon"] == cert.epsilon and cert.method == r["method"]
                assert r["stats"]["noisy_steps"] + r["stats"]["finetune_steps"] == math.ceil(1172 / 32)
        assert (tmp_path / "out" / "certified_budget.md").read_text() == table
        for method in cb.METHODS:
            assert f"| {method} |" in table
        assert "n/a" not in table

        # a rerun resumes: nothing is run again, no duplicate rows, same table
        counted.clear()
        assert cb.run(ctx) == table
        assert counted == [] and len(store.rows()) == 4

        # an interrupted cell (status running) is re-run in place, once
        row = next(r for r in store.rows() if r["method"] == "certified-modelclip")
        store.start(task_key=row["task_key"], protocol=row["protocol"], method=row["method"], seed=row["seed"],
                    config=row["config"], split_hash=row["split_hash"])
        assert cb.run(ctx) == table  # deterministic: same seeds, same numbers
        assert counted == ["certified-modelclip"] and len(store.rows()) == 4
        assert {r["status"] for r in store.rows()} == {"done"}


def test_infeasible_cell_is_a_failed_row_and_the_grid_goes_on(tmp_path):
    # T = 14 noisy steps of (1, 1, 1e-3, 500) exceed a budget of 1 epoch at batch 128 (10 steps)
    v = dataclasses.replace(TINY, batch_size=128, grids={**cb.QUICK_GRIDS, "certified-modelclip": ()})
    with ResultStore(tmp_path / "out") as store:
        table = cb.run_variant(_ctx(tmp_path, store), v)
        status = {r["method"]: r["status"] for r in store.rows()}
    assert status == {"retrain": "done", "certified-gradclip": "failed", "output-perturbation": "done"}
    assert "| certified-gradclip | 1 | n/a (failed) |" in table and "exceed the budget" in table


def test_split_seeds_from_context(tmp_path):
    # the protocol's seeds are split seeds; global seeds come from the variant (docs/certified_budget.md,
    # "Seeds and original model")
    assert cb.MNIST.seed_pairs() == [(142, 1234), (142, 9153), (230, 1234), (230, 9153)]
    v = dataclasses.replace(TINY, grids={m: () for m in cb.CERTIFIED})
    assert [(c.split_seed, c.global_seed) for c in cb.cells(v, (7, 8))] == [(7, 1234), (8, 1234)]
    with ResultStore(tmp_path / "out") as store:
        cb.run_variant(_ctx(tmp_path, store, seeds=(7,)), v)
        rows = store.rows()
        assert [(r["method"], r["config"]["split_seed"], r["seed"]) for r in rows] == [("retrain", 7, 1234)]


def test_reference_split_sizes():
    ds = cb.load_dataset("digits")
    task = cb.reference_task(ds, 142)
    n = len(ds.y_train)
    n_val = int(0.1 * n)
    assert len(task.val) == n_val and len(task.forget) == int(0.1 * (n - n_val))
    assert len(task.retain) + len(task.forget) == n - n_val
    assert cb.reference_task(ds, 142).split_hash == task.split_hash != cb.reference_task(ds, 230).split_hash


def test_full_size_without_data_names_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cb, "FULL", (dataclasses.replace(cb.MNIST, root=str(tmp_path / "no-data")),))
    with ResultStore(tmp_path / "out") as store:
        with pytest.raises(UnlearnlabError, match=r"(?s)mnist.*download=True.*--quick"):
            cb.run(_ctx(tmp_path, store, quick=False))
        assert store.rows() == []
