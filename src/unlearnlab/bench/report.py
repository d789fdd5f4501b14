"""Paper-style result tables from results-store rows: Markdown, LaTeX, long-format CSV and a terminal table.

One table per (protocol, task key) (:mod:`unlearnlab.bench.summary` computes its rows): a caption in words above
it and a legend below it (:mod:`unlearnlab.bench.captions`). Retrain first, then the noise floor (a second,
independent Retrain), then the methods in the order they were first run. A cell is "mean±std [±attack] (gap)":
the std over seeds (left out for a single seed), the MIA's spread over resampled attack sets, and the gap
|mean − Retrain mean|, starred when it is above the noise floor. Avg.Gap is matched over seeds or, when Retrain
lacks some of a method's seeds, the gap of means marked "unmatched"; RTE is "minutes (× Retrain)" where both
were timed alike (docs/metrics.md).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.table import Table

from unlearnlab.bench.captions import DASH, caption, legend
from unlearnlab.bench.plan import REFERENCE
from unlearnlab.bench.store import ResultStore
from unlearnlab.bench.summary import (
    MethodSummary,
    MetricStat,
    Row,
    group_rows,
    primary_mia,
    summarize,
)
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.gap import GAP_METRICS
from unlearnlab.utils import atomic_write_text

__all__ = ["CSV_COLUMNS", "REFERENCE", "MethodSummary", "MetricStat", "group_rows", "header_line", "primary_mia",
           "render_all", "summarize", "to_csv", "to_latex", "to_markdown", "to_rich_table", "write_reports"]

MIA_EFFICACY = "mia_efficacy_svc_conf"
_TITLES = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy_svc_conf": "MIA-Efficacy (SVC)",
           "mia_lr_entropy_member_rate": "entropy MIA (member %)", "mia_loss_lr_cv": "loss MIA (CV acc. %)",
           "ulira_balanced_accuracy": "U-LiRA bal. acc.", "ulira_tpr_at_1pct_fpr": "U-LiRA TPR@1% FPR",
           "ulira_tpr_at_01pct_fpr": "U-LiRA TPR@0.1% FPR"}


@dataclass(frozen=True)
class _Style:
    """The symbols one output format uses inside cells."""

    pm: str
    times: str
    gap: str
    escape: bool = False


_PLAIN = _Style(pm="±", times="×", gap="({})")
_LATEX = _Style(pm="$\\pm$", times="$\\times$", gap="{{\\scriptsize ({})}}", escape=True)
_TEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": "\\textbackslash{}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def _tex(text: str) -> str:
    """``text`` with LaTeX special characters escaped."""
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


def header_line(rows: Sequence[Row]) -> str:
    """The caption of one table's rows (:func:`unlearnlab.bench.captions.caption`)."""
    return caption(rows, primary_mia(rows))


def _num(x: float) -> str:
    """Two decimals; NaN as a dash."""
    return DASH if math.isnan(x) else f"{x:.2f}"


def _metric_cell(stat: MetricStat, style: _Style, n_seeds: int) -> str:
    """``m.mm±s.ss [±a.aa] (g.gg*)``: no ± for one seed, no brackets without attack draws, no gap on Retrain's
    row, * when the gap is above the noise floor."""
    cell = _num(stat.mean) + (f"{style.pm}{_num(stat.std)}" if n_seeds > 1 else "")
    if stat.attack_std is not None:
        cell += f" [{style.pm}{_num(stat.attack_std)}]"
    if stat.gap is None:
        return cell
    return f"{cell} {style.gap.format(_num(stat.gap) + ('*' if stat.above_noise else ''))}"


def _avg_gap_cell(s: MethodSummary, style: _Style) -> str:
    """``a.aa±s.ss`` (matched), ``a.aa (unmatched)``, ``0.00`` for Retrain, a dash without Retrain."""
    if s.avg_gap is None:
        return DASH
    if not s.matched:
        return f"{_num(s.avg_gap)} (unmatched)"
    if s.is_reference or s.n_seeds == 1:
        return _num(s.avg_gap)
    return f"{_num(s.avg_gap)}{style.pm}{_num(s.avg_gap_std)}"


def _minutes(x: float) -> str:
    """Two decimals, or two significant digits below 0.1 min (CPU-scale runs take seconds)."""
    if math.isnan(x) or x >= 0.1 or x == 0:
        return _num(x)
    return f"{x:.2g}"


def _rte_cell(s: MethodSummary, style: _Style) -> str:
    """``t.tt (r.rr×)``; ``n/a`` ratio without a Retrain time measured alike (the legend says why)."""
    ratio = "n/a" if s.rte_ratio is None else f"{s.rte_ratio:.2f}{style.times}"
    return f"{_minutes(s.rte_minutes)} ({ratio})"


def _label(s: MethodSummary, style: _Style) -> str:
    """Method label, with the counts of runs that did not finish ``done`` when some did."""
    name = _tex(s.method) if style.escape else s.method
    others = [f"{n} {status}" for status, n in s.status_counts.items() if status != "done"]
    return f"{name} ({', '.join(others)})" if s.seeds and others else name


def _with_avg_gap(summaries: Sequence[MethodSummary]) -> bool:
    return any(s.avg_gap is not None for s in summaries)


def _cells(s: MethodSummary, metrics: Sequence[str], style: _Style, tail: bool) -> list[str]:
    """All cells of one table row; a method without done runs shows its status in every result cell."""
    if not s.seeds:
        status = _tex(s.status) if style.escape else s.status
        return [_label(s, style), *[status] * len(metrics), *([status, DASH] if tail else [])]
    cells = [_label(s, style), *[_metric_cell(s.metrics[k], style, s.n_seeds) for k in metrics]]
    return cells + ([_avg_gap_cell(s, style), _rte_cell(s, style)] if tail else [])


def _metric_title(metric: str, mia: str) -> str:
    """Column title: ``MIA-Efficacy`` for the SalUn definition, ``MIA (<definition>)`` for other primary MIAs."""
    if metric == "mia":
        return "MIA-Efficacy" if mia == MIA_EFFICACY else f"MIA ({mia})"
    return _TITLES.get(metric, metric)


def _columns(summaries: Sequence[MethodSummary]) -> tuple[list[str], list[str], bool]:
    """(metric keys, column titles, whether the Avg.Gap and RTE columns are shown) shared by the renderers."""
    if not summaries:
        raise UnlearnlabError("No method summaries to render.")
    metrics = list(summaries[0].metric_keys or next((s.metrics for s in summaries if s.metrics), {}))
    tail = _with_avg_gap(summaries)
    mia = summaries[0].mia_definition
    titles = ["Method", *[_metric_title(k, mia) for k in metrics], *(["Avg.Gap ↓", "RTE (min)"] if tail else [])]
    return metrics, titles, tail


def to_markdown(summaries: Sequence[MethodSummary], header: str, notes: Sequence[str] = ()) -> str:
    """``header``, a blank line, a padded Markdown table and, below it, the ``notes`` (the legend) as a list."""
    metrics, titles, tail = _columns(summaries)
    body = [_cells(s, metrics, _PLAIN, tail) for s in summaries]
    widths = [max(len(line[i]) for line in [titles, *body]) for i in range(len(titles))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    legend_lines = ["", *(f"- {n}" for n in notes)] if notes else []
    return "\n".join([header, "", line(titles), rule, *map(line, body), *legend_lines]) + "\n"


def to_latex(summaries: Sequence[MethodSummary], header: str, notes: Sequence[str] = ()) -> str:
    """A booktabs ``table`` with ``header`` as caption, gaps in ``\\scriptsize`` and the legend under it."""
    metrics, titles, tail = _columns(summaries)
    titles = [_tex(t) for t in titles[: len(titles) - (2 if tail else 0)]]
    titles += ["Avg.Gap $\\downarrow$", "RTE (min)"] if tail else []
    body = [" & ".join(_cells(s, metrics, _LATEX, tail)) + r" \\" for s in summaries]
    legend_tex = [r"\par\smallskip{\footnotesize " + _tex(" ".join(notes)) + "}"] if notes else []
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(header)}}}",
        rf"\begin{{tabular}}{{l{'c' * (len(titles) - 1)}}}", r"\toprule", " & ".join(titles) + r" \\", r"\midrule",
        *body, r"\bottomrule", r"\end{tabular}", *legend_tex, r"\end{table}"]) + "\n"


CSV_COLUMNS = ("protocol", "method", "metric", "mean", "std", "gap", "n_seeds", "attack_std", "above_noise")


def _csv_num(x: float | None) -> str:
    """Full-precision number; empty for ``None`` or NaN."""
    return "" if x is None or math.isnan(x) else repr(float(x))


def _csv_records(s: MethodSummary, metrics: Sequence[str]) -> list[list[str]]:
    """Long-format records of one summary: its metrics (MIA named by definition), Avg.Gap, RTE and RTE ratio."""

    def rec(metric: str, mean: float | None, std: float | None = None, gap: float | None = None,
            attack: float | None = None, above: bool | None = None) -> list[str]:
        return [s.protocol, s.method, metric, _csv_num(mean), _csv_num(std), _csv_num(gap), str(s.n_seeds),
                _csv_num(attack), "" if above is None else str(above).lower()]

    records = []
    for k in metrics:
        st = s.metrics.get(k, MetricStat(math.nan, math.nan, None))
        records.append(rec(s.mia_definition if k == "mia" else k, st.mean, st.std, st.gap, st.attack_std,
                           st.above_noise))
    if s.avg_gap is not None or not s.seeds:
        records.append(rec("avg_gap_matched" if s.matched else "avg_gap_means", s.avg_gap, s.avg_gap_std))
    records.append(rec("rte_minutes", s.rte_minutes, s.rte_std))
    records.append(rec("rte_rel", s.rte_ratio))
    return records


def to_csv(summaries: Sequence[MethodSummary], include_header: bool = True) -> str:
    """Long-format CSV: one record per (method, metric) with columns :data:`CSV_COLUMNS`."""
    metrics, _, _ = _columns(summaries)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if include_header:
        writer.writerow(CSV_COLUMNS)
    for s in summaries:
        writer.writerows(_csv_records(s, metrics))
    return out.getvalue()


def to_rich_table(summaries: Sequence[MethodSummary], title: str) -> Table:
    """The Markdown table as a :class:`rich.table.Table` for the terminal."""
    metrics, titles, tail = _columns(summaries)
    table = Table(title=title)
    for i, name in enumerate(titles):
        table.add_column(name, justify="left" if i == 0 else "right")
    for s in summaries:
        table.add_row(*_cells(s, metrics, _PLAIN, tail))
    return table


def render_all(
    rows: Sequence[Row],
    fmt: Literal["markdown", "latex", "csv"] = "markdown",
    metrics: Sequence[str] = GAP_METRICS,
    ddof: int | Callable[[Sequence[Row]], int] = 1,
    extra_markdown: Callable[[Sequence[Row], int], str] | None = None,
) -> str:
    """Every (protocol, task key) group of ``rows`` as its own table: sections for Markdown/LaTeX, one CSV.

    ``ddof`` may be a function of a group's rows (a protocol's own std convention); ``extra_markdown(group,
    ddof)`` appends text under a group's Markdown table (e.g. a protocol's secondary tables).
    """
    groups = group_rows(rows)
    if not groups:
        raise UnlearnlabError("No result rows to report; run `unlearnlab run` first.")
    parts = []
    for i, group in enumerate(groups):
        group_ddof = ddof(group) if callable(ddof) else ddof
        summaries = summarize(group, metrics, group_ddof)
        notes = legend(group, summaries, group_ddof)
        if fmt == "csv":
            parts.append(to_csv(summaries, include_header=i == 0))
        elif fmt == "latex":
            parts.append(to_latex(summaries, header_line(group), notes))
        else:
            text = to_markdown(summaries, header_line(group), notes)
            extra = extra_markdown(group, group_ddof) if extra_markdown is not None else ""
            parts.append(text + (f"\n{extra}" if extra else ""))
    return ("" if fmt == "csv" else "\n").join(parts)


def write_reports(store: ResultStore, out_dir: str | Path,
                  render: Callable[[Sequence[Row], str], str] = render_all) -> str:
    """Write ``table.md``, ``table.csv`` and ``table.tex`` for all rows of ``store`` into ``out_dir``.

    Returns the Markdown text. Files are written atomically. ``render(rows, fmt)`` draws the tables.
    """
    rows = store.rows()
    out = Path(out_dir)
    markdown = render(rows, "markdown")
    atomic_write_text(out / "table.md", markdown)
    atomic_write_text(out / "table.csv", render(rows, "csv"))
    atomic_write_text(out / "table.tex", render(rows, "latex"))
    return markdown
