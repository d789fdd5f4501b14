"""Figures (matplotlib, Agg backend), each saved as PNG and PDF.

Figures are built with :class:`matplotlib.figure.Figure` (rendered by the Agg/PDF canvases), never through
``pyplot``: no global backend is switched, no window opens, and nothing leaks between calls.

* :func:`sensitivity_plot`: a metric against one hyperparameter over every trial of a search, the selected
  trial marked — the whole curve, not only the best point (dualoptim §7: "report the whole Avg.Gap-vs-η_f curve").
* :func:`tradeoff_plot`: the unlearning–utility trade-off of one protocol/task group of a results database —
  per method, the UA gap to Retrain (lower is better) against TA (higher is better), seed std as error bars,
  Retrain as the reference star and the Pareto front drawn through the non-dominated methods.
* :func:`eps_histogram_plot`: the per-example ε histograms of the NeurIPS 2023 forget score (rows with
  ``stats["forget_quality"]``, ``unlearnlab run --forget-quality N``), one panel per method, ε̄ marked.
* :func:`certified_budget_plot`: test accuracy against the epoch budget E of the ``certified-budget`` experiment,
  one panel per certified ε, the val-selected configuration per (method, ε, E), Retrain as the reference line.
* :func:`poisoning_fit_plot`: MinNorm-OG's sine poisoning experiment, one panel per T: sin x, the training points
  (poisoned ones in red) and the fits of Retrain, MinNorm-OG and GD of the median trial.
* :func:`write_plots`: every applicable figure of a ``results.sqlite`` (groups without the data are skipped).
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
from unlearnlab.bench.selection import select_config
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


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def _digest(text: Any) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def _method_labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """run_key → label: the method name, plus the config hash when that method ran with several configs."""
    configs: dict[str, set[str]] = {}
    for r in rows:
        configs.setdefault(r["method"], set()).add(r["config_hash"])
    return {r["run_key"]: r["method"] + (f" [{r['config_hash'][:8]}]" if len(configs[r["method"]]) > 1 else "")
            for r in rows}


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
    labels = _method_labels(rows)
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
    protocol = rows[0]["protocol"]
    fig.suptitle(title or f"Per-example ε (forget score) · {protocol}", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------------------- certified budget curves
CERTIFIED_PROTOCOL = "certified-budget"


def _is_certified_budget(row: Mapping[str, Any]) -> bool:
    cfg = row.get("config") or {}
    return str(row["task_key"]).startswith(CERTIFIED_PROTOCOL + " v") and "epochs" in cfg and "epsilon" in cfg


def certified_budget_points(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float | None], list[dict]]:
    """(method, ε) → points sorted by E: ``{"E", "test", "test_ci", "val", "n", "hparams"}``.

    Selection as the experiment's table (certified.md §9.5): per (method, ε, E) the hyperparameter group with
    all seed pairs done (the most pairs seen among the rows; fewer when none has them all) and the highest mean
    validation accuracy; test accuracy is its mean ± 1.96·std/√n (ddof 0). Retrain has ε = None.
    """
    done = [r for r in rows if r["status"] == "done" and _is_certified_budget(r)
            and "test_acc" in r["metrics"] and "val_acc" in r["metrics"]]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        cfg = r["config"]
        key = (cfg["method"], cfg["epsilon"], int(cfg["epochs"]), str(sorted((cfg.get("hparams") or {}).items())))
        groups.setdefault(key, []).append(r)
    pairs = len({(r["config"].get("split_seed"), r["config"].get("global_seed")) for r in done})
    best: dict[tuple, list[dict]] = {}
    for (method, eps, budget, _), rs in groups.items():
        n_full = max(len(g) for k, g in groups.items() if k[:3] == (method, eps, budget))
        if len(rs) < min(pairs, n_full):
            continue
        mean_val = sum(r["metrics"]["val_acc"] for r in rs) / len(rs)
        cur = best.get((method, eps, budget))
        if cur is None or mean_val > sum(r["metrics"]["val_acc"] for r in cur) / len(cur):
            best[(method, eps, budget)] = rs
    out: dict[tuple[str, float | None], list[dict]] = {}
    for (method, eps, budget), rs in sorted(best.items(), key=lambda kv: kv[0][2]):
        tests = [float(r["metrics"]["test_acc"]) for r in rs]
        mean = sum(tests) / len(tests)
        std = math.sqrt(sum((t - mean) ** 2 for t in tests) / len(tests))
        out.setdefault((method, eps), []).append({
            "E": budget, "test": mean, "test_ci": 1.96 * std / math.sqrt(len(tests)),
            "val": sum(r["metrics"]["val_acc"] for r in rs) / len(rs), "n": len(rs),
            "hparams": rs[0]["config"].get("hparams") or {}})
    return out


def certified_budget_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None
                          ) -> list[Path]:
    """Test accuracy vs epoch budget E of one ``certified-budget`` variant: one panel per certified ε.

    Each panel: one line per certified method (val-selected configuration per E, 95 % CI error bars) and
    Retrain with the same budget (exact, ε = 0) as the black dashed reference line, repeated in every panel.
    The x axis is logarithmic when the budgets span more than a decade. Returns the PNG and PDF paths.
    """
    points = certified_budget_points(rows)
    epsilons = sorted({eps for _, eps in points if eps is not None})
    if not epsilons:
        raise UnlearnlabError("No finished certified-budget run with a certified ε to plot.")
    methods = list(dict.fromkeys(m for m, eps in points if eps is not None))
    budgets = sorted({p["E"] for ps in points.values() for p in ps})
    fig = Figure(figsize=(3.6 * len(epsilons) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(epsilons), squeeze=False, sharey=True)[0]
    cmap = matplotlib.colormaps["tab10"]
    for ax, eps in zip(axes, epsilons):
        ref = points.get((REFERENCE, None), [])
        if ref:
            ax.errorbar([p["E"] for p in ref], [p["test"] for p in ref], yerr=[p["test_ci"] for p in ref],
                        color="k", ls="--", marker="*", ms=8, capsize=2, lw=1.2, label="retrain (exact, same E)")
        for i, method in enumerate(methods):
            ps = points.get((method, eps), [])
            if ps:
                ax.errorbar([p["E"] for p in ps], [p["test"] for p in ps], yerr=[p["test_ci"] for p in ps],
                            color=cmap(i % 10), marker="o", ms=5, capsize=2, lw=1.2, label=method)
        if budgets and budgets[0] > 0 and budgets[-1] / budgets[0] > 10:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_title(f"ε = {eps:g}", fontsize=10)
        ax.set_xlabel("epoch budget E over D_r")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    axes[-1].legend(handles, labels, fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    protocol = next(iter(rows))["protocol"] if rows else CERTIFIED_PROTOCOL
    fig.suptitle(title or f"Certified unlearning: test accuracy vs budget · {protocol}", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------------------- poisoning fits (MinNorm-OG)
#: methods drawn in the poisoning-fit figure, with their labels and colours
FIT_METHODS = {"mnog/retrain": ("Retrain", "k"), "minnorm-og": ("MinNorm-OG", "tab:blue"),
               "mnog/gd": ("GD", "tab:orange")}
#: the method whose median trial is shown (all fits of a panel come from one trial)
FIT_MEDIAN_OF = "minnorm-og"


def _has_fit(row: Mapping[str, Any]) -> bool:
    fit = (row.get("stats") or {}).get("fit")
    return row["status"] in ("done", "diverged") and isinstance(fit, Mapping) and bool(fit.get("y"))


def _select_fit_config(rows: Sequence[Mapping[str, Any]], method: str, seeds: Sequence[int]) -> list[dict]:
    """Rows of ``method``'s selected configuration (best mean sup-norm error over trials, as the table)."""
    per: dict[str, list[float]] = {}
    by_cfg: dict[str, list[dict]] = {}
    for r in rows:
        if r["method"] != method or r["seed"] not in seeds:
            continue
        v = r["metrics"].get("sup_norm_error")
        per.setdefault(r["config_hash"], []).append(math.inf if v is None else float(v))
        by_cfg.setdefault(r["config_hash"], []).append(r)
    per = {k: v for k, v in per.items() if len(v) == len(seeds)} or per
    best = select_config(per)
    return by_cfg.get(best, []) if best is not None else []


def poisoning_fits(rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per T: ``{"seed", "data", "original", "fits": {method: (x, y, sup_norm_error)}}`` of the median trial.

    The median trial is the one whose sup-norm error, for :data:`FIT_MEDIAN_OF`'s selected configuration, is the
    (lower) median over trials; the other methods' fits (their own selected configurations) are from the same
    trial. The trial's points come from ``stats["poisoned_data"]`` of any row of that seed. T without fits are
    left out.
    """
    all_rows = list(rows)
    data_by_seed = {}
    for r in all_rows:
        d = (r.get("stats") or {}).get("poisoned_data")
        if isinstance(d, Mapping) and r["seed"] not in data_by_seed:
            data_by_seed[r["seed"]] = d
    by_t: dict[int, list[dict]] = {}
    for r in all_rows:
        if _has_fit(r) and "epochs" in (r.get("config") or {}):
            by_t.setdefault(int(r["config"]["epochs"]), []).append(r)
    out: dict[int, dict[str, Any]] = {}
    for t, rs in sorted(by_t.items()):
        seeds = sorted({r["seed"] for r in rs})
        selected = {m: _select_fit_config(rs, m, seeds) for m in FIT_METHODS}
        anchor = selected.get(FIT_MEDIAN_OF) or next((v for v in selected.values() if v), [])
        if not anchor:
            continue
        ranked = sorted(anchor, key=lambda r: (_fit_error(r), r["seed"]))
        seed = ranked[(len(ranked) - 1) // 2]["seed"]
        fits = {}
        for m, sel in selected.items():
            row = next((r for r in sel if r["seed"] == seed), None)
            if row is not None:
                fit = row["stats"]["fit"]
                fits[m] = (_fit_x(fit), [math.nan if v is None else float(v) for v in fit["y"]], _fit_error(row))
        data = data_by_seed.get(seed)
        out[t] = {"seed": seed, "data": data, "fits": fits, "n_trials": len(seeds),
                  "original": (data or {}).get("original_fit")}
    return out


def _fit_error(row: Mapping[str, Any]) -> float:
    v = row["metrics"].get("sup_norm_error")
    return math.inf if v is None else float(v)


def _fit_x(fit: Mapping[str, Any]) -> list[float]:
    low, high = (float(v) for v in fit["x_range"])
    n = len(fit["y"])
    return [low + (high - low) * i / (n - 1) for i in range(n)] if n > 1 else [low]


def poisoning_fit_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> list[Path]:
    """MinNorm-OG poisoning fits: one panel per T with sin x, the retain points, the poisoned points (red x),
    the poisoned model (grey) and the fits of Retrain, MinNorm-OG and GD for the median trial (sup-norm error in
    the legend). Needs rows whose stats carry ``fit`` (``minnorm.poisoning`` writes it). Returns paths."""
    per_t = poisoning_fits(rows)
    if not per_t:
        raise UnlearnlabError("No poisoning row carries stats['fit'] (the model's predictions on the grid).")
    ts = list(per_t)
    fig = Figure(figsize=(7.4, 2.9 * len(ts) + 0.5), layout="constrained")
    axes = fig.subplots(len(ts), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, ts):
        entry = per_t[t]
        xs = next(iter(entry["fits"].values()))[0] if entry["fits"] else [-5 * math.pi, 5 * math.pi]
        dense = [xs[0] + (xs[-1] - xs[0]) * i / 999 for i in range(1000)]
        ax.plot(dense, [math.sin(x) for x in dense], color="0.55", lw=2.2, alpha=0.6, label="sin x")
        original = entry["original"]
        if isinstance(original, Mapping) and original.get("y"):
            ax.plot(_fit_x(original), original["y"], color="0.4", lw=0.9, ls=":", label="poisoned model")
        for m, (x, y, err) in entry["fits"].items():
            label, color = FIT_METHODS[m]
            ax.plot(x, y, color=color, lw=1.3, label=f"{label} (sup err {err:.2f})")
        data = entry["data"]
        if isinstance(data, Mapping):
            if data.get("retain_x"):
                ax.scatter(data["retain_x"], data["retain_y"], s=12, color="tab:green", zorder=3,
                           label="retain points")
            if data.get("forget_x"):
                ax.scatter(data["forget_x"], data["forget_y"], s=40, marker="x", color="tab:red", zorder=4,
                           label="poisoned points")
        ax.set_title(f"T = {t} · median trial (seed {entry['seed']}, {entry['n_trials']} trials)", fontsize=9)
        ax.set_ylim(-3.0, 3.0)
        ax.set_xlim(xs[0], xs[-1])
        ax.grid(alpha=0.3)
        ax.set_ylabel("f(x)")
        ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    axes[-1].set_xlabel("x")
    protocol = rows[0]["protocol"] if rows else ""
    fig.suptitle(title or f"Data poisoning fits · {protocol}", fontsize=10)
    return _save(fig, path)


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
        where = f"{head['protocol']}\n{head['task_key']}"
        if _tradeoff_ready(group):
            paths.extend(tradeoff_plot(group, plots / _group_name(group), title=f"Trade-off · {where}"))
        if any(_has_forget_quality(r) for r in group):
            paths.extend(eps_histogram_plot(group, plots / f"eps-hist-{_slug(head['protocol'])}-"
                                            f"{_digest(head['task_key'])}", title=f"Per-example ε · {where}"))
    certified: dict[str, list[dict]] = {}
    poisoning: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if _is_certified_budget(r):
            certified.setdefault(r["protocol"], []).append(r)
        if _has_fit(r) or "poisoned_data" in (r.get("stats") or {}):
            setting = str(r["task_key"]).rsplit("/T", 1)[0]  # mnog-sine…/width…/steps… (all T of one setting)
            poisoning.setdefault((r["protocol"], setting), []).append(r)
    for protocol, rs in certified.items():
        if any(eps is not None for _, eps in certified_budget_points(rs)):
            paths.extend(certified_budget_plot(rs, plots / f"certified-budget-{_slug(protocol)}"))
    for (protocol, setting), rs in poisoning.items():
        if poisoning_fits(rs):
            paths.extend(poisoning_fit_plot(rs, plots / f"poisoning-fits-{_slug(protocol)}-{_digest(setting)}",
                                            title=f"Data poisoning fits · {protocol} · {setting}"))
    return paths
