"""bench/common.py: the interval statistics behind every benchmark verdict, and the interleaved timing loop."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import common


def timings(table: dict[str, list[float]]) -> common.Timings:
    """The same seconds on both clocks."""
    return common.Timings({"cpu": {k: list(v) for k, v in table.items()},
                           "wall": {k: list(v) for k, v in table.items()}})


def test_identical_samples_give_ratio_one_with_a_zero_width_interval():
    base = [0.10, 0.12, 0.09, 0.11, 0.10, 0.13]
    interval = common.ratio_interval(common.paired_ratios({"a": base, "b": base}, "b", "a"))
    assert interval.ratio == pytest.approx(1.0)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)
    assert interval.n == len(base)
    assert not common.too_wide(interval, 0.05)


def test_samples_ten_percent_apart_give_about_1_10_and_decide_both_targets():
    base = [0.10, 0.12, 0.09, 0.11, 0.10, 0.13, 0.095, 0.105]
    jitter = [1.0, 1.01, 0.99, 1.005, 0.995, 1.0, 1.01, 0.99]  # ±1 % around +10 %
    slower = [b * 1.10 * j for b, j in zip(base, jitter)]
    interval = common.ratio_interval(common.paired_ratios({"a": base, "b": slower}, "b", "a"))
    assert interval.ratio == pytest.approx(1.10, rel=0.005)
    assert interval.low < 1.10 < interval.high
    assert interval.high - interval.low < 0.03
    assert not common.too_wide(interval, 0.05)
    assert common.verdict(interval, 1.35) == "met"
    assert common.verdict(interval, 1.05) == "missed"
    assert common.verdict(interval, 1.10) == "undecided"
    assert common.verdict(interval, 1 / 0.95, at_most=False) == "met"  # ≥ 1.0526


def test_a_wide_spread_is_flagged_and_printed_as_a_warning(capsys):
    base = [1.0] * 6
    noisy = [0.7, 1.4, 0.9, 1.3, 0.8, 1.2]
    t = timings({"bare": base, "noisy": noisy, "steady": [1.02] * 6})
    interval = common.ratio_interval(common.paired_ratios(t.clock("cpu"), "noisy", "bare"))
    assert common.too_wide(interval, 0.05)
    assert common.verdict(interval, 1.05) == "undecided"
    decided = common.print_ratios(t, "bare", clock="cpu", tolerance=0.05)
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and common.WIDE in warning[0]
    assert "noisy" in warning[0] and "steady" not in warning[0]
    assert decided["steady"].ratio == pytest.approx(1.02)


def test_a_tight_table_prints_no_warning(capsys):
    common.print_ratios(timings({"bare": [1.0, 1.1, 0.9], "lib": [1.0, 1.1, 0.9]}), "bare")
    assert "WARNING" not in capsys.readouterr().out


def test_one_pair_has_no_interval_and_counts_as_too_wide():
    interval = common.ratio_interval([1.2])
    assert interval.ratio == pytest.approx(1.2) and math.isnan(interval.low)
    assert common.too_wide(interval) and common.verdict(interval, 2.0) == "undecided"


def test_mean_interval_is_the_student_t_interval():
    mean, low, high = common.mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} · sd (= 1) / √3
    assert mean == pytest.approx(2.0)
    assert low == pytest.approx(2.0 - half) and high == pytest.approx(2.0 + half)


def test_interleaved_timings_rotate_the_order_and_read_both_clocks():
    calls: list[str] = []

    def fn(name: str):
        return lambda: calls.append(name)

    t = common.interleaved_timings({"a": fn("a"), "b": fn("b"), "c": fn("c")}, repeats=3, warmup=1)
    assert calls == ["c", "a", "b", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up round first
    for clock in ("cpu", "wall"):
        assert {k: len(v) for k, v in t.clock(clock).items()} == {"a": 3, "b": 3, "c": 3}
        assert all(s >= 0 for v in t.clock(clock).values() for s in v)


def test_a_candidate_may_report_its_own_seconds():
    t = common.interleaved_timings({"self-timed": lambda: {"cpu": 2.0, "wall": 3.0}}, repeats=2, warmup=0)
    assert t.clock("cpu") == {"self-timed": [2.0, 2.0]} and t.clock("wall") == {"self-timed": [3.0, 3.0]}
