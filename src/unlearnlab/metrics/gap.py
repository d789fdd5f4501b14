"""Avg.Gap and its variants (docs/metrics.md, "Aggregation over seeds").

A *row* is a mapping metric name -> value in % (e.g. ``{"ua": 5.1, "ra": 99.8, "ta": 94.0, "mia": 12.3}``);
a list of rows is ordered by seed, and a method's row s is matched with the Retrain row s (same forget set,
same seed). Standard deviations are sample stds (ddof = 1) unless ``ddof`` says otherwise (``ddof=0``
reproduces DualOptim's ``parse_result.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from unlearnlab.errors import UnlearnlabError

Row = Mapping[str, float]

#: The Avg.Gap metric set M; "mia" is the protocol's primary MIA.
GAP_METRICS: tuple[str, ...] = ("ua", "ra", "ta", "mia")
#: DualOptim's "ToW" metric set.
UA_RA_TA: tuple[str, ...] = ("ua", "ra", "ta")


def mean_std(values: Sequence[float], ddof: int = 1) -> tuple[float, float]:
    """(mean, std) of ``values``; std = sqrt(Σ (v − mean)² / (n − ddof)), NaN when n ≤ ddof (one seed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise UnlearnlabError(f"mean_std needs a non-empty 1-D sequence of numbers, got shape {v.shape}.")
    std = float(v.std(ddof=ddof)) if len(v) > ddof else math.nan
    return float(v.mean()), std


def _value(row: Row, metric: str, what: str) -> float:
    """``row[metric]`` as a float; raises naming ``what`` and the metrics the row has if it is missing."""
    if metric not in row:
        raise UnlearnlabError(f"{what} has no metric {metric!r} (has: {', '.join(sorted(row))}).")
    return float(row[metric])


def _column(rows: Sequence[Row], metric: str, what: str) -> np.ndarray:
    """Values of ``metric`` across ``rows`` (one per seed)."""
    if len(rows) == 0:
        raise UnlearnlabError(f"{what} is empty; pass at least one row (one per seed).")
    return np.array([_value(row, metric, f"{what}[{i}]") for i, row in enumerate(rows)])


def per_seed_gap(row: Row, ref_row: Row, metrics: Sequence[str] = GAP_METRICS) -> float:
    """Gap_s = (1/|M|)·Σ_{k∈M} |x_k(s) − r_k(s)| for one method row and its matched Retrain row."""
    return float(np.mean([abs(_value(row, k, "row") - _value(ref_row, k, "ref_row")) for k in metrics]))


def avg_gap_matched(
    method_rows: Sequence[Row],
    retrain_rows: Sequence[Row],
    metrics: Sequence[str] = GAP_METRICS,
    ddof: int = 1,
) -> tuple[float, float]:
    """Avg.Gap = (mean_s Gap_s, std_s Gap_s) over matched seeds, Gap_s = :func:`per_seed_gap`.

    Rows are matched by position (seed order); a different number of method and Retrain rows is an error
    (use :func:`avg_gap_means` against the Retrain seed-mean and mark the cell "unmatched").
    """
    if len(method_rows) != len(retrain_rows):
        raise UnlearnlabError(
            f"avg_gap_matched needs one Retrain row per method seed, got {len(method_rows)} method rows and "
            f"{len(retrain_rows)} Retrain rows; use avg_gap_means for unmatched seeds."
        )
    x = np.stack([_column(method_rows, k, "method_rows") for k in metrics], axis=1)
    r = np.stack([_column(retrain_rows, k, "retrain_rows") for k in metrics], axis=1)
    return mean_std(np.abs(x - r).mean(axis=1), ddof=ddof)


def metric_means(rows: Sequence[Row] | Row, metrics: Sequence[str]) -> np.ndarray:
    """mean_s x_k for each k in ``metrics``; a single mapping is a fixed vector (e.g. DualOptim's ``ref``)."""
    if isinstance(rows, Mapping):
        rows = [rows]
    return np.array([_column(rows, k, "rows").mean() for k in metrics])


def per_metric_gaps(
    method_rows: Sequence[Row], retrain: Sequence[Row] | Row, metrics: Sequence[str] = GAP_METRICS
) -> dict[str, float]:
    """The per-metric table gaps |mean_s x_k − mean_s r_k| (``retrain`` may be rows or one fixed row)."""
    gaps = np.abs(metric_means(method_rows, metrics) - metric_means(retrain, metrics))
    return {k: float(g) for k, g in zip(metrics, gaps, strict=True)}


def avg_gap_means(
    method_rows: Sequence[Row], retrain: Sequence[Row] | Row, metrics: Sequence[str] = GAP_METRICS
) -> float:
    """Gap_means = (1/|M|)·Σ_k |mean_s x_k − mean_s r_k| (paper style; ≤ mean_s Gap_s when matched).

    ``retrain`` is a list of Retrain rows (any length; its seed-mean is used) or one mapping with fixed
    Retrain values, as DualOptim's ``parse_result.py`` does.
    """
    return float(np.mean(list(per_metric_gaps(method_rows, retrain, metrics).values())))


def gap_means_ua_ra_ta(method_rows: Sequence[Row], retrain: Sequence[Row] | Row) -> float:
    """DualOptim's "ToW": :func:`avg_gap_means` over {UA, RA, TA} only (not the product-form Tug-of-War)."""
    return avg_gap_means(method_rows, retrain, UA_RA_TA)


def mean_metric_std(rows: Sequence[Row], metrics: Sequence[str] = GAP_METRICS, ddof: int = 1) -> float:
    """DualOptim's "Avg std": (1/|M|)·Σ_k std_s x_k (NaN for a single seed with ddof = 1)."""
    return float(np.mean([mean_std(_column(rows, k, "rows"), ddof=ddof)[1] for k in metrics]))
