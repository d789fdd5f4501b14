"""Figures (matplotlib, Agg backend), each saved as PNG and PDF.

Figures are built with :class:`matplotlib.figure.Figure` (rendered by the Agg/PDF canvases), never through
``pyplot``: no global backend is switched, no window opens, and nothing leaks between calls.

* :func:`sensitivity_plot`: a metric against one hyperparameter over every trial of a search, the selected
  trial marked — the whole curve, not only the best point (dualoptim §7: "report the whole Avg.Gap-vs-η_f curve").
* :func:`tradeoff_plot`: the unlearning–utility trade-off of one protocol/task group of a results database —
  per method, the UA gap to Retrain (lower is better) against TA (higher is better), seed std as error bars,
  Retrain as the reference star and the Pareto front drawn through the non-dominated methods.
* :func:`write_plots`: one trade-off figure per (protocol, task) group of a ``results.sqlite``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker
from matplotlib.figure import Figure

from unlearnlab.bench.report import REFERENCE, group_rows, summarize
from unlearnlab.bench.store import ResultStore
from unlearnlab.errors import UnlearnlabError

FORMATS = ("png", "pdf")
_LABELS = {"value": "Avg.Gap (selection split)", "ua": "UA (%)", "ra": "RA (%)", "ta": "TA (%)", "mia": "MIA (%)",
           "ua_gap": "UA gap to Retrain (|UA − UA_retrain|, %)", "gap": "Avg.Gap"}


def _save(fig: Any, path: str | Path) -> list[Path]:
    """Save ``fig`` as ``path``.png and ``path``.pdf (a given .png/.pdf suffix is replaced); close it."""
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        target = base.parent / f"{base.name}.{fmt}"
        fig.savefig(target, dpi=150, bbox_inches="tight")
        paths.append(target)
    return paths


def _trial_value(trial: Mapping[str, Any], metric: str) -> float | None:
    value = trial.get(metric, (trial.get("metrics") or {}).get(metric))
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sensitivity_plot(trials: Sequence[Mapping[str, Any]], param: str, metric: str, path: str | Path,
                     log: bool | None = None, title: str | None = None) -> list[Path]:
    """``metric`` of every trial against hyperparameter ``param``; the best trial (lowest ``value``) is marked.

    ``trials`` are :func:`unlearnlab.bench.tune.tune` records (``params`` dict, ``value`` and metric means).
    Trials with a non-finite value (diverged) are drawn as red crosses on the top edge. The x axis is
    logarithmic when ``log`` is True, or (``None``) when all values are positive and span more than a decade.
    Categorical values are placed at evenly spaced ticks. Returns the PNG and PDF paths.
    """
    with_param = [t for t in trials if param in (t.get("params") or {})]
    if not with_param:
        raise UnlearnlabError(f"No trial has hyperparameter {param!r}; searched: "
                              f"{sorted({k for t in trials for k in (t.get('params') or {})})}.")
    xs_raw = [t["params"][param] for t in with_param]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_raw)
    if numeric:
        xs = [float(x) for x in xs_raw]
        ticks = None
    else:
        cats = list(dict.fromkeys(map(str, xs_raw)))
        xs = [float(cats.index(str(x))) for x in xs_raw]
        ticks = cats
    ys = [_trial_value(t, metric) for t in with_param]
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    ok = [(x, y) for x, y in zip(xs, ys) if y is not None]
    bad = [x for x, y in zip(xs, ys) if y is None]
    if ok:
        order = sorted(ok)
        ax.plot([x for x, _ in order], [y for _, y in order], color="0.75", lw=1, zorder=1)
        ax.scatter([x for x, _ in ok], [y for _, y in ok], s=28, color="tab:blue", zorder=2,
                   label=f"trials ({len(ok)})")
    if bad:
        top = max((y for _, y in ok), default=1.0)
        ax.scatter(bad, [top] * len(bad), marker="x", color="tab:red", zorder=3, label=f"diverged ({len(bad)})")
    finite = [t for t in with_param if _trial_value(t, "value") is not None]
    if finite:
        best = min(finite, key=lambda t: (float(t["value"]), t.get("number", 0)))
        bx = xs[with_param.index(best)]
        by = _trial_value(best, metric)
        if by is not None:
            shown = f"{best['params'][param]:.3g}" if numeric else str(best["params"][param])
            ax.scatter([bx], [by], s=160, marker="*", color="tab:orange", edgecolor="k", zorder=4,
                       label=f"selected ({param}={shown})")
    if numeric and (log or (log is None and min(xs) > 0 and max(xs) / min(xs) > 10)):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), ticks, rotation=30 if max(map(len, ticks)) > 6 else 0)
    ax.set_xlabel(param)
    ax.set_ylabel(_LABELS.get(metric, metric))
    ax.set_title(title or f"Sensitivity: {_LABELS.get(metric, metric)} vs {param}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def pareto_front(points: Sequence[tuple[float, float]], minimize: tuple[bool, bool] = (True, False)) -> list[int]:
    """Indices of the non-dominated points, sorted by the first coordinate.

    ``minimize[i]`` says whether coordinate i is better low (True) or high (False). A point is dominated when
    another is at least as good in both coordinates and strictly better in one; duplicates all stay.
    """
    sign = [1.0 if m else -1.0 for m in minimize]
    pts = [(sign[0] * a, sign[1] * b) for a, b in points]
    front = []
    for i, (a, b) in enumerate(pts):
        if any(math.isnan(v) for v in (a, b)):
            continue
        dominated = any(c <= a and d <= b and (c < a or d < b) for j, (c, d) in enumerate(pts) if j != i
                        and not any(math.isnan(v) for v in (c, d)))
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


def tradeoff_points(rows: Sequence[Mapping[str, Any]], y: str = "ua_gap", x: str = "ta") -> list[dict[str, Any]]:
    """Per method (table label): x, y means and stds from the rows of ONE protocol/task (via ``summarize``).

    ``y="ua_gap"`` is |mean UA − Retrain's mean UA|; any other name is that metric's seed mean (e.g.
    ``forget_quality`` when the rows carry it). Methods without done runs or without the metric are left out.
    """
    summaries = summarize(rows, metrics=_summary_metrics(rows, x, y))
    points = []
    for s in summaries:
        if not s.seeds:
            continue
        if y == "ua_gap":
            stat = s.metrics.get("ua")
            if stat is None or (stat.gap is None and not s.is_reference):
                continue
            yv, ys = (0.0 if s.is_reference else stat.gap), stat.std
        else:
            if y not in s.metrics:
                continue
            yv, ys = s.metrics[y].mean, s.metrics[y].std
        if x not in s.metrics:
            continue
        points.append({"method": s.method, "is_reference": s.is_reference, "x": s.metrics[x].mean,
                       "x_std": s.metrics[x].std, "y": yv, "y_std": ys, "n_seeds": s.n_seeds})
    return points


def _summary_metrics(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> tuple[str, ...]:
    wanted = [x, "ua" if y == "ua_gap" else y]
    done = [r for r in rows if r["status"] == "done"]
    present = [m for m in dict.fromkeys(wanted) if done and all(m in r["metrics"] for r in done)]
    missing = [m for m in dict.fromkeys(wanted) if m not in present]
    if missing:
        raise UnlearnlabError(f"Metric(s) {missing} missing from some done runs; cannot draw the trade-off.")
    return tuple(present)


def tradeoff_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, y: str = "ua_gap", x: str = "ta",
                  title: str | None = None) -> list[Path]:
    """Trade-off figure of one protocol's rows: ``y`` (UA gap, lower better) vs ``x`` (TA, higher better).

    Pareto front over the unlearning methods (Retrain, drawn as the reference star, is not part of it) as a
    dashed step line; methods on it are filled markers, dominated ones hollow. ``y`` may also be a metric where
    higher is better only if it is ``forget_quality``; otherwise lower is treated as better. Returns paths.
    """
    points = tradeoff_points(rows, y=y, x=x)
    if not points:
        raise UnlearnlabError("No done runs with the needed metrics to plot.")
    y_min = y != "forget_quality"
    methods = [i for i, p in enumerate(points) if not p["is_reference"]]  # Retrain is the reference, not a rival
    front = {methods[j] for j in pareto_front([(points[i]["y"], points[i]["x"]) for i in methods],
                                                minimize=(y_min, False))}
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, p in enumerate(points):
        marker, color = ("*", "k") if p["is_reference"] else ("o", cmap(i % 10))
        ax.errorbar(p["x"], p["y"], xerr=_err(p["x_std"]), yerr=_err(p["y_std"]), fmt=marker, color=color,
                    ms=12 if p["is_reference"] else 7, capsize=2, lw=0.8,
                    mfc=color if i in front else "white", label=p["method"] + (" (Pareto)" if i in front else ""))
    fx = [points[i]["x"] for i in sorted(front, key=lambda i: points[i]["x"])]
    fy = [points[i]["y"] for i in sorted(front, key=lambda i: points[i]["x"])]
    if len(fx) > 1:
        ax.step(fx, fy, where="pre", color="tab:red", ls="--", lw=1.2, alpha=0.8,
                label="Pareto front", zorder=0)
    ax.set_xlabel(_LABELS.get(x, x) + " → better")
    ax.set_ylabel(_LABELS.get(y, y) + (" ↓ better" if y_min else " ↑ better"))
    protocol = rows[0]["protocol"] if rows else ""
    ax.set_title(title or f"Unlearning–utility trade-off · {protocol}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    return _save(fig, path)


def _err(std: float) -> float | None:
    return None if std is None or not math.isfinite(std) else std


def _group_name(rows: Sequence[Mapping[str, Any]]) -> str:
    protocol = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(rows[0]["protocol"])).strip("_")
    digest = hashlib.sha256(str(rows[0]["task_key"]).encode()).hexdigest()[:8]
    return f"tradeoff-{protocol}-{digest}"


def write_plots(store: ResultStore, out_dir: str | Path) -> list[Path]:
    """One trade-off figure (PNG + PDF) per (protocol, task key) group with a done Retrain; returns the paths.

    Groups without a finished Retrain (no UA gap to draw) are skipped.
    """
    out = Path(out_dir)
    paths: list[Path] = []
    for group in group_rows(store.rows()):
        if not any(r["method"] == REFERENCE and r["status"] == "done" for r in group):
            continue
        if not any(r["method"] != REFERENCE and r["status"] == "done" for r in group):
            continue
        paths.extend(tradeoff_plot(group, out / "plots" / _group_name(group),
                                   title=f"Trade-off · {group[0]['protocol']}\n{group[0]['task_key']}"))
    return paths
