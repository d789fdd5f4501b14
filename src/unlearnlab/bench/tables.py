"""The tables of a run folder: protocol-aware rendering of grid rows, and re-rendering a finished folder.

:func:`render` is :func:`unlearnlab.bench.report.render_all` with each protocol's aggregation (std ddof, extra
gap variants) and, in Markdown, the tables under the main one (gap variants, forget quality). :func:`report`
re-renders a run folder; an experiment protocol's folder is re-rendered by its experiment, which only re-reads
its complete rows (docs/protocols.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.experiment import run_experiment
from unlearnlab.bench.plots import write_plots
from unlearnlab.bench.report import REFERENCE, render_all
from unlearnlab.bench.report import write_reports as report_tables
from unlearnlab.bench.store import FILENAME, ResultStore
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.gap import avg_gap_means, gap_means_ua_ra_ta, mean_metric_std
from unlearnlab.protocols import protocol_of_label

FORMATS = ("markdown", "latex", "csv", "all")


def _aggregation(label: str) -> tuple[int, tuple[str, ...]]:
    """(std ddof, gap variants) of the protocol behind a row label; defaults for custom grids."""
    spec = protocol_of_label(label)
    return (1, ("avg_gap_matched",)) if spec is None else (spec.std_ddof, spec.gap_variants)


def _num(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.2f}"


def gap_variants_table(rows: Sequence[dict[str, Any]], ddof: int = 1) -> str:
    """The second table of a protocol showing DualOptim's aggregates, for the rows of ONE protocol and task.

    Per method (one config): ``avg_gap_means`` (gap of seed means vs Retrain's seed mean, over UA, RA, TA, MIA),
    ``gap_means_ua_ra_ta`` (DualOptim's "ToW", over UA, RA, TA) and ``mean_metric_std`` (DualOptim's
    "Avg std": mean of the four per-metric stds), all in %, std with ``ddof``.
    """
    done = [r for r in rows if r["status"] == "done"]
    ref = [r["metrics"] for r in done if r["method"] == REFERENCE]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in done:
        groups.setdefault((r["method"], r["config_hash"]), []).append(r["metrics"])
    several = {m for m, _ in groups if sum(1 for k in groups if k[0] == m) > 1}
    titles = ["Method", "avg_gap_means ↓", "gap_means_ua_ra_ta (ToW) ↓", "mean_metric_std (Avg std)", "n"]
    body = []
    for (method, chash), metrics in sorted(groups.items(), key=lambda kv: kv[0][0] != REFERENCE):
        gaps = (avg_gap_means(metrics, ref), gap_means_ua_ra_ta(metrics, ref)) if ref else (math.nan, math.nan)
        label = f"{method} [{chash[:8]}]" if method in several else method
        body.append([label, _num(gaps[0]), _num(gaps[1]), _num(mean_metric_std(metrics, ddof=ddof)),
                     str(len(metrics))])
    caption = (f"Gap variants · {rows[0]['protocol']} · gaps of seed means vs Retrain's seed mean; Avg std = mean "
               f"of the per-metric stds (UA, RA, TA, MIA), ddof = {ddof}")
    return _markdown_table(caption, titles, body)


def forget_quality_table(rows: Sequence[dict[str, Any]]) -> str:
    """The NeurIPS 2023 forget score of the rows that carry it (``--forget-quality N``), one line per method."""
    scored = [r for r in rows if r["status"] == "done" and "forget_score_eps" in r["metrics"]]
    scored.sort(key=lambda r: r["method"] != REFERENCE)
    body = [[r["method"], _num(r["metrics"]["forget_score_eps"]), _num(r["metrics"]["final_score"]),
             str(r["stats"]["forget_quality"]["n_models"]), str(r["stats"]["forget_quality"]["eps_bar"]),
             str(r["seed"])] for r in scored]
    caption = ("Forget quality (forget_score_eps, NeurIPS 2023 scoring) · N unlearned vs N retrained models; "
               "scores are comparable only at equal N; Retrain's row is the best F this N allows, not 1")
    return _markdown_table(caption, ["Method", "F ↑", "final score ↑", "N", "ε̄", "seed"], body)


def _markdown_table(caption: str, titles: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A captioned, column-aligned Markdown table; empty text when there is no row."""
    if not body:
        return ""
    widths = [max(len(line[i]) for line in [titles, *body]) for i in range(len(titles))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([caption, "", line(titles), rule, *map(line, body)]) + "\n"


def render(rows: Sequence[dict[str, Any]], fmt: str = "markdown") -> str:
    """:func:`unlearnlab.bench.report.render_all` with each protocol's std ddof and, in Markdown, the tables
    that go under the main one: gap variants for protocols that show them (``dualoptim``), forget quality."""

    def extras(group: Sequence[dict[str, Any]], ddof: int) -> str:
        parts = []
        if set(_aggregation(group[0]["protocol"])[1]) - {"avg_gap_matched"}:
            parts.append(gap_variants_table(group, ddof))
        parts.append(forget_quality_table(group))
        return "\n".join(p for p in parts if p)

    return render_all(rows, fmt, ddof=lambda group: _aggregation(group[0]["protocol"])[0],  # type: ignore[arg-type]
                      extra_markdown=extras)


def write_reports(store: ResultStore, out_dir: str | Path) -> str:
    """``table.md``, ``table.csv``, ``table.tex`` of every group in ``store`` (protocol-aware :func:`render`)."""
    return report_tables(store, out_dir, render)


def report(out: str | Path, fmt: str = "markdown") -> str:
    """Re-render the tables of a finished (or partial) run folder; ``fmt="all"`` also rewrites the table files
    and draws the plots.

    An experiment protocol's tables are its own (Markdown): they are rebuilt by calling the experiment again
    with the folder's ``config.yaml``; its rows are complete, so it only re-reads them (an unfinished run
    continues, as ``unlearnlab run`` would).
    """
    if fmt not in FORMATS:
        raise UnlearnlabError(f"--format {fmt!r}: use markdown, latex, csv or all.")
    path = Path(out)
    if not (path / FILENAME).exists() and path.suffix != ".sqlite":
        raise UnlearnlabError(f"No {FILENAME} in {path}: point to the --out folder of `unlearnlab run`.")
    folder = path if path.is_dir() else path.parent
    saved = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").exists() else {}
    if isinstance(saved, dict) and saved.get("experiment"):  # written by run_experiment
        if fmt not in ("markdown", "all"):
            raise UnlearnlabError(f"{saved['protocol']} is an experiment protocol: its tables are Markdown only "
                                  "(--format markdown or all).")
        given = {k: saved[k] for k in ("root", "cache_dir", "methods", "hparams", "original") if k in saved}
        config = RunConfig(protocol=saved["protocol"], quick=bool(saved.get("quick")),
                           seeds=tuple(saved["seeds"]), out=str(folder), device=saved.get("device"), **given)
        return run_experiment(config)  # draws the experiment's plots too
    with ResultStore(path) as store:
        if fmt != "all":
            return render(store.rows(), fmt)
        markdown = write_reports(store, folder)
        write_plots(store, folder)
    return markdown
