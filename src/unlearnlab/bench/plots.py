"""Figures (matplotlib, Agg backend), each saved as PNG and PDF.

Figures are built with :class:`matplotlib.figure.Figure` (rendered by the Agg/PDF canvases), never through
``pyplot``: no global backend is switched, no window opens, and nothing leaks between calls.

* :func:`sensitivity_plot`: a metric against one hyperparameter over every trial of a search, the selected
  trial marked — the whole curve, not only the best point (the DualOptim paper reports the whole Avg.Gap-vs-η_f
  curve; docs/tuning.md).
* :func:`tradeoff_plot`: the unlearning–utility trade-off of one protocol/task group of a results database —
  per method, the UA gap to Retrain (lower is better) against TA (higher is better), seed std as error bars
  (an absolute gap's bar stops at 0), Retrain as the reference star, the Pareto front drawn through the
  non-dominated methods, and methods that land on the same point drawn as nested markers of different shapes and
  sizes so each stays visible. Titles say in words what the figure holds (dataset, model, forget set, seeds).
* :func:`eps_histogram_plot`: the per-example ε histograms of the NeurIPS 2023 forget score (rows with
  ``stats["forget_quality"]``, ``unlearnlab run --forget-quality N``), one panel per method, ε̄ marked.
* :func:`write_plots`: every applicable figure of a ``results.sqlite`` (groups without the data are skipped),
  including the experiment protocols' figures of :mod:`unlearnlab.bench.experiment_plots`.
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

from unlearnlab.bench.captions import method_labels, plot_title
from unlearnlab.bench.experiment_plots import (
    certified_budget_plot,
    certified_budget_points,
    has_fit,
    is_certified_budget,
    poisoning_fit_plot,
    poisoning_fits,
)
from unlearnlab.bench.figures import digest, save_figure, slug
from unlearnlab.bench.report import REFERENCE, group_rows, summarize
from unlearnlab.bench.store import ResultStore
from unlearnlab.errors import UnlearnlabError

_LABELS = {"value": "Avg.Gap (selection split)", "ua": "UA (%)", "ra": "RA (%)", "ta": "TA (%)", "mia": "MIA (%)",
           "ua_gap": "UA gap to Retrain (|UA − UA_retrain|, %)", "gap": "Avg.Gap"}


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
    return save_figure(fig, path)


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
        points.append({"method": s.method, "is_reference": s.is_reference, "is_noise_floor": s.is_noise_floor,
                       "x": s.metrics[x].mean,
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


#: marker shapes cycled through the methods, so methods sharing a point stay distinguishable
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")


def _overlap_sizes(points: Sequence[Mapping[str, Any]], base: float = 7.0, step: float = 4.0) -> list[float]:
    """Marker size per point: points at the same (x, y) (to 2 decimals, the tables' precision) get decreasing sizes,
    so each later one is drawn inside the earlier ones and every marker stays visible."""
    keys = [(round(float(pt["x"]), 2), round(float(pt["y"]), 2)) for pt in points]
    total = {k: keys.count(k) for k in keys}
    seen: dict[tuple[float, float], int] = {}
    sizes = []
    for k in keys:
        sizes.append(base + step * (total[k] - 1 - seen.get(k, 0)))
        seen[k] = seen.get(k, 0) + 1
    return sizes


def tradeoff_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, y: str = "ua_gap", x: str = "ta",
                  title: str | None = None) -> list[Path]:
    """Trade-off figure of one protocol's rows: ``y`` (UA gap, lower better) vs ``x`` (TA, higher better).

    Pareto front over the unlearning methods (Retrain, the black reference star, and the noise floor, a grey star,
    are not part of it) as a dashed step line; methods on it are filled markers, dominated ones hollow. Error bars
    are the seed stds; the
    bar of an absolute gap (``ua_gap``) stops at 0. Methods at the same point get nested markers (different shapes,
    decreasing sizes). ``y`` may also be a metric where higher is better only if it is ``forget_quality``;
    otherwise lower is treated as better. Returns paths.
    """
    points = tradeoff_points(rows, y=y, x=x)
    if not points:
        raise UnlearnlabError("No done runs with the needed metrics to plot.")
    y_min = y != "forget_quality"
    # Retrain and its independent second run (the noise floor) are references, not rivals
    methods = [i for i, p in enumerate(points) if not (p["is_reference"] or p.get("is_noise_floor"))]
    front = {methods[j] for j in pareto_front([(points[i]["y"], points[i]["x"]) for i in methods],
                                                minimize=(y_min, False))}
    sizes = _overlap_sizes(points)
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, p in enumerate(points):
        marker, color = (("*", "k") if p["is_reference"] else ("*", "0.55") if p.get("is_noise_floor")
                         else (_MARKERS[i % len(_MARKERS)], cmap(i % 10)))
        yerr: Any = _err(p["y_std"])
        if yerr is not None and y == "ua_gap":  # |gap| >= 0: the bar may not cross 0
            yerr = [[min(yerr, max(p["y"], 0.0))], [yerr]]
        ax.errorbar(p["x"], p["y"], xerr=_err(p["x_std"]), yerr=yerr, fmt=marker, color=color,
                    ms=sizes[i] + (5 if p["is_reference"] or p.get("is_noise_floor") else 0), capsize=2, lw=0.8,
                    alpha=0.9,
                    mfc=color if i in front else "white", label=p["method"] + (" (Pareto)" if i in front else ""))
    fx = [points[i]["x"] for i in sorted(front, key=lambda i: points[i]["x"])]
    fy = [points[i]["y"] for i in sorted(front, key=lambda i: points[i]["x"])]
    if len(fx) > 1:
        ax.step(fx, fy, where="pre", color="tab:red", ls="--", lw=1.2, alpha=0.8,
                label="Pareto front", zorder=0)
    ax.set_xlabel(_LABELS.get(x, x) + " → better")
    ax.set_ylabel(_LABELS.get(y, y) + (" ↓ better" if y_min else " ↑ better"))
    if y == "ua_gap":
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.set_title(title or f"Unlearning–utility trade-off: {plot_title(rows)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    return save_figure(fig, path)


def _err(std: float) -> float | None:
    return None if std is None or not math.isfinite(std) else std


def _group_name(rows: Sequence[Mapping[str, Any]]) -> str:
    protocol = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(rows[0]["protocol"])).strip("_")
    digest = hashlib.sha256(str(rows[0]["task_key"]).encode()).hexdigest()[:8]
    return f"tradeoff-{protocol}-{digest}"


# --------------------------------------------------------------------------------------- per-example ε histograms
def _has_forget_quality(row: Mapping[str, Any]) -> bool:
    fq = (row.get("stats") or {}).get("forget_quality")
    return row["status"] == "done" and isinstance(fq, Mapping) and bool(fq.get("eps_histogram"))


def eps_histogram_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> list[Path]:
    """Per-example ε histograms of ONE protocol/task group: one panel per method, ε̄ as a dashed line.

    Uses the done rows carrying ``stats["forget_quality"]`` (``eps_histogram``: counts per 0.5-wide bucket
    [0.5j, 0.5j + 0.5), the last one holding ε = 50; ``eps_bar``, ``n_models``, ``F``); rows of one method (e.g.
    several seeds) are summed. ``eps_histogram`` is ``{"bucket_width", "upper", "counts"}`` as
    :func:`~unlearnlab.bench.forget_quality.forget_quality` stores it (a bare list of counts is accepted).
    The x axis runs to just past ε̄ and the largest finite ε; the capped bucket
    (ε = 50: the families are perfectly separated) is drawn as a separate hatched bar at the right. Returns paths.
    """
    rows = [r for r in rows if _has_forget_quality(r)]
    if not rows:
        raise UnlearnlabError("No done run carries stats['forget_quality']: run `unlearnlab run --forget-quality N`.")
    labels = method_labels(rows)
    per: dict[str, dict[str, Any]] = {}
    order = sorted(dict.fromkeys(labels[r["run_key"]] for r in rows), key=lambda m: (m != REFERENCE, m))
    for r in rows:
        fq = r["stats"]["forget_quality"]
        entry = per.setdefault(labels[r["run_key"]], {"counts": None, "eps_bar": set(), "n_models": set(), "F": []})
        hist = fq["eps_histogram"]
        counts = [float(c) for c in (hist["counts"] if isinstance(hist, Mapping) else hist)]
        if isinstance(hist, Mapping):
            entry["width"] = float(hist.get("bucket_width", 0.5))
        entry["counts"] = counts if entry["counts"] is None else [a + b for a, b in zip(entry["counts"], counts)]
        entry["eps_bar"].add(fq.get("eps_bar"))
        entry["n_models"].add(fq.get("n_models"))
        if fq.get("F") is not None:
            entry["F"].append(float(fq["F"]))
    n_buckets = max(len(e["counts"]) for e in per.values())
    width = next((e["width"] for e in per.values() if "width" in e), 0.5)  # forget_quality.BUCKET_WIDTH
    cap = n_buckets - 1  # the last bucket holds ε = 50 (the cap)
    eps_bars = [float(b) for e in per.values() for b in e["eps_bar"] if b is not None]
    finite_top = max([j for e in per.values() for j, c in enumerate(e["counts"][:cap]) if c > 0], default=0)
    x_max = max((finite_top + 1) * width, max(eps_bars, default=0.0) + width) + width
    cap_x = x_max + 2 * width
    n = len(order)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.6 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    cmap = matplotlib.colormaps["tab10"]
    for i, label in enumerate(order):
        ax = axes[i // ncols][i % ncols]
        e = per[label]
        counts = e["counts"] + [0.0] * (n_buckets - len(e["counts"]))
        shown = [j for j in range(cap) if j * width < x_max]
        color = "k" if label == REFERENCE else cmap(i % 10)
        ax.bar([j * width for j in shown], [counts[j] for j in shown], width=width, align="edge", color=color,
               alpha=0.75, edgecolor="white", lw=0.4)
        ax.bar([cap_x], [counts[cap]], width=width * 1.5, align="edge", color=color, alpha=0.45, hatch="//",
               edgecolor="k", lw=0.4)
        for b in sorted(e["eps_bar"] - {None}):
            ax.axvline(float(b), color="tab:red", ls="--", lw=1.1, label=f"ε̄ = {float(b):g}")
        n_models = ", ".join(str(m) for m in sorted(e["n_models"] - {None}))
        f_text = f", F = {sum(e['F']) / len(e['F']):.3f}" if e["F"] else ""
        ax.set_title(f"{label} (N = {n_models}{f_text})", fontsize=9)
        ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= x_max] + [cap_x + 0.75 * width],
                      [f"{t:g}" for t in ax.get_xticks() if 0 <= t <= x_max] + ["50\n(cap)"])
        ax.set_xlim(-width / 2, cap_x + 2 * width)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, frameon=False)
        if i % ncols == 0:
            ax.set_ylabel("forget examples")
        if i // ncols == nrows - 1:
            ax.set_xlabel("per-example ε_i")
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.suptitle(title or f"Per-example ε of the NeurIPS 2023 forget score: {plot_title(rows)}", fontsize=10)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------- all figures
def _tradeoff_ready(group: Sequence[Mapping[str, Any]]) -> bool:
    done = [r for r in group if r["status"] == "done"]
    return (any(r["method"] == REFERENCE for r in done) and any(r["method"] != REFERENCE for r in done)
            and all("ua" in r["metrics"] and "ta" in r["metrics"] for r in done))


def write_plots(store: ResultStore, out_dir: str | Path) -> list[Path]:
    """Every applicable figure (PNG + PDF) of the store's rows, under ``out_dir/plots``; returns the paths.

    * ``tradeoff-<protocol>-<task hash>``: per (protocol, task key) group with a done Retrain, another done
      method and UA/TA on every done row;
    * ``eps-hist-<protocol>-<task hash>``: per group with rows carrying ``stats["forget_quality"]``;
    * ``certified-budget-<protocol>``: per ``certified-budget`` protocol (all its split seeds) with a certified ε;
    * ``poisoning-fits-<protocol>-<setting hash>``: per MinNorm-OG poisoning setting with stored fits.

    Groups without the data for a figure are skipped.
    """
    plots = Path(out_dir) / "plots"
    paths: list[Path] = []
    rows = store.rows()
    for group in group_rows(rows):
        head = group[0]
        if _tradeoff_ready(group):
            paths.extend(tradeoff_plot(group, plots / _group_name(group)))
        if any(_has_forget_quality(r) for r in group):
            paths.extend(eps_histogram_plot(group, plots / f"eps-hist-{slug(head['protocol'])}-"
                                            f"{digest(head['task_key'])}"))
    certified: dict[str, list[dict]] = {}
    poisoning: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if is_certified_budget(r):
            certified.setdefault(r["protocol"], []).append(r)
        if has_fit(r) or "poisoned_data" in (r.get("stats") or {}):
            setting = str(r["task_key"]).rsplit("/T", 1)[0]  # mnog-sine…/width…/steps… (all T of one setting)
            poisoning.setdefault((r["protocol"], setting), []).append(r)
    for protocol, rs in certified.items():
        if any(eps is not None for _, eps in certified_budget_points(rs)):
            paths.extend(certified_budget_plot(rs, plots / f"certified-budget-{slug(protocol)}"))
    for (protocol, setting), rs in poisoning.items():
        if poisoning_fits(rs):
            paths.extend(poisoning_fit_plot(rs, plots / f"poisoning-fits-{slug(protocol)}-{digest(setting)}",
                                            title=f"Data poisoning fits · {protocol} · {setting}"))
    return paths
