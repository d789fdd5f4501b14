"""Summaries of a configuration's values over trials, and the rule that selects the best configuration.

Used by the MinNorm-OG experiment tables (:mod:`unlearnlab.experiments.minnorm`) and their figures
(:mod:`unlearnlab.bench.experiment_plots`), so a figure always shows the configuration its table selected
(docs/minnorm_experiments.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def central_range(values: Sequence[float]) -> tuple[float, float]:
    """(v_(k+1), v_(n−k)) of the sorted values, k = ⌊n/4⌋ discarded at each end (n = 10: 3rd and 8th; n = 5: 2nd
    and 4th)."""
    v = sorted(values)
    if not v:
        return (math.nan, math.nan)
    k = len(v) // 4
    return (v[k], v[len(v) - 1 - k])


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if len(values) else math.nan


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (ddof 1; 0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return (math.nan, math.nan)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0


def select_config(per_config: Mapping[str, Sequence[float]], lower_is_better: bool = True) -> str | None:
    """The configuration with the best mean over trials; ties → the smallest central range.

    Non-finite values count as the worst possible value.
    """
    best, best_key = None, None
    for key, vals in per_config.items():
        worst = math.inf if lower_is_better else -math.inf
        v = [x if x is not None and math.isfinite(x) else worst for x in vals]
        m = float(np.mean(v)) if v else worst
        lo, hi = central_range(v)
        width = hi - lo if math.isfinite(hi - lo) else math.inf
        score = (m if lower_is_better else -m, width)
        if best is None or score < best:
            best, best_key = score, key
    return best_key
