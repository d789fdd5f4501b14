"""The tables of a run folder: protocol-aware rendering of grid rows, and re-rendering a finished folder.

:func:`render` is :func:`unlearnlab.bench.report.render_all` with each protocol's aggregation (std ddof, extra
gap variants) and, in Markdown, the tables under the main one (every attack with its spread and U-LiRA, gap
variants, forget quality). :func:`report`
re-renders a run folder; an experiment protocol's folder is re-rendered by its experiment, which only re-reads
its complete rows (docs/protocols.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from unlearnlab.bench.captions import legend, method_labels
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.experiment import run_experiment
from unlearnlab.bench.plots import write_plots
from unlearnlab.bench.report import REFERENCE, render_all, summarize, to_markdown
from unlearnlab.bench.report import write_reports as report_tables
from unlearnlab.bench.store import FILENAME, ResultStore
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import DEFAULT_MIAS
from unlearnlab.metrics.gap import avg_gap_means, gap_means_ua_ra_ta, mean_metric_std
from unlearnlab.metrics.ulira import ULIRA_DEFINITIONS
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
    labels = method_labels(rows)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(done, key=lambda r: r["method"] != REFERENCE):
        groups.setdefault(labels[r["run_key"]], []).append(r["metrics"])
    titles = ["Method", "avg_gap_means ↓", "gap_means_ua_ra_ta (ToW) ↓", "mean_metric_std (Avg std)", "n"]
    body = []
    for label, metrics in groups.items():
        gaps = (avg_gap_means(metrics, ref), gap_means_ua_ra_ta(metrics, ref)) if ref else (math.nan, math.nan)
        body.append([label, _num(gaps[0]), _num(gaps[1]), _num(mean_metric_std(metrics, ddof=ddof)),
                     str(len(metrics))])
    caption = (f"Gap variants · {rows[0]['protocol']} · gaps of seed means vs Retrain's seed mean; Avg std = mean "
               f"of the per-metric stds (UA, RA, TA, MIA), ddof = {ddof}")
    return _markdown_table(caption, titles, body)


def forget_quality_table(rows: Sequence[dict[str, Any]]) -> str:
    """The NeurIPS 2023 forget score of the rows that carry it (``--forget-quality N``), one line per method."""
    scored = [r for r in rows if r["status"] == "done" and "forget_score_eps" in r["metrics"]]
    scored.sort(key=lambda r: r["method"] != REFERENCE)
    labels = method_labels(rows)
    body = [[labels[r["run_key"]], _num(r["metrics"]["forget_score_eps"]), _num(r["metrics"]["final_score"]),
             str(r["stats"]["forget_quality"]["n_models"]), str(r["stats"]["forget_quality"]["eps_bar"]),
             str(r["seed"])] for r in scored]
    caption = ("Forget quality (forget_score_eps, NeurIPS 2023 scoring) · N unlearned vs N retrained models; "
               "scores are comparable only at equal N; Retrain's row is the best F this N allows, not 1")
    return _markdown_table(caption, ["Method", "F ↑", "final score ↑", "N", "ε̄", "seed"], body)


#: the attack metrics the second table shows when every done row has them
ATTACK_METRICS = (*DEFAULT_MIAS, *ULIRA_DEFINITIONS)


def attacks_table(rows: Sequence[dict[str, Any]], ddof: int = 1) -> str:
    """Every attack the rows carry, for ONE protocol and task: each MIA definition (with its attack spread) and
    U-LiRA, cells as in the main table. Empty when the rows carry nothing beyond the primary MIA."""
    done = [r for r in rows if r["status"] == "done"]
    present = [m for m in ATTACK_METRICS if done and all(m in r["metrics"] for r in done)]
    if len(present) < 2:
        return ""
    summaries = summarize(rows, metrics=present, ddof=ddof)
    ulira = next((((r.get("stats") or {}).get("evaluation") or {}).get("ulira") for r in done
                  if ((r.get("stats") or {}).get("evaluation") or {}).get("ulira")), None)
    what = ("every MIA computed" + (f" and U-LiRA (K = {ulira['n_shadows']} shadow models; {ulira['n_positive']} "
                                    "forget examples, each scored on the evaluated and on the retrained model; FPR "
                                    f"resolution {ulira['fpr_resolution']:.2g} %)" if ulira else ""))
    notes = [*(n for n in legend(rows, summaries, ddof) if not n.startswith(("Avg.Gap", "RTE"))),
             "Ideal values: each MIA = Retrain's; U-LiRA balanced accuracy 50 % and TPR = FPR (docs/metrics.md)."]
    return to_markdown(summaries, f"Attacks · {rows[0]['protocol']} · {what}", notes)


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
        parts = [attacks_table(group, ddof)]
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
