"""What a TOFU-format protocol run shows, rebuilt from its stored rows alone (docs/llm.md, "Running the
protocols"): the validity gates, the noise floor, the Markdown tables and ``generations.md``.

* :func:`stored_report` turns a ``done`` row back into the :class:`TofuReport` the gates and forget quality read
  (metrics, forget truth ratios, Min-K AUC), so a resumed run or ``unlearnlab report`` needs no model;
* :func:`partner` pairs each seed with the retain model it is compared with for the noise floor (the next seed of
  the run, cyclically; ``s + 1`` for a one-seed run);
* :func:`run_gates` checks each seed (target, retain model, partner retain model; docs/llm.md, "Validity gates");
* :func:`render` is the table: one line per model (target, retain as the noise floor, each method), mean ± std
  over the seeds (ddof 1) of forget quality, model utility, forget ROUGE-L, forget truth ratio, privleak and RTE
  (unlearning seconds, or the retain model's stage-2 training, in minutes and as a multiple of the retain
  model's); DualOptim's offline summaries under it; the gates under those, and "INVALID RUN" when one failed;
* :func:`write_generations` saves five forget questions with the gold answer and each model's greedy answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearnlab.language.evaluation import TofuReport
from unlearnlab.language.gates import GateResult, validity_gates
from unlearnlab.language.metrics import forget_quality, privleak
from unlearnlab.utils import atomic_write_text

#: row names that are not unlearning methods
TARGET, RETAIN = "target", "retain"
#: main table columns: metric → (title, format)
COLUMNS: dict[str, tuple[str, str]] = {
    "forget_quality": ("forget quality ↑", ".3g"), "model_utility": ("model utility ↑", ".3f"),
    "forget_Q_A_ROUGE": ("forget ROUGE-L", ".3f"), "forget_truth_ratio": ("forget truth ratio", ".3f"),
    "privleak": ("privleak (→ 0)", ".1f"),
}
#: DualOptim's summaries without their model-based terms (docs/llm.md, "Metrics")
DUALOPTIM_COLUMNS: dict[str, tuple[str, str]] = {
    "fe_dualoptim_offline": ("forget efficacy (offline) ↑", ".3f"),
    "mu_dualoptim_offline": ("model utility (offline) ↑", ".3f"),
    "extraction_strength": ("extraction strength ↓", ".3f"),
}
DASH = "–"
GENERATIONS = "generations.md"


def partner(seed: int, seeds: Sequence[int]) -> int:
    """The seed whose retain model ``seed``'s retain model is compared with (module docstring)."""
    ordered = sorted(set(int(s) for s in seeds))
    if len(ordered) == 1:
        return ordered[0] + 1
    return ordered[(ordered.index(int(seed)) + 1) % len(ordered)]


def retain_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """The seeds whose retain model a run needs: its own and their partners."""
    return tuple(dict.fromkeys([*seeds, *(partner(s, seeds) for s in seeds)]))


def stored_report(row: dict[str, Any]) -> TofuReport:
    """The report a ``done`` row recorded: metrics, definitions, forget truth ratios, Min-K AUC, samples."""
    stats = row["stats"]
    return TofuReport(dict(row["metrics"]), dict(row["definitions"]),
                      forget_truth_ratios=[float(x) for x in stats.get("forget_truth_ratios", [])],
                      mink_auc=float(stats.get("mink_auc", 0.5)), samples=list(stats.get("samples", [])))


def _done(rows: Sequence[dict[str, Any]], method: str) -> dict[int, dict[str, Any]]:
    return {int(r["seed"]): r for r in rows if r["method"] == method and r["status"] == "done"}


def run_gates(rows: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[int, GateResult]:
    """Seed → gates, for every seed with a ``done`` target row (checks whose retain rows are missing are listed
    as not measured). A run of the user's target (one target row, seed 1) is checked once."""
    targets, retains = _done(rows, TARGET), _done(rows, RETAIN)
    out = {}
    for seed, row in sorted(targets.items()):
        retain = retains.get(seed)
        other = retains.get(partner(seed, seeds)) if len(retains) > 1 else None
        out[seed] = validity_gates(stored_report(row), None if retain is None else stored_report(retain),
                                   None if other is None else stored_report(other))
    return out


def noise_floor(rows: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[int, dict[str, float]]:
    """Seed → forget quality and privleak of the partner's retain model against the retain model of ``seed``:
    what an exactly unlearned model scores (seeds whose two retain rows are done)."""
    retains = _done(rows, RETAIN)
    out = {}
    for seed in seeds:
        a, b = retains.get(int(seed)), retains.get(partner(seed, seeds))
        if a is None or b is None or a is b:
            continue
        ra, rb = stored_report(a), stored_report(b)
        out[int(seed)] = {"forget_quality": forget_quality(rb.forget_truth_ratios, ra.forget_truth_ratios),
                          "privleak": privleak(rb.mink_auc, ra.mink_auc)}
    return out


def _cell(values: Sequence[float], fmt: str) -> str:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return DASH
    a = np.asarray(values)
    mean = format(float(a.mean()), fmt)
    return mean if len(a) == 1 else f"{mean} ± {format(float(a.std(ddof=1)), fmt)}"


def _count(group: Sequence[dict[str, Any]]) -> str:
    done = sum(r["status"] == "done" for r in group)
    other = [f"{sum(r['status'] == s for r in group)} {s}" for s in ("diverged", "failed", "running")
             if any(r["status"] == s for r in group)]
    return f"{done}" + (f" ({', '.join(other)})" if other else "")


def _minutes(seconds: Sequence[float | None], reference: float | None) -> str:
    values = [s for s in seconds if s]
    if not values:
        return DASH
    mean = float(np.mean(values))
    ratio = f" (×{mean / reference:.2f})" if reference else ""
    return f"{mean / 60:.2f}{ratio}"


def changes_text(changes: dict[str, dict[str, Any]]) -> str:
    """``group.key=value, …`` of a run's changes to the protocol's settings."""
    return ", ".join(f"{group}.{key}={value}" for group, values in changes.items() for key, value in values.items())


def _settings_line(settings: dict[str, Any], seeds: Sequence[int]) -> str:
    seed_text = ", ".join(map(str, seeds))
    if settings["tier"] == "paper":
        return (f"{settings['data']}; the user's target checkpoint (fingerprint "
                f"{settings['checkpoints'].get('target', '?')}); profile {settings['profile']} (DualOptim's recipe); "
                f"seeds {seed_text}.")
    size, model = settings["size"], settings["model"]
    return (f"{size['name']} ({size['authors']} authors × {size['qa_per_author']} QA, data seed "
            f"{settings['data_seed']}), {settings['forget']}; {model['arch']} LM (hidden {model['hidden']}, "
            f"{model['layers']} layers), stage 1 {settings['stage1']['epochs']} / stage 2 "
            f"{settings['stage2']['epochs']} epochs; profile {settings['profile']}; seeds {seed_text}.")


def _groups(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["method"], []).append(r)
    return groups


def _lines(rows: Sequence[dict[str, Any]], methods: Sequence[str], seeds: Sequence[int],
           columns: dict[str, tuple[str, str]], rte: bool) -> list[str]:
    """One table: target, retain (noise floor), each method."""
    groups = _groups(rows)
    floor = noise_floor(rows, seeds)
    paper = rows[0]["config"]["tier"] == "paper"  # the user's one retain model (seed 1) serves every seed
    retains = [r for r in groups.get(RETAIN, []) if paper or int(r["seed"]) in {int(s) for s in seeds}]
    retain_seconds = [r["stats"].get("seconds") for r in retains if r["status"] == "done"]
    reference = float(np.mean(retain_seconds)) if retain_seconds and all(retain_seconds) else None
    titles = ["model", "n", *(title for title, _ in columns.values()), *(["RTE min (× retain)"] if rte else [])]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for name in (TARGET, RETAIN, *methods):
        group = retains if name == RETAIN else groups.get(name, [])
        if not group:
            continue
        done = [r for r in group if r["status"] == "done"]
        cells = []
        for key, (_, fmt) in columns.items():
            if name == RETAIN and key in ("forget_quality", "privleak"):
                values = [f[key] for f in floor.values()]
            else:
                values = [r["metrics"].get(key) for r in done]
            cells.append(_cell(values, fmt))
        label = "retain (noise floor)" if name == RETAIN else name
        seconds = _minutes([r["stats"].get("seconds") for r in done], None if name == RETAIN else reference)
        time_cell = [DASH if name == TARGET else seconds] if rte else []
        lines.append("| " + " | ".join([label, _count(group), *cells, *time_cell]) + " |")
    return lines


def _certified_note(rows: Sequence[dict[str, Any]]) -> str:
    certs = [r["stats"]["certificate"] for r in rows if r["status"] == "done" and r["stats"].get("certificate")]
    if not certs:
        return ""
    eps = sorted({round(float(c["epsilon"]), 4) for c in certs})
    certified = all(c.get("certified") for c in certs)
    word = "certified" if certified else "**not certified** (its noise is drawn from the run seed, so it reproduces)"
    return (f"certified-gradclip is an exploratory row (docs/llm.md): its (ε, δ) guarantee, ε = "
            f"{', '.join(map(str, eps))}, δ = {certs[0]['delta']:g}, is {word}.")


def render(rows: Sequence[dict[str, Any]], label: str, methods: Sequence[str], seeds: Sequence[int]) -> str:
    """The Markdown tables of one run (module docstring); ``methods`` gives the order of the method lines."""
    if not rows:
        return f"### {label}\n\nNo rows yet.\n"
    settings = rows[0]["config"]
    gates = run_gates(rows, seeds)
    invalid = any(not g.passed for g in gates.values())
    lines = [f"### {label} · {settings['forget']}", ""]
    if invalid:
        lines += ["**INVALID RUN: a validity gate failed (see below); these numbers do not measure forgetting.**", ""]
    lines.append(_settings_line(settings, seeds))
    changes = changes_text(settings.get("changes") or {})
    if changes:
        lines += ["", f"**Changed from the protocol:** {changes} — these numbers are not the protocol's; compare "
                      "them only with runs of the same changes."]
    lines += ["", *_lines(rows, methods, seeds, COLUMNS, rte=True), "",
              "Mean ± std over seeds (ddof 1). Forget quality: KS p-value of the model's forget truth ratios against "
              "the retain model of the same seed; the retain line is the noise floor (each seed's retain model "
              "against another seed's retain model) and the other columns there are the retain model's own. RTE = "
              "unlearning time (retain line: its stage-2 training). Definitions: docs/llm.md, \"Metrics\".", "",
              "DualOptim's summaries without their cosine-similarity and entailment terms (not comparable with the "
              "paper's numbers; comparable across these rows):", "",
              *_lines(rows, methods, seeds, DUALOPTIM_COLUMNS, rte=False)]
    note = _certified_note(rows)
    if note:
        lines += ["", note]
    if not gates:
        lines += ["", "Validity gates: not measured yet (they need the target's and the retain model's rows)."]
    else:
        lines += ["", "Validity gates:", ""]
        for seed, result in gates.items():
            lines += [f"- seed {seed}: {line}" for line in result.lines()]
        lines += ["", "**INVALID RUN**" if invalid else "No gate failed: the run is valid as far as it was checked."]
    return "\n".join(lines) + "\n"


def write_generations(out: Path, rows: Sequence[dict[str, Any]], methods: Sequence[str], seeds: Sequence[int]
                      ) -> Path | None:
    """``generations.md``: each of the target's sampled forget questions with the gold answer and the greedy
    answer of the target, the retain model and every method (their first done seed); None without a target row."""
    groups = {name: sorted((r for r in rows if r["method"] == name and r["status"] == "done"),
                           key=lambda r: r["seed"]) for name in (TARGET, RETAIN, *methods)}
    if not groups[TARGET]:
        return None
    samples = {name: group[0]["stats"].get("samples", []) for name, group in groups.items() if group}
    lines = ["# Forget questions before and after unlearning", "",
             "Greedy answers (first seed each model has) to forget questions: the target knows them, the retain "
             "model never saw them.", ""]
    for i, sample in enumerate(samples[TARGET]):
        lines += [f"## {i + 1}. {sample['question']}", "", f"- **gold**: {sample['answer']}"]
        for name, items in samples.items():
            if i < len(items):
                lines.append(f"- **{name}**: {items[i]['generation']}")
        lines.append("")
    path = out / GENERATIONS
    atomic_write_text(path, "\n".join(lines))
    return path
