"""Paper-style result tables (evaluation spec §6) from results-store rows.

One table per (protocol, task key): Retrain first, then the methods in the order they were first run. Each cell
is "mean±std (gap)" with gap = |mean − Retrain mean|; Avg.Gap is matched over seeds (:func:`avg_gap_matched`) or,
when Retrain lacks some of a method's seeds, the gap of means marked "unmatched"; RTE is "minutes (× Retrain)".
Rows of different protocols, task keys or primary MIA definitions are never mixed in one table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from unlearnlab.bench.store import ResultStore
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.gap import GAP_METRICS, avg_gap_matched, avg_gap_means, mean_std
from unlearnlab.utils import atomic_write_text

Row = Mapping[str, Any]
REFERENCE = "retrain"
MIA_EFFICACY = "mia_efficacy_svc_conf"
DASH = "–"
_TITLES = {"ua": "UA", "ra": "RA", "ta": "TA"}


@dataclass(frozen=True)
class MetricStat:
    """Seed mean and std of one metric, and its gap to Retrain's mean (``None`` on Retrain's own row)."""

    mean: float
    std: float
    gap: float | None


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

    @property
    def n_seeds(self) -> int:
        """Number of ``done`` runs (seeds) behind the numbers."""
        return len(self.seeds)

    @property
    def status(self) -> str:
        """``"done"`` when some run finished, else the statuses present (e.g. ``"diverged"``)."""
        return "done" if self.seeds else "/".join(sorted(self.status_counts))


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


def _distinct(rows: Sequence[Row], get: Callable[[Row], Any]) -> list[Any]:
    """Distinct values of ``get(row)`` in first-seen order, skipping ``None``."""
    seen: dict[Any, None] = {}
    for row in rows:
        value = get(row)
        if value is not None:
            seen.setdefault(value, None)
    return list(seen)


def _single(rows: Sequence[Row], what: str, get: Callable[[Row], Any]) -> Any:
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
        _single(
            [r for r in rows if r["seed"] == seed], f"split hash for seed {seed}", lambda r: r["split_hash"]
        )


def primary_mia(rows: Sequence[Row]) -> str:
    """The primary MIA definition named by the rows' ``definitions["mia"]`` (``"unknown"`` if none)."""
    return _single(rows, "primary MIA definition", lambda r: r["definitions"].get("mia")) or "unknown"


def group_rows(rows: Sequence[Row]) -> list[list[Row]]:
    """Rows split by (protocol, task key), groups in first-seen order."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["protocol"], row["task_key"]), []).append(row)
    return list(groups.values())


def _method_groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows per table label (method name, plus the config hash when a method ran with several configs)."""
    configs = {
        m: _distinct([r for r in rows if r["method"] == m], lambda r: r["config_hash"])
        for m in _distinct(rows, lambda r: r["method"])
    }
    if len(configs.get(REFERENCE, [])) > 1:
        raise UnlearnlabError(
            f"{REFERENCE!r} ran with several configs ({', '.join(configs[REFERENCE])}); "
            "keep one Retrain config per table."
        )
    groups: dict[str, list[Row]] = {REFERENCE: []} if REFERENCE in configs else {}
    for row in rows:
        several = len(configs[row["method"]]) > 1
        label = f"{row['method']} [{row['config_hash'][:8]}]" if several else row["method"]
        groups.setdefault(label + _guarantee(row), []).append(row)
    return groups


def _guarantee(row: Row) -> str:
    """`` (ε=…, δ=…)`` for a row whose method shipped a certificate, `` (not certified: reproducible noise)`` for a
    run whose noise came from the run seed, else empty."""
    cert = (row.get("stats") or {}).get("certificate")
    if not cert:
        return ""
    if cert.get("certified") is False:
        return " (not certified: reproducible noise)"
    return f" (ε={cert['epsilon']:.3g}, δ={cert['delta']:.3g})"


def _status_counts(rows: Sequence[Row]) -> dict[str, int]:
    """How many runs have each status."""
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


def _device_types(rows: Sequence[Row]) -> set[str]:
    """Device types (``cpu``, ``cuda``, ...) the runs were timed on."""
    return {str(r["env"].get("device", "")).split(":")[0] for r in rows}


def _rte(done: Sequence[Row], ddof: int) -> tuple[float, float]:
    """RTE minutes (mean, std) over done runs; NaN when no run recorded it."""
    values = [float(r["stats"]["rte_minutes"]) for r in done if "rte_minutes" in r["stats"]]
    return mean_std(values, ddof=ddof) if values else (math.nan, math.nan)


def _rte_ratio(done: Sequence[Row], rte: float, ref_done: Sequence[Row], ref_rte: float) -> float | None:
    """T_method / T_retrain, or ``None`` when unavailable or timed on different device types."""
    same_device = len(_device_types(done)) == 1 and _device_types(done) == _device_types(ref_done)
    if not same_device or not ref_rte > 0 or math.isnan(rte):
        return None
    return rte / ref_rte


def _by_seed(done: Sequence[Row]) -> dict[int, Row]:
    """Done runs keyed by seed."""
    return {int(r["seed"]): r for r in done}


def _summarize_method(
    label: str, rows: Sequence[Row], ref_done: Sequence[Row], metrics: Sequence[str], ddof: int, mia: str
) -> MethodSummary:
    """Summary of one method against Retrain's done runs ``ref_done`` (empty: no gaps)."""
    is_ref = label == REFERENCE
    done = sorted((r for r in rows if r["status"] == "done"), key=lambda r: r["seed"])
    seeds = tuple(int(r["seed"]) for r in done)
    stats: dict[str, MetricStat] = {}
    avg_gap, avg_std, matched = None, math.nan, True
    if done:
        has_ref = bool(ref_done) and not is_ref
        ref_means = {k: mean_std(_metric_values(ref_done, k))[0] for k in metrics} if has_ref else {}
        for k in metrics:
            mean, std = mean_std(_metric_values(done, k), ddof=ddof)
            stats[k] = MetricStat(mean, std, abs(mean - ref_means[k]) if has_ref else None)
        if is_ref:
            avg_gap = 0.0
        elif has_ref:
            avg_gap, avg_std, matched = _avg_gap(done, ref_done, metrics, ddof)
    rte, rte_std = _rte(done, ddof)
    ref_rte = _rte(ref_done, ddof)[0]
    return MethodSummary(
        protocol=rows[0]["protocol"],
        method=label,
        is_reference=is_ref,
        seeds=seeds,
        status_counts=_status_counts(rows),
        mia_definition=mia,
        metrics=stats,
        avg_gap=avg_gap,
        avg_gap_std=avg_std,
        matched=matched,
        rte_minutes=rte,
        rte_std=rte_std,
        rte_ratio=_rte_ratio(done, rte, ref_done, ref_rte) if done and ref_done else None,
    )


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


def summarize(
    rows: Sequence[Row], metrics: Sequence[str] = GAP_METRICS, ddof: int = 1
) -> list[MethodSummary]:
    """Table rows for the runs of ONE protocol and task key: Retrain first, then methods in first-seen order.

    Only ``done`` runs enter the numbers; a method without any shows its statuses instead. Avg.Gap averages
    the gaps over ``metrics`` (the spec's set M by default). Raises :class:`UnlearnlabError` (a ``ValueError``)
    when the rows mix protocols, task keys, primary MIA definitions or split hashes of one seed.
    """
    if not rows:
        raise UnlearnlabError("No result rows to summarise; run `unlearnlab run` first.")
    _single(rows, "protocol", lambda r: r["protocol"])
    _single(rows, "task key", lambda r: r["task_key"])
    mia = primary_mia(rows)
    _check_splits(rows)
    groups = _method_groups(rows)
    ref_done = [r for r in groups.get(REFERENCE, []) if r["status"] == "done"]
    return [_summarize_method(label, group, ref_done, metrics, ddof, mia) for label, group in groups.items()]


def _seed_range(seeds: Sequence[int]) -> str:
    """``"1–5"`` for a contiguous range, ``"1"`` for one seed, else ``"1, 3, 7"``."""
    seeds = sorted(set(seeds))
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}{DASH}{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _split_label(rows: Sequence[Row]) -> str:
    """First 8 hex digits of the split hash, or of a digest over the (seed, split hash) pairs when they differ."""
    pairs = sorted({(int(r["seed"]), r["split_hash"]) for r in rows})
    if len({h for _, h in pairs}) == 1:
        return pairs[0][1][:8]
    return hashlib.sha256("\n".join(f"{s}:{h}" for s, h in pairs).encode()).hexdigest()[:8]


def header_line(rows: Sequence[Row]) -> str:
    """``Protocol <name> · split <hash8> · MIA = <definition> · seeds a–b · <device>`` for one table's rows."""
    devices = _distinct(rows, lambda r: r["env"].get("device_name") or r["env"].get("device"))
    return (
        f"Protocol {_single(rows, 'protocol', lambda r: r['protocol'])} · split {_split_label(rows)} · "
        f"MIA = {primary_mia(rows)} · seeds {_seed_range([int(r['seed']) for r in rows])} · "
        f"{', '.join(devices) or 'unknown device'}"
    )


def _num(x: float) -> str:
    """Two decimals; NaN as a dash."""
    return DASH if math.isnan(x) else f"{x:.2f}"


def _metric_cell(stat: MetricStat, style: _Style) -> str:
    """``m.mm±s.ss (g.gg)``, without the gap on Retrain's row."""
    cell = f"{_num(stat.mean)}{style.pm}{_num(stat.std)}"
    return cell if stat.gap is None else f"{cell} {style.gap.format(_num(stat.gap))}"


def _avg_gap_cell(s: MethodSummary, style: _Style) -> str:
    """``a.aa±s.ss`` (matched), ``a.aa (unmatched)``, ``0.00`` for Retrain, a dash without Retrain."""
    if s.avg_gap is None:
        return DASH
    if s.is_reference:
        return _num(s.avg_gap)
    if not s.matched:
        return f"{_num(s.avg_gap)} (unmatched)"
    return f"{_num(s.avg_gap)}{style.pm}{_num(s.avg_gap_std)}"


def _minutes(x: float) -> str:
    """Two decimals, or two significant digits below 0.1 min (CPU-scale runs take seconds)."""
    if math.isnan(x) or x >= 0.1 or x == 0:
        return _num(x)
    return f"{x:.2g}"


def _rte_cell(s: MethodSummary, style: _Style) -> str:
    """``t.tt (r.rr×)``; ``n/a`` ratio without a comparable Retrain time."""
    ratio = "n/a" if s.rte_ratio is None else f"{s.rte_ratio:.2f}{style.times}"
    return f"{_minutes(s.rte_minutes)} ({ratio})"


def _label(s: MethodSummary, style: _Style) -> str:
    """Method name, with the counts of runs that did not finish ``done`` when some did."""
    name = _tex(s.method) if style.escape else s.method
    others = [f"{n} {status}" for status, n in s.status_counts.items() if status != "done"]
    return f"{name} ({', '.join(others)})" if s.seeds and others else name


def _cells(s: MethodSummary, metrics: Sequence[str], style: _Style) -> list[str]:
    """All cells of one table row; a method without done runs shows its status in every result cell."""
    if not s.seeds:
        status = _tex(s.status) if style.escape else s.status
        return [_label(s, style), *[status] * (len(metrics) + 1), DASH]
    return [
        _label(s, style),
        *[_metric_cell(s.metrics[k], style) for k in metrics],
        _avg_gap_cell(s, style),
        _rte_cell(s, style),
    ]


def _metric_title(metric: str, mia: str) -> str:
    """Column title: ``MIA-Efficacy`` for the SalUn definition, ``MIA (<definition>)`` for other MIAs."""
    if metric == "mia":
        return "MIA-Efficacy" if mia == MIA_EFFICACY else f"MIA ({mia})"
    return _TITLES.get(metric, metric)


def _columns(summaries: Sequence[MethodSummary]) -> tuple[list[str], list[str]]:
    """(metric keys, column titles) shared by the renderers."""
    if not summaries:
        raise UnlearnlabError("No method summaries to render.")
    metrics = list(next((s.metrics for s in summaries if s.metrics), {}))
    mia = summaries[0].mia_definition
    titles = ["Method", *[_metric_title(k, mia) for k in metrics], "Avg.Gap ↓", "RTE (min)"]
    return metrics, titles


def to_markdown(summaries: Sequence[MethodSummary], header: str) -> str:
    """``header``, a blank line and a padded Markdown table."""
    metrics, titles = _columns(summaries)
    body = [_cells(s, metrics, _PLAIN) for s in summaries]
    widths = [max(len(line[i]) for line in [titles, *body]) for i in range(len(titles))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([header, "", line(titles), rule, *map(line, body)]) + "\n"


def to_latex(summaries: Sequence[MethodSummary], header: str) -> str:
    """A booktabs ``table`` with ``header`` as caption; gaps in ``\\scriptsize``."""
    metrics, titles = _columns(summaries)
    titles = [_tex(t) for t in titles[:-2]] + ["Avg.Gap $\\downarrow$", "RTE (min)"]
    body = [" & ".join(_cells(s, metrics, _LATEX)) + r" \\" for s in summaries]
    return (
        "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering",
                rf"\caption{{{_tex(header)}}}",
                rf"\begin{{tabular}}{{l{'c' * (len(titles) - 1)}}}",
                r"\toprule",
                " & ".join(titles) + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
            ]
        )
        + "\n"
    )


CSV_COLUMNS = ("protocol", "method", "metric", "mean", "std", "gap", "n_seeds")


def _csv_num(x: float | None) -> str:
    """Full-precision number; empty for ``None`` or NaN."""
    return "" if x is None or math.isnan(x) else repr(float(x))


def _csv_records(s: MethodSummary, metrics: Sequence[str]) -> list[list[str]]:
    """Long-format records of one summary: its metrics (MIA named by definition), Avg.Gap, RTE and RTE ratio."""

    def rec(metric: str, mean: float | None, std: float | None = None, gap: float | None = None) -> list[str]:
        return [s.protocol, s.method, metric, _csv_num(mean), _csv_num(std), _csv_num(gap), str(s.n_seeds)]

    records = []
    for k in metrics:
        stat = s.metrics.get(k, MetricStat(math.nan, math.nan, None))
        records.append(rec(s.mia_definition if k == "mia" else k, stat.mean, stat.std, stat.gap))
    gap_name = "avg_gap_matched" if s.matched else "avg_gap_means"
    records.append(rec(gap_name, s.avg_gap, s.avg_gap_std))
    records.append(rec("rte_minutes", s.rte_minutes, s.rte_std))
    records.append(rec("rte_rel", s.rte_ratio))
    return records


def to_csv(summaries: Sequence[MethodSummary], include_header: bool = True) -> str:
    """Long-format CSV: one record per (method, metric) with columns :data:`CSV_COLUMNS`."""
    metrics, _ = _columns(summaries)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if include_header:
        writer.writerow(CSV_COLUMNS)
    for s in summaries:
        writer.writerows(_csv_records(s, metrics))
    return out.getvalue()


def to_rich_table(summaries: Sequence[MethodSummary], title: str) -> Table:
    """The Markdown table as a :class:`rich.table.Table` for the terminal."""
    metrics, titles = _columns(summaries)
    table = Table(title=title)
    for i, name in enumerate(titles):
        table.add_column(name, justify="left" if i == 0 else "right")
    for s in summaries:
        table.add_row(*_cells(s, metrics, _PLAIN))
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
        if fmt == "csv":
            parts.append(to_csv(summaries, include_header=i == 0))
        elif fmt == "latex":
            parts.append(to_latex(summaries, header_line(group)))
        else:
            text = to_markdown(summaries, header_line(group))
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
