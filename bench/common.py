"""Shared helpers for the benchmark scripts under ``bench/``: interleaved timing on two clocks and ratio intervals.

Project rule: performance is reported as *ratios measured side by side in one run*, never as absolute thresholds
in tests. :func:`interleaved_timings` runs the candidates round-robin (A B C, B C A, C A B, …: the order rotates each
repeat) so that background load on a shared machine hits every candidate alike, and reads **both** clocks around
every call: the process CPU clock (:func:`time.process_time`) and the wall clock (:func:`time.perf_counter`).

Each candidate is summarised against a baseline by :func:`ratio_interval` over the per-repeat *paired* ratios
r_i = t_i / b_i (candidate and baseline timed in the same repeat):

    ℓ_i = ln r_i,  ℓ̄ = mean ℓ_i,  s = sd ℓ_i (n − 1 denominator),
    ratio = exp(ℓ̄) (geometric mean),   95 % interval = exp(ℓ̄ ± t_{0.975, n−1} · s / √n)

— a Student-t interval on the mean log ratio, reported as a ratio interval (it is asymmetric around the ratio).
The log makes "2× slower" and "2× faster" symmetric and the ratio of geometric means equal the geometric mean of
ratios. The interval assumes the pairs are independent; rotating the order removes the systematic part of
first-call and neighbour effects. :func:`too_wide` says when an interval cannot decide a target of ±``tolerance``
(default 5 %): its half-width, max(hi/ratio, ratio/lo) − 1, exceeds the tolerance, so even a ratio measured at
exactly 1 could not tell 1 from 1 ± tolerance. :func:`verdict` decides ``ratio ≤ limit`` (or ≥).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from scipy import stats

#: the two clocks read around every timed call
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
#: the warning printed under a table whose decision-clock interval is wider than the tolerance
WIDE = "spread too wide to conclude: add --repeats or use a quieter machine"


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else CUDA when present, else CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def limit_threads(n: int = 1) -> None:
    """Pin torch's intra-op thread pool (the benchmark machines are shared)."""
    torch.set_num_threads(n)


def sync(device: torch.device | None = None) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every timing script takes: device, threads, decision clock, tolerance."""
    ap.add_argument("--device", default=None, help="default: CUDA when present, else cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--clock", choices=("auto", *CLOCKS), default="auto",
                    help="clock of the verdicts and warnings (both are always measured and printed): 'cpu' = "
                         "time.process_time (shared CPU machines; CPU device only), 'wall' = time.perf_counter; "
                         "auto = cpu on a CPU device, wall on CUDA")
    ap.add_argument("--tolerance", type=float, default=0.05,
                    help="warn when a ratio's 95%% interval is wider than ±TOLERANCE (default 0.05)")


def setup(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[torch.device, str]:
    """Apply :func:`add_arguments`' options: pin the threads, pick the device and the decision clock (the CPU clock
    is refused on CUDA, where process CPU time does not include GPU work)."""
    limit_threads(args.threads)
    device = pick_device(args.device)
    clock = args.clock if args.clock != "auto" else ("wall" if device.type == "cuda" else "cpu")
    if clock == "cpu" and device.type == "cuda":
        ap.error("--clock cpu measures process CPU time, which does not include GPU work: use wall on CUDA")
    return device, clock


def clocks_for(device: torch.device) -> tuple[str, ...]:
    """The clocks worth printing on ``device`` (CPU time says nothing about GPU work)."""
    return ("wall",) if device.type == "cuda" else ("cpu", "wall")


@dataclass(frozen=True)
class Stamp:
    """Both clocks read at one instant."""

    cpu: float
    wall: float

    @classmethod
    def now(cls, device: torch.device | None = None) -> Stamp:
        """Both clocks, after waiting for queued CUDA work on ``device``."""
        sync(device)
        return cls(time.process_time(), time.perf_counter())

    def since(self, device: torch.device | None = None) -> dict[str, float]:
        """Seconds elapsed on each clock from this stamp to now."""
        end = Stamp.now(device)
        return {"cpu": end.cpu - self.cpu, "wall": end.wall - self.wall}


@dataclass
class Timings:
    """Seconds per call: ``by_clock[clock][candidate]`` is one list over repeats (same index = same repeat)."""

    by_clock: dict[str, dict[str, list[float]]] = field(default_factory=lambda: {k: {} for k in CLOCKS})

    def clock(self, kind: str) -> dict[str, list[float]]:
        return self.by_clock[kind]

    def add(self, name: str, seconds: Mapping[str, float]) -> None:
        for kind in CLOCKS:
            self.by_clock[kind].setdefault(name, []).append(float(seconds[kind]))

    def derive(self, fn: Callable[[dict[str, list[float]]], dict[str, list[float]]]) -> Timings:
        """New timings with ``fn`` applied to each clock's table (e.g. per-step differences of two candidates)."""
        return Timings({kind: fn(table) for kind, table in self.by_clock.items()})


def interleaved_timings(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> Timings:
    """Time every candidate ``repeats`` times on both clocks, round-robin, order rotated each repeat.

    Repeat ``r`` runs the candidates starting from the ``r``-th one (``r mod k``), so no candidate always runs first
    or right after a particular other one. ``warmup`` extra rounds run first and are discarded.

    Each call is timed by a :class:`Stamp` before and after (with a CUDA synchronise on a CUDA device). A candidate
    may instead return a mapping ``{"cpu": s, "wall": s}``: the seconds it measured itself (e.g. the library's timed
    region, without its own warm-up steps); the outer measurement is then ignored. Any other return value is
    ignored.
    """
    names = list(fns)
    out = Timings()
    dev = device if device is not None else pick_device()
    k = len(names)
    for r in range(-warmup, repeats):
        order = names[r % k:] + names[: r % k] if k else []
        for name in order:
            start = Stamp.now(dev)
            measured = fns[name]()
            outer = start.since(dev)
            seconds = dict(measured) if isinstance(measured, Mapping) else outer
            if r >= 0:
                out.add(name, seconds)
            if log is not None:
                tag = "warm-up" if r < 0 else f"repeat {r + 1}/{repeats}"
                log(f"  [{tag}] {name}: cpu {seconds['cpu']:.4f} s, wall {seconds['wall']:.4f} s")
    return out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def paired_ratios(timings: Mapping[str, Sequence[float]], name: str, baseline: str) -> list[float]:
    """Per-repeat ``timings[name][r] / timings[baseline][r]`` (same repeat = same background load)."""
    return [a / b for a, b in zip(timings[name], timings[baseline]) if a > 0 and b > 0]


@dataclass(frozen=True)
class RatioInterval:
    """A ratio (geometric mean of paired ratios), its interval at ``level``, the median ratio and the pair count."""

    ratio: float
    low: float
    high: float
    median: float
    n: int
    level: float = 0.95

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.low):
            return f"{self.ratio:.{digits}f} [n={self.n}]"
        return f"{self.ratio:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def mean_interval(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval mean ± t_{(1+level)/2, n−1} · sd / √n (NaN bounds with fewer than
    2 values; a zero-width interval when all values are equal)."""
    if not xs:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(xs) - 1)) * statistics.stdev(xs) / math.sqrt(len(xs))
    return mean, mean - half, mean + half


def ratio_interval(ratios: Sequence[float], level: float = 0.95) -> RatioInterval:
    """The t-interval of the mean log ratio, exponentiated (module docstring). NaN bounds with fewer than 2 pairs;
    identical ratios give a zero-width interval."""
    if not ratios:
        return RatioInterval(math.nan, math.nan, math.nan, math.nan, 0, level)
    mean, low, high = mean_interval([math.log(r) for r in ratios], level)
    return RatioInterval(math.exp(mean), math.exp(low), math.exp(high), median(ratios), len(ratios), level)


def too_wide(interval: RatioInterval, tolerance: float = 0.05) -> bool:
    """Whether the interval is too wide to decide a ±``tolerance`` target: its half-width max(hi/ratio, ratio/lo) − 1
    exceeds ``tolerance`` (always with no interval)."""
    if math.isnan(interval.low) or interval.low <= 0:
        return True
    return max(interval.high / interval.ratio, interval.ratio / interval.low) - 1 > tolerance


def verdict(interval: RatioInterval, limit: float, at_most: bool = True) -> str:
    """``"met"`` when the whole interval satisfies ``ratio ≤ limit`` (``≥`` with ``at_most=False``), ``"missed"``
    when the whole interval violates it, ``"undecided"`` when it straddles the limit (or there is no interval)."""
    if math.isnan(interval.low):
        return "undecided"
    lo, hi = interval.low, interval.high
    if at_most:
        return "met" if hi <= limit else "missed" if lo > limit else "undecided"
    return "met" if lo >= limit else "missed" if hi < limit else "undecided"


def print_ratios(
    timings: Timings,
    baseline: str,
    *,
    clock: str = "cpu",
    title: str | None = None,
    work: float | Mapping[str, float] | None = None,
    work_unit: str = "img/s",
    extra: Mapping[str, Mapping[str, str]] | None = None,
    tolerance: float = 0.05,
    level: float = 0.95,
    clocks: Sequence[str] = ("cpu", "wall"),
) -> dict[str, RatioInterval]:
    """Print one row per candidate: for each of ``clocks``, the median seconds and the ratio to ``baseline`` with its
    interval (> 1 = slower than the baseline); optional throughput (``work`` items per call / median seconds on
    ``clock``) and ``extra`` columns (title → {name: text}). Under the table, a line names every candidate whose
    ``clock`` interval is wider than ``tolerance`` (:data:`WIDE`). Returns the ``clock`` intervals by name."""
    extra = dict(extra or {})
    shown = [c for c in clocks if timings.clock(c)]
    header = ["name"]
    for c in shown:
        header += [f"{c} median s", f"{c} x {baseline} [{level:.0%} CI]"]
    if work is not None:
        header.append(f"{work_unit} ({clock})")
    header += list(extra)
    rows, decided, wide = [], {}, []
    for name in timings.clock(shown[0]):
        row = [name]
        for c in shown:
            table = timings.clock(c)
            interval = ratio_interval(paired_ratios(table, name, baseline), level)
            row += [_fmt(median(table[name])), "1 (baseline)" if name == baseline else interval.text()]
            if c == clock:
                decided[name] = interval
                if name != baseline and too_wide(interval, tolerance):
                    wide.append(name)
        if work is not None:
            w = work[name] if isinstance(work, Mapping) else work
            med = median(timings.clock(clock)[name])
            row.append(f"{w / med:,.0f}" if med > 0 else "-")
        row += [col.get(name, "") for col in extra.values()]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    if title:
        print(title)
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    n = len(next(iter(timings.clock(clock).values()), []))
    print(f"({n} repeats; x = geometric mean of per-repeat ratios to {baseline!r} with a {level:.0%} t-interval "
          f"on the mean log ratio; decisions on the {clock} clock)")
    if wide:
        print(f"WARNING ({', '.join(wide)}: {clock} interval wider than ±{tolerance:.0%} allows): {WIDE}")
    return decided


def _fmt(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds:.4g}"


def describe_machine(device: torch.device) -> str:
    """One line about where the numbers come from (with the load average where the OS reports it)."""
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"device={device} ({dev}), torch {torch.__version__}, torch threads={torch.get_num_threads()}, "
            f"os.cpu_count={os.cpu_count()}, python {platform.python_version()}{load}")
