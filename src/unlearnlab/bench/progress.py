"""Progress as plain text lines, for log files and for terminals that are not a TTY.

:class:`ProgressLines` turns the ``progress(label, fraction)`` calls of training and unlearning (one per epoch)
into lines such as ``training retrain (seed 2): 45% · 3.1 s elapsed · ETA 3.8 s``: ``started`` first, then at
most one line per label every ``interval`` seconds, and always the final one. :class:`GridClock` times a whole
grid: after each cell it says how many cells are finished and estimates the time left from the cells run so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def duration(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def eta(elapsed: float, fraction: float) -> float:
    """Time left when ``fraction`` of the work took ``elapsed`` seconds, at the same pace (``inf`` at 0)."""
    return elapsed * (1.0 - fraction) / fraction if fraction > 0 else math.inf


@dataclass
class _Started:
    at: float
    last: float


@dataclass
class ProgressLines:
    """``progress(label, fraction)`` → throttled lines with elapsed time and ETA, passed to ``emit``."""

    emit: Callable[[str], None]
    #: seconds between two lines of one label (the first and the final line always come)
    interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _labels: dict[str, _Started] = field(default_factory=dict)

    def __call__(self, label: str, fraction: float) -> None:
        now = self.clock()
        finished = fraction >= 1.0
        started = self._labels.get(label)
        if started is None:
            if finished:  # the end of work already reported finished (or never started): nothing new
                return
            started = self._labels[label] = _Started(now, now)
            self.emit(f"{label}: started")
            if fraction <= 0.0:
                return
        if not finished and now - started.last < self.interval:
            return
        started.last = now
        elapsed = now - started.at
        tail = "done" if finished else f"ETA {duration(eta(elapsed, fraction))}"
        self.emit(f"{label}: {100 * fraction:.0f}% · {duration(elapsed)} elapsed · {tail}")
        if finished:
            del self._labels[label]


@dataclass
class GridClock:
    """Counts a grid's cells and estimates the time left from the cells finished in this invocation."""

    total: int
    #: cells already complete when the run started (not timed)
    skipped: int = 0
    clock: Callable[[], float] = time.monotonic
    finished: int = 0
    _start: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._start = self.clock()

    def tick(self) -> str:
        """Count one finished cell; returns ``"12/30 cells · 40 s elapsed · ETA 1 min 00 s"``."""
        self.finished += 1
        elapsed = self.clock() - self._start
        todo = self.total - self.skipped
        left = eta(elapsed, self.finished / todo) if todo > 0 else 0.0
        return (f"{self.skipped + self.finished}/{self.total} cells · {duration(elapsed)} elapsed · "
                f"ETA {duration(left)}")
