"""Shared helpers for the benchmark scripts under ``bench/``.

Project rule: performance is reported as *ratios measured side by side in one run*, never as absolute
thresholds in tests. The helpers here run the candidates interleaved (round-robin, order rotated each
repeat) so that background load on a shared machine hits every candidate alike, and summarise each
candidate by the median of its per-repeat ratios to a baseline.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch


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


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def clock(kind: str = "wall") -> Callable[[], float]:
    """``"wall"``: :func:`time.perf_counter` (the default); ``"cpu"``: :func:`time.process_time`.

    The CPU clock counts only the time this process ran, so on a *shared CPU machine* it excludes time spent
    waiting for a core (it still includes cache/memory-bandwidth interference). Never use it on CUDA: GPU time
    is not process CPU time.
    """
    if kind not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {kind!r}")
    return CLOCKS[kind]


def interleaved_timings(
    fns: Mapping[str, Callable[[], float | None]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
    log: Callable[[str], None] | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times, round-robin, order rotated each repeat.

    Repeat ``r`` runs the candidates starting from the ``r``-th one (``r mod k``), so no candidate always
    runs first or right after a particular other one. ``warmup`` extra rounds run first and are discarded.

    Each call is timed with ``timer`` (:func:`time.perf_counter` by default; see :func:`clock`), with a CUDA
    synchronise before and after when the device is CUDA. A candidate may instead return a number: it is then
    taken as the seconds it measured itself (e.g. ``UnlearnResult.seconds``, which excludes the library's own
    warm-up steps), and the outer measurement is ignored.
    """
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    dev = device if device is not None else pick_device()
    k = len(names)
    for r in range(-warmup, repeats):
        order = names[r % k:] + names[: r % k] if k else []
        for name in order:
            sync(dev)
            start = timer()
            measured = fns[name]()
            sync(dev)
            outer = timer() - start
            seconds = float(measured) if isinstance(measured, (int, float)) else outer
            if r >= 0:
                out[name].append(seconds)
            if log is not None:
                tag = "warm-up" if r < 0 else f"repeat {r + 1}/{repeats}"
                log(f"  [{tag}] {name}: {seconds:.4f} s")
    return out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def quartiles(xs: Sequence[float]) -> tuple[float, float]:
    """First and third quartiles (inclusive method; both equal the value for one sample)."""
    if not xs:
        return math.nan, math.nan
    if len(xs) == 1:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def iqr(xs: Sequence[float]) -> float:
    lo, hi = quartiles(xs)
    return hi - lo


def paired_ratios(timings: Mapping[str, Sequence[float]], name: str, baseline: str) -> list[float]:
    """Per-repeat ``timings[name][r] / timings[baseline][r]`` (same repeat = same background load)."""
    return [a / b for a, b in zip(timings[name], timings[baseline]) if b > 0]


def print_ratios(
    timings: Mapping[str, Sequence[float]],
    baseline: str,
    *,
    title: str | None = None,
    unit: str = "s",
    work: float | Mapping[str, float] | None = None,
    work_unit: str = "img/s",
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Print name | median | ratio to ``baseline`` | IQR of the ratio (| throughput) (| extra columns).

    The ratio is the median over repeats of ``t[name][r] / t[baseline][r]`` (> 1 = slower than the
    baseline). With ``work`` (items processed per call, one number or one per name) the table adds the
    throughput ``work / median`` in ``work_unit``. ``extra`` maps a column title to ``{name: text}``.
    """
    extra = dict(extra or {})
    header = ["name", f"median {unit}", f"x {baseline}", "IQR(x)"]
    if work is not None:
        header.append(work_unit)
    header += list(extra)
    rows = []
    for name, ts in timings.items():
        ratios = paired_ratios(timings, name, baseline)
        med = median(ts)
        row = [name, _fmt(med), f"{median(ratios):.3f}", f"{iqr(ratios):.3f}"]
        if work is not None:
            w = work[name] if isinstance(work, Mapping) else work
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
    n = len(next(iter(timings.values()), []))
    print(f"({n} repeats; ratio = median of per-repeat ratios to {baseline!r}; IQR = Q3 - Q1 of those ratios)")


def _fmt(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds:.4g}"


def describe_machine(device: torch.device) -> str:
    """One line about where the numbers come from."""
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return (f"device={device} ({dev}), torch {torch.__version__}, torch threads={torch.get_num_threads()}, "
            f"os.cpu_count={os.cpu_count()}, python {platform.python_version()}")
