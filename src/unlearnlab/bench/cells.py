"""One grid cell: run its work, classify the outcome (done / diverged / failed), write its result row.

Every place that fills a results store goes through this module: the grid runner (its driver finishes the rows
of cells run by an executor), the forget-quality pass, tuning trials and the paper experiments. The work itself
is injected — a callable returning :class:`Scores` — so the module knows nothing about the model family: task
construction, unlearning and evaluation belong to the caller (docs/architecture.md, "One cell runner").

Classification of an outcome:

* ``done``: the work returned and every metric is a finite number (or ``None``/text);
* ``diverged``: the work raised :class:`~unlearnlab.errors.DivergenceError` (also when it is the cause or the
  context of another exception, e.g. raised inside an update rule and re-wrapped), or returned a metric that is
  NaN or infinite (stored as ``None``). Callers check the unlearned model with :func:`check_finite` before
  scoring it, so a model that went non-finite on the very last step is ``diverged`` too, not an evaluation
  error;
* ``failed``: any other exception; the row keeps the traceback and the next run retries it.

``done`` and ``diverged`` rows are final: :func:`run_cell` and the runner never run them again.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from rich.markup import escape
from torch import nn

from unlearnlab.bench.store import ResultStore, config_hash, run_key
from unlearnlab.errors import DivergenceError

Status = Literal["done", "diverged", "failed"]
#: ``log(text)``; text may hold rich markup (the CLI renders it, ``run.log`` keeps the plain text)
Log = Callable[[str], None]
#: the longest traceback kept in a failed row
ERROR_CHARS = 4000


@dataclass(frozen=True)
class Scores:
    """What a cell's work returns: its metrics (with their definitions), statistics, and an optional artifact
    (e.g. a certified model and its certificate) that the caller saves itself; artifacts never enter a row."""

    metrics: dict[str, Any]
    definitions: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    artifact: Any = None


@dataclass(frozen=True)
class Outcome:
    """A classified cell: its status, what the row stores, a one-line ``message`` for the log."""

    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    #: the row's ``error`` column: the divergence message, or the (tail of the) traceback of a failure
    error: str | None = None
    message: str | None = None
    artifact: Any = None

    @property
    def complete(self) -> bool:
        """``done`` and ``diverged`` rows are final; ``failed`` ones are retried by the next run."""
        return self.status != "failed"


def diverged(err: BaseException) -> bool:
    """True when ``err`` is a :class:`DivergenceError` or has one in its cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, DivergenceError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def failure(err: BaseException, prefix: str = "") -> Outcome:
    """The ``failed`` outcome of an exception: the traceback in ``error``, ``Type: message`` in ``message``."""
    return Outcome("failed", error="".join(traceback.format_exception(err))[-ERROR_CHARS:],
                   message=f"{prefix}{type(err).__name__}: {err}")


def attempt(work: Callable[[], Scores]) -> Outcome:
    """Run ``work()`` and classify its outcome (module docstring); never raises for a method's error.

    ``KeyboardInterrupt`` and ``SystemExit`` propagate: an interrupted cell has no outcome.
    """
    try:
        scores = work()
    except Exception as err:
        if diverged(err):
            return Outcome("diverged", error=str(err), message=str(err))
        return failure(err)
    bad = sorted(k for k, v in scores.metrics.items() if _non_finite(v))
    if bad:
        clean = {k: (None if _non_finite(v) else v) for k, v in scores.metrics.items()}
        text = f"non-finite metric(s) {', '.join(bad)}"
        return Outcome("diverged", clean, dict(scores.definitions), dict(scores.stats), error=text, message=text,
                       artifact=scores.artifact)
    return Outcome("done", dict(scores.metrics), dict(scores.definitions), dict(scores.stats),
                   artifact=scores.artifact)


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def check_finite(model: nn.Module, what: str = "the model") -> None:
    """Raise :class:`DivergenceError` naming the first parameter or buffer of ``model`` holding NaN or inf."""
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            raise DivergenceError(f"{what} has non-finite values in {name!r} after its last step (the update "
                                  "diverged; a smaller learning rate usually helps).")


@dataclass(frozen=True)
class Row:
    """The identity of a cell's result row; :attr:`run_key` is the store's primary key."""

    task_key: str
    protocol: str
    method: str
    seed: int
    config: Mapping[str, Any]
    split_hash: str
    #: how logs name the cell (default ``"<method> (seed <s>)"``)
    name: str = ""

    @property
    def run_key(self) -> str:
        return run_key(self.task_key, self.method, config_hash(self.config), self.seed)

    @property
    def label(self) -> str:
        return self.name or f"{self.method} (seed {self.seed})"


def start(store: ResultStore, row: Row, env: Mapping[str, Any] | None = None) -> str:
    """Insert (or reset) ``row`` as ``running``; returns its run key."""
    return store.start(task_key=row.task_key, protocol=row.protocol, method=row.method, seed=row.seed,
                       config=dict(row.config), split_hash=row.split_hash, env=env)


def finish(store: ResultStore, row: Row, outcome: Outcome, log: Log | None = None) -> None:
    """Store ``outcome`` in ``row`` (one transaction) and log a diverged or failed cell."""
    store.finish(row.run_key, outcome.status, outcome.metrics, outcome.definitions, outcome.stats,
                 error=outcome.error)
    if log is None or outcome.status == "done":
        return
    colour = "yellow" if outcome.status == "diverged" else "red"
    log(f"[{colour}]{escape(row.label)}: {outcome.status}[/{colour}] — {escape(str(outcome.message))}")


def run_cell(store: ResultStore, row: Row, work: Callable[[], Scores], log: Log | None = None,
             env: Mapping[str, Any] | None = None, save: Callable[[Outcome], Outcome] | None = None
             ) -> Outcome | None:
    """Run one cell in this process: skip it when its row is complete (``None``), else start the row, attempt
    ``work`` and finish the row with the classified outcome.

    ``save(outcome)``, when given, runs before the row is finished: it writes the outcome's artifact (files next
    to the results) and returns the outcome to store (e.g. with the files named in its stats). A failure to save
    leaves the row ``failed``, so the next run retries the cell and the files.
    """
    if store.is_complete(row.run_key):
        return None
    start(store, row, env)
    outcome = attempt(work)
    if save is not None:
        try:
            outcome = save(outcome)
        except Exception as err:
            outcome = failure(err, "saving its files: ")
    finish(store, row, outcome, log)
    return outcome
