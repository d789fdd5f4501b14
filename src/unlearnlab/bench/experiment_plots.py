"""Figures of the experiment protocols (matplotlib :class:`~matplotlib.figure.Figure`, no ``pyplot``).

* :func:`certified_budget_plot`: test accuracy against the epoch budget E of the ``certified-budget`` experiment,
  one panel per certified ε, the val-selected configuration per (method, ε, E), Retrain as the reference line.
* :func:`poisoning_fit_plot`: MinNorm-OG's sine poisoning experiment, one panel per T: sin x, the training points
  (poisoned ones in red) and the fits of Retrain, MinNorm-OG and GD of the median trial, with each method's
  configuration selected as its table selects it (:mod:`unlearnlab.bench.selection`).

:func:`unlearnlab.bench.plots.write_plots` draws them for every results database that holds their rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.ticker
from matplotlib.figure import Figure

from unlearnlab.bench.figures import save_figure
from unlearnlab.bench.report import REFERENCE
from unlearnlab.bench.selection import select_config
from unlearnlab.errors import UnlearnlabError

# --------------------------------------------------------------------------------------- certified budget curves
CERTIFIED_PROTOCOL = "certified-budget"


def is_certified_budget(row: Mapping[str, Any]) -> bool:
    cfg = row.get("config") or {}
    return str(row["task_key"]).startswith(CERTIFIED_PROTOCOL + " v") and "epochs" in cfg and "epsilon" in cfg


def certified_budget_points(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float | None], list[dict]]:
    """(method, ε) → points sorted by E: ``{"E", "test", "test_ci", "val", "n", "hparams"}``.

    Selection as the experiment's table (docs/certified_budget.md): per (method, ε, E) the hyperparameter group with
    all seed pairs done (the most pairs seen among the rows; fewer when none has them all) and the highest mean
    validation accuracy; test accuracy is its mean ± 1.96·std/√n (ddof 0). Retrain has ε = None.
    """
    done = [r for r in rows if r["status"] == "done" and is_certified_budget(r)
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
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------- poisoning fits (MinNorm-OG)
#: methods drawn in the poisoning-fit figure, with their labels and colours
FIT_METHODS = {"mnog/retrain": ("Retrain", "k"), "minnorm-og": ("MinNorm-OG", "tab:blue"),
               "mnog/gd": ("GD", "tab:orange")}
#: the method whose median trial is shown (all fits of a panel come from one trial)
FIT_MEDIAN_OF = "minnorm-og"


def has_fit(row: Mapping[str, Any]) -> bool:
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
        if has_fit(r) and "epochs" in (r.get("config") or {}):
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
    return save_figure(fig, path)
