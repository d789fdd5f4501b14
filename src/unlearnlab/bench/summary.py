"""Table rows from results-store rows: per method, seed means and stds, gaps to Retrain, the attack spread, the
noise-floor test, Avg.Gap and RTE (docs/metrics.md; rendered by :mod:`unlearnlab.bench.report`).

One summary per (protocol, task key) group and method label: Retrain first, then the noise floor (a second,
independent Retrain), then the methods in the order they were first run. Rows of different protocols, task keys
or primary MIA definitions are never mixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearnlab.bench.captions import method_labels
from unlearnlab.bench.plan import NOISE_FLOOR, REFERENCE
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.gap import GAP_METRICS, avg_gap_matched, avg_gap_means, mean_std
from unlearnlab.metrics.noise import above_noise, noise_scale

Row = Mapping[str, Any]


@dataclass(frozen=True)
class MetricStat:
    """Seed mean and std of one metric, its gap to Retrain's mean (``None`` on Retrain's row), the attack spread
    (pooled std over resampled attack sets, ``None`` when not drawn) and whether the gap is above noise
    (``None`` when untested)."""

    mean: float
    std: float
    gap: float | None
    attack_std: float | None = None
    above_noise: bool | None = None


@dataclass(frozen=True)
class MethodSummary:
    """One table row: a method (one config) over its seeds, summarised from its ``done`` runs."""

    protocol: str
    method: str
    is_reference: bool
    seeds: tuple[int, ...]
    status_counts: dict[str, int]
    mia_definition: str
    metrics: dict[str, MetricStat]
    avg_gap: float | None
    avg_gap_std: float
    matched: bool
    rte_minutes: float
    rte_std: float
    rte_ratio: float | None
    #: why there is no run-time ratio (timed on another device, warm-up or precision; not recorded)
    rte_note: str | None = None
    is_noise_floor: bool = False
    metric_keys: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_seeds(self) -> int:
        """Number of ``done`` runs (seeds) behind the numbers."""
        return len(self.seeds)

    @property
    def status(self) -> str:
        """``"done"`` when some run finished, else the statuses present (e.g. ``"diverged"``)."""
        return "done" if self.seeds else "/".join(sorted(self.status_counts))


def _distinct(rows: Sequence[Row], get: Callable[[Row], Any]) -> list[Any]:
    """Distinct values of ``get(row)`` in first-seen order, skipping ``None``."""
    seen: dict[Any, None] = {}
    for row in rows:
        value = get(row)
        if value is not None:
            seen.setdefault(value, None)
    return list(seen)


def single(rows: Sequence[Row], what: str, get: Callable[[Row], Any]) -> Any:
    """The one value of ``get(row)`` over ``rows``; raises naming the values when there are several."""
    values = _distinct(rows, get)
    if len(values) > 1:
        raise UnlearnlabError(
            f"Rows mix {len(values)} {what}s ({', '.join(map(str, values))}); one table holds one protocol and "
            "task. Filter the rows or use render_all(), which prints one table per group."
        )
    return values[0] if values else None


def _check_splits(rows: Sequence[Row]) -> None:
    """All runs of one seed must share the split hash (same forget set for every method)."""
    for seed in _distinct(rows, lambda r: r["seed"]):
        single([r for r in rows if r["seed"] == seed], f"split hash for seed {seed}", lambda r: r["split_hash"])


def primary_mia(rows: Sequence[Row]) -> str:
    """The primary MIA definition named by the rows' ``definitions["mia"]`` (``"unknown"`` if none)."""
    return single(rows, "primary MIA definition", lambda r: r["definitions"].get("mia")) or "unknown"


def group_rows(rows: Sequence[Row]) -> list[list[Row]]:
    """Rows split by (protocol, task key), groups in first-seen order."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["protocol"], row["task_key"]), []).append(row)
    return list(groups.values())


def method_groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows per table label (:func:`~unlearnlab.bench.captions.method_labels`): Retrain, the noise floor, then
    the methods in first-seen order."""
    references = _distinct([r for r in rows if r["method"] == REFERENCE], lambda r: r["config_hash"])
    if len(references) > 1:
        raise UnlearnlabError(f"{REFERENCE!r} ran with several configs ({', '.join(references)}); keep one Retrain "
                              "config per table.")
    labels = method_labels(rows)
    ordered = sorted(rows, key=lambda r: (r["method"] != REFERENCE, r["method"] != NOISE_FLOOR))
    groups: dict[str, list[Row]] = {}
    for row in ordered:
        groups.setdefault(labels[row["run_key"]], []).append(row)
    return groups


def _status_counts(rows: Sequence[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _metric_values(done: Sequence[Row], metric: str) -> list[float]:
    """One value of ``metric`` per done run; raises naming the run that lacks it."""
    missing = [f"{r['method']} seed {r['seed']}" for r in done if metric not in r["metrics"]]
    if missing:
        raise UnlearnlabError(f"Metric {metric!r} missing from done runs: {', '.join(missing)}.")
    return [float(r["metrics"][metric]) for r in done]


def _attack_std(done: Sequence[Row], metric: str, mia: str) -> float | None:
    """sqrt(mean over seeds of the per-seed attack variance) of ``metric`` (``mia`` = the primary MIA), or
    ``None`` when a run has no attack draws."""
    key = f"{mia if metric == 'mia' else metric}_attack_std"
    values = [r["metrics"].get(key) for r in done]
    if not values or any(v is None or not math.isfinite(float(v)) for v in values):
        return None
    return math.sqrt(sum(float(v) ** 2 for v in values) / len(values))


def _timing(row: Row) -> tuple[Any, Any, Any]:
    """(device type, warm-up steps, precision) a row's run time was measured with (``None`` where unrecorded)."""
    timing = (row.get("stats") or {}).get("timing") or {}
    device = timing.get("device") or str(row["env"].get("device", "")).split(":")[0] or None
    return device, timing.get("warmup_steps"), timing.get("precision")


def rte_comparison(done: Sequence[Row], ref_done: Sequence[Row]) -> str | None:
    """``None`` when the method and Retrain runs were all timed alike (device type, warm-up, precision), else
    the reason the ratio is not shown."""
    mine, ref = {_timing(r) for r in done}, {_timing(r) for r in ref_done}
    if len(mine) > 1 or len(ref) > 1:
        return "runs of one row were timed differently (mixed devices, warm-ups or precisions)"
    (device, warmup, precision), (r_device, r_warmup, r_precision) = next(iter(mine)), next(iter(ref))
    if device != r_device:
        return f"timed on {device}, Retrain on {r_device}"
    if warmup is None or r_warmup is None:
        return ("Retrain's training time has no warm-up record (cached before timing records; --no-cache retrains)"
                if r_warmup is None else "the method's time has no warm-up record")
    if warmup != r_warmup:
        return f"warm-up {warmup} vs Retrain's {r_warmup} steps"
    if precision != r_precision:
        return f"precision {precision} vs Retrain's {r_precision}"
    return None


def _rte(done: Sequence[Row], ddof: int) -> tuple[float, float]:
    """RTE minutes (mean, std) over done runs; NaN when no run recorded it."""
    values = [float(r["stats"]["rte_minutes"]) for r in done if "rte_minutes" in r["stats"]]
    return mean_std(values, ddof=ddof) if values else (math.nan, math.nan)


def _by_seed(done: Sequence[Row]) -> dict[int, Row]:
    return {int(r["seed"]): r for r in done}


def _noise_scales(floor_done: Sequence[Row], ref_done: Sequence[Row], metrics: Sequence[str]) -> dict[str, float]:
    """τ_k per metric from the seeds both the noise floor and Retrain finished (empty without such seeds)."""
    ref, floor = _by_seed(ref_done), _by_seed(floor_done)
    seeds = sorted(set(ref) & set(floor))
    if not seeds:
        return {}
    return {k: noise_scale([floor[s]["metrics"][k] for s in seeds], [ref[s]["metrics"][k] for s in seeds])
            for k in metrics if all(k in floor[s]["metrics"] and k in ref[s]["metrics"] for s in seeds)}


@dataclass(frozen=True)
class _Context:
    """What every row of a table is compared with."""

    ref_done: Sequence[Row]
    metrics: Sequence[str]
    ddof: int
    mia: str
    scales: Mapping[str, float]
    #: the Avg.Gap metric set, or ``None`` when the columns do not hold it (no Avg.Gap)
    gap_metrics: Sequence[str] | None


def _summarize_method(label: str, rows: Sequence[Row], ctx: _Context) -> MethodSummary:
    """Summary of one method against Retrain's done runs (none: no gaps)."""
    is_ref = rows[0]["method"] == REFERENCE
    is_floor = rows[0]["method"] == NOISE_FLOOR
    done = sorted((r for r in rows if r["status"] == "done"), key=lambda r: r["seed"])
    seeds = tuple(int(r["seed"]) for r in done)
    stats: dict[str, MetricStat] = {}
    avg_gap, avg_std, matched = None, math.nan, True
    if done:
        has_ref = bool(ctx.ref_done) and not is_ref
        ref_means = {k: mean_std(_metric_values(ctx.ref_done, k))[0] for k in ctx.metrics} if has_ref else {}
        for k in ctx.metrics:
            mean, std = mean_std(_metric_values(done, k), ddof=ctx.ddof)
            gap = abs(mean - ref_means[k]) if has_ref else None
            attack = _attack_std(done, k, ctx.mia)
            above = (above_noise(gap, ctx.scales[k], len(done), attack) if gap is not None and not is_floor
                     and k in ctx.scales else None)
            stats[k] = MetricStat(mean, std, gap, attack, above)
        if ctx.gap_metrics is not None and is_ref:
            avg_gap = 0.0
        elif ctx.gap_metrics is not None and has_ref:
            avg_gap, avg_std, matched = _avg_gap(done, ctx.ref_done, ctx.gap_metrics, ctx.ddof)
    rte, rte_std = _rte(done, ctx.ddof)
    ratio, note = None, None
    if done and ctx.ref_done:
        note = rte_comparison(done, ctx.ref_done)
        ref_rte = _rte(ctx.ref_done, ctx.ddof)[0]
        ratio = rte / ref_rte if note is None and ref_rte > 0 and not math.isnan(rte) else None
    return MethodSummary(
        protocol=rows[0]["protocol"], method=label, is_reference=is_ref, seeds=seeds,
        status_counts=_status_counts(rows), mia_definition=ctx.mia, metrics=stats, avg_gap=avg_gap,
        avg_gap_std=avg_std, matched=matched, rte_minutes=rte, rte_std=rte_std, rte_ratio=ratio, rte_note=note,
        is_noise_floor=is_floor, metric_keys=tuple(ctx.metrics))


def _avg_gap(
    done: Sequence[Row], ref_done: Sequence[Row], metrics: Sequence[str], ddof: int
) -> tuple[float, float, bool]:
    """(Avg.Gap, std, matched): matched over the method's seeds when Retrain has them all, else gap of means."""
    ref = _by_seed(ref_done)
    seeds = [int(r["seed"]) for r in done]
    method_rows = [r["metrics"] for r in done]
    if all(s in ref for s in seeds):
        mean, std = avg_gap_matched(method_rows, [ref[s]["metrics"] for s in seeds], metrics, ddof=ddof)
        return mean, std, True
    return avg_gap_means(method_rows, [r["metrics"] for r in ref_done], metrics), math.nan, False


def summarize(rows: Sequence[Row], metrics: Sequence[str] = GAP_METRICS, ddof: int = 1,
              gap_metrics: Sequence[str] = GAP_METRICS) -> list[MethodSummary]:
    """Table rows for the runs of ONE protocol and task key: Retrain, the noise floor, then methods in first-seen
    order.

    Only ``done`` runs enter the numbers; a method without any shows its statuses instead. ``metrics`` are the
    columns; Avg.Gap averages the gaps over ``gap_metrics`` (the set M by default), and is left out when a
    column set does not hold them all. Raises :class:`UnlearnlabError` (a ``ValueError``) when the rows mix
    protocols, task keys, primary MIA definitions or split hashes of one seed.
    """
    if not rows:
        raise UnlearnlabError("No result rows to summarise; run `unlearnlab run` first.")
    single(rows, "protocol", lambda r: r["protocol"])
    single(rows, "task key", lambda r: r["task_key"])
    mia = primary_mia(rows)
    _check_splits(rows)
    groups = method_groups(rows)
    ref_done = [r for r in rows if r["method"] == REFERENCE and r["status"] == "done"]
    floor_done = [r for r in rows if r["method"] == NOISE_FLOOR and r["status"] == "done"]
    ctx = _Context(ref_done, metrics, ddof, mia, _noise_scales(floor_done, ref_done, metrics),
                   gap_metrics if set(gap_metrics) <= set(metrics) else None)
    return [_summarize_method(label, group, ctx) for label, group in groups.items()]
