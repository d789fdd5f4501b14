"""The one cell runner (bench/cells.py): outcome classification, row writing, and the classification work's
refusal of a model that went non-finite on its last step; progress lines (bench/progress.py)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import unlearnlab as ul
from unlearnlab.bench import cells, classification
from unlearnlab.bench.cells import Row, Scores, attempt, check_finite, run_cell
from unlearnlab.bench.progress import GridClock, ProgressLines, duration
from unlearnlab.bench.store import ResultStore
from unlearnlab.counting import Counters
from unlearnlab.errors import DivergenceError
from unlearnlab.evaluation import evaluate

ROW = Row("task", "digits-random10 v1", "ft", 1, {"lr": 0.1}, "split")


def test_done_keeps_metrics_definitions_stats_and_artifact():
    outcome = attempt(lambda: Scores({"ua": 1.0, "label": "x", "none": None}, {"ua": "def"}, {"s": 2}, "weights"))
    assert (outcome.status, outcome.metrics, outcome.definitions, outcome.stats, outcome.artifact) == (
        "done", {"ua": 1.0, "label": "x", "none": None}, {"ua": "def"}, {"s": 2}, "weights")
    assert outcome.complete and outcome.error is None


def test_divergence_error_is_diverged_also_when_wrapped_by_a_rule():
    def raw() -> Scores:
        raise DivergenceError("loss became nan at epoch 3")

    def wrapped() -> Scores:  # a rule that catches and re-raises another error
        try:
            raw()
        except DivergenceError as err:
            raise RuntimeError("implicit surgery failed") from err
        return Scores({})

    def in_context() -> Scores:  # an error raised while handling a divergence
        try:
            raw()
        except DivergenceError:
            raise ValueError("solve failed")  # noqa: B904  (the divergence is the context, not the cause)
        return Scores({})

    for work in (raw, wrapped, in_context):
        outcome = attempt(work)
        assert outcome.status == "diverged", work.__name__
        assert outcome.complete
    assert "nan" in attempt(raw).error


def test_non_finite_metric_is_diverged_and_stored_as_none():
    outcome = attempt(lambda: Scores({"ua": math.nan, "ra": 99.0, "ta": math.inf}, {"ua": "d"}, {"s": 1}))
    assert outcome.status == "diverged"
    assert outcome.metrics == {"ua": None, "ra": 99.0, "ta": None}
    assert "ta" in outcome.error and "ua" in outcome.error
    assert outcome.stats == {"s": 1}


def test_other_errors_are_failed_with_their_traceback():
    def boom() -> Scores:
        raise KeyError("no such layer")

    outcome = attempt(boom)
    assert outcome.status == "failed" and not outcome.complete
    assert "Traceback" in outcome.error and "no such layer" in outcome.error
    assert outcome.message == "KeyError: 'no such layer'"


def test_interrupts_are_not_outcomes():
    def stop() -> Scores:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(stop)


def test_check_finite_names_the_bad_tensor():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    check_finite(model)
    with torch.no_grad():
        model[1].running_var[0] = math.inf
    with pytest.raises(DivergenceError, match=r"'1\.running_var'"):
        check_finite(model, "ft (seed 1)")


def test_a_model_that_went_non_finite_on_its_last_step_is_diverged_not_failed(digits_task, trained_mlp,
                                                                              monkeypatch):
    """No DivergenceError is raised (the loss was finite when checked), but the returned weights are NaN."""

    def last_step_explodes(model, task, **kwargs):
        out = ul.models.create("mlp", task)
        out.load_state_dict(model.state_dict())
        with torch.no_grad():
            next(iter(out.parameters())).fill_(math.nan)
        return SimpleNamespace(model=out, seconds=0.1, counters=Counters(), stats={}, certificate=None)

    monkeypatch.setattr(classification, "unlearn", last_step_explodes)
    reference = evaluate(trained_mlp, digits_task)
    outcome = attempt(lambda: classification.unlearn_and_score(trained_mlp, digits_task, "ft", 1, {}, reference,
                                                                "mia_efficacy_svc_conf"))
    assert outcome.status == "diverged", outcome.error
    assert "non-finite values" in outcome.error


def test_run_cell_writes_the_row_and_never_reruns_a_complete_one(tmp_path: Path):
    calls: list[int] = []
    logged: list[str] = []

    def work() -> Scores:
        calls.append(1)
        raise DivergenceError("inf loss")

    with ResultStore(tmp_path) as store:
        first = run_cell(store, ROW, work, logged.append)
        assert first is not None and first.status == "diverged"
        row = store.get(ROW.run_key)
        assert row["status"] == "diverged" and row["error"] == "inf loss"
        assert run_cell(store, ROW, work, logged.append) is None  # final: skipped
        assert calls == [1]
        assert logged and "ft (seed 1): diverged" in logged[0]


def test_a_failed_row_is_retried(tmp_path: Path):
    attempts: list[int] = []

    def flaky() -> Scores:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("transient")
        return Scores({"ua": 1.0})

    with ResultStore(tmp_path) as store:
        assert run_cell(store, ROW, flaky).status == "failed"
        assert run_cell(store, ROW, flaky).status == "done"
        assert store.get(ROW.run_key)["metrics"] == {"ua": 1.0}
        assert len(store.rows()) == 1


def test_row_identity_matches_the_store_key(tmp_path: Path):
    with ResultStore(tmp_path) as store:
        assert cells.start(store, ROW) == ROW.run_key
    assert ROW.label == "ft (seed 1)"
    assert Row("t", "p", "ga", 2, {}, "s", name="ga at T=3").label == "ga at T=3"


# ------------------------------------------------------------------------------------------------ progress lines


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_are_throttled_and_carry_elapsed_and_eta():
    clock, lines = _Clock(), []
    progress = ProgressLines(lines.append, interval=1.0, clock=clock)
    progress("training original (seed 1)", 0.0)
    for epoch in range(1, 11):  # ten epochs, 0.5 s each
        clock.now = 0.5 * epoch
        progress("training original (seed 1)", epoch / 10)
    assert lines[0] == "training original (seed 1): started"
    assert lines[-1] == "training original (seed 1): 100% · 5.0 s elapsed · done"
    middle = lines[1:-1]
    assert len(middle) == 4  # at most one a second
    assert middle[0] == "training original (seed 1): 20% · 1.0 s elapsed · ETA 4.0 s"
    progress("training original (seed 1)", 1.0)  # a second "finished" report adds nothing
    assert len(lines) == 6


def test_grid_clock_counts_skipped_cells_and_estimates_the_rest():
    clock = _Clock()
    grid = GridClock(10, skipped=4, clock=clock)
    clock.now = 30.0
    assert grid.tick() == "5/10 cells · 30 s elapsed · ETA 2 min 30 s"
    assert duration(7322) == "2 h 02 min" and duration(0.25) == "0.2 s"
