"""What a ``ddpm-<tier>-class<c>`` run shows, rebuilt from its stored rows alone (docs/generation.md, "Running the
protocols"): the validity gates, the Markdown table, each row's sample files and the comparison figure.

* :func:`stored_evaluation` turns a ``done`` row back into the :class:`GenerationEvaluation` the gates and gaps
  read (metrics and per-class recognition), so a resumed run or ``unlearnlab report`` needs no model;
* :func:`run_gates` checks the original against every Retrain seed (one ``retrain_ua`` gate per seed);
* :func:`render` is the table: one line per model (original, Retrain, each method), mean ± std over the seeds
  (ddof 1) of every metric, the per-seed gaps to Retrain averaged, RTE (unlearning or training plus the
  evaluation's sampling) in minutes and as a multiple of Retrain's; the evaluation classifier's test accuracy,
  the settings and any change the run made to them above it; the gates under it, and "INVALID RUN" when one
  failed;
* :func:`write_samples` saves a row's samples as ``samples/<method>-seed<s>.png`` (a row per class, the forgotten
  one marked) and the images themselves (uint8 ``.npy``, checksummed) for :func:`write_comparison`.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnlab.checksums import DamagedFileError, read_checked, write_checked
from unlearnlab.generation.evaluation import GateReport, GenerationEvaluation, validity_gates
from unlearnlab.generation.pictures import save_comparison, save_sample_grid

SAMPLES = "samples"
#: row names that are not unlearning methods
ORIGINAL, RETRAIN = "original", "retrain"
#: class names shown beside the sample grids (the class index otherwise)
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
#: table columns: metric → (title, digits)
COLUMNS: dict[str, tuple[str, int]] = {
    "ua": ("UA ↑ (%)", 1), "p_forget": ("p(c)", 3), "entropy_forget": ("H(c)", 3), "fidelity": ("fidelity (%)", 1),
    "fd_clf": ("fd_clf", 3), "fd_clf_floor": ("floor", 3), "kid_clf": ("kid_clf", 3), "ua_gap": ("UA gap", 1),
    "fd_gap": ("FD gap", 3), "avg_gap": ("Avg.Gap ↓", 2),
}
DASH = "–"


def file_stem(method: str, seed: int) -> str:
    """``<method>-seed<s>`` with every character outside ``[A-Za-z0-9_.+-]`` replaced by ``_`` (``ddpm/salun`` →
    ``ddpm_salun``): a file name on every system."""
    return f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', method)}-seed{seed}"


def class_names(dataset: str) -> tuple[str, ...] | None:
    """Names of ``dataset``'s classes (``fashion-mnist@14`` → Fashion-MNIST's), or None."""
    return CLASS_NAMES.get(dataset.split("@")[0])


def write_samples(out: Path, method: str, seed: int, grid: torch.Tensor, forget_class: int, title: str,
                  dataset: str) -> dict[str, str]:
    """Save ``grid`` ([C, k, ch, H, W] in [0, 1]) as ``samples/<stem>.png`` and ``samples/<stem>.npy`` (uint8,
    checksummed); returns the paths relative to ``out`` and the array file's SHA-256 (stored in the row)."""
    stem = file_stem(method, seed)
    png = save_sample_grid(grid, out / SAMPLES / f"{stem}.png", forget_class, title, class_names(dataset))
    pixels = (grid.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    np.save(buf, pixels, allow_pickle=False)
    digest = write_checked(out / SAMPLES / f"{stem}.npy", buf.getvalue())
    return {"png": str(png.relative_to(out)), "grid": f"{SAMPLES}/{stem}.npy", "grid_sha256": digest}


def read_grid(out: Path, samples: dict[str, str]) -> torch.Tensor | None:
    """A row's saved images in [0, 1], verified against the digest in its row; None when missing or damaged."""
    try:
        data = read_checked(out / samples["grid"], samples["grid_sha256"])
        pixels = np.load(io.BytesIO(data), allow_pickle=False)
    except (DamagedFileError, KeyError, ValueError, OSError):
        return None
    return torch.from_numpy(pixels).float() / 255.0


def stored_evaluation(row: dict[str, Any]) -> GenerationEvaluation:
    """The evaluation a ``done`` row recorded: metrics with their definitions and per-class recognition."""
    stats = row["stats"]
    return GenerationEvaluation(dict(row["metrics"]), dict(row["definitions"]), dict(stats.get("settings", {})),
                                {int(k): float(v) for k, v in stats.get("per_class", {}).items()})


def gates_of(original: GenerationEvaluation, retrain: GenerationEvaluation, tier: dict[str, Any]) -> GateReport:
    """:func:`validity_gates` with the thresholds recorded in a row's tier settings."""
    return validity_gates(original, retrain, tier["recognition_gate"], fd_factor=tier["fd_factor_gate"])


def run_gates(rows: Sequence[dict[str, Any]]) -> GateReport | None:
    """The gates of a run: the original's (recognition, fd_clf) once and Retrain's UA for every seed with a
    ``done`` Retrain row; None without a ``done`` original and Retrain."""
    done = [r for r in rows if r["status"] == "done"]
    original = next((r for r in done if r["method"] == ORIGINAL), None)
    retrains = sorted((r for r in done if r["method"] == RETRAIN), key=lambda r: r["seed"])
    if original is None or not retrains:
        return None
    ev_original = stored_evaluation(original)
    tier = original["config"]["tier"]
    gates = []
    for r in retrains:
        for gate in gates_of(ev_original, stored_evaluation(r), tier).gates:
            if gate.name == "retrain_ua":
                gates.append(dataclasses.replace(gate, name=f"retrain_ua (seed {r['seed']})"))
            elif r is retrains[0]:
                gates.append(gate)
    return GateReport(gates)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return DASH
    mean, std = _mean_std(values)
    if not math.isfinite(mean):
        return DASH
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _count(group: list[dict[str, Any]]) -> str:
    done = sum(r["status"] == "done" for r in group)
    other = [f"{sum(r['status'] == s for r in group)} {s}" for s in ("diverged", "failed", "running")
             if any(r["status"] == s for r in group)]
    return f"{done}" + (f" ({', '.join(other)})" if other else "")


def _rte(group: list[dict[str, Any]], reference: float | None) -> str:
    seconds = [r["stats"].get("rte_seconds") for r in group if r["status"] == "done"]
    seconds = [s for s in seconds if s]
    if not seconds:
        return DASH
    minutes = float(np.mean(seconds)) / 60.0
    ratio = f" (×{minutes * 60.0 / reference:.2f})" if reference else ""
    return f"{minutes:.2f}{ratio}"


def _settings_line(tier: dict[str, Any], seeds: Sequence[int]) -> str:
    s = tier["sampler"]
    return (f"Model {tier['model']}, T = {tier['timesteps']}, originals/retrains {tier['recipe']['epochs']} epochs; "
            f"DDIM {s['steps']} steps, η = {s['eta']:g}, guidance w = {s['guidance']:g}; {tier['n_forget']} "
            f"samples of the forgotten class, {tier['n_per_class']} per retained class; seeds "
            f"{', '.join(map(str, seeds))}.")


def changes_text(changes: dict[str, dict[str, Any]]) -> str:
    """``group.key=value, …`` of a run's changes to the protocol's settings."""
    return ", ".join(f"{group}.{key}={value}" for group, values in changes.items() for key, value in values.items())


def _changes_line(changes: dict[str, dict[str, Any]]) -> str:
    text = changes_text(changes)
    return (f"**Changed from the protocol:** {text} — these numbers are not the protocol's; compare them only with "
            "runs of the same changes.") if text else ""


def render(rows: Sequence[dict[str, Any]], label: str, methods: Sequence[str], seeds: Sequence[int]) -> str:
    """The Markdown table of one run (module docstring); ``methods`` gives the order of the method lines."""
    if not rows:
        return f"### {label}\n\nNo rows yet.\n"
    first = rows[0]["config"]
    tier, c = first["tier"], first["forget_class"]
    gates = run_gates(rows)
    invalid = gates is not None and not gates.passed
    classifier = next((r["stats"]["classifier"] for r in rows if r["status"] == "done"), None)
    lines = [f"### {label} · forget class {c} · {tier['dataset']} ({tier['tier']} tier)", ""]
    if invalid:
        lines += ["**INVALID RUN: a validity gate failed (see below); these numbers do not measure forgetting.**", ""]
    if classifier is not None:
        lines.append(f"Evaluation classifier: small CNN trained on every class of {classifier['dataset']}, test "
                     f"accuracy {classifier['test_accuracy']:.1f} %. fd_clf and kid_clf are measured in its "
                     "features (not FID/KID); floor = real-vs-real fd_clf.")
    lines.append(_settings_line(tier, seeds))
    changes = _changes_line({g: v for r in rows for g, v in (r["config"].get("changes") or {}).items()})
    if changes:
        lines += ["", changes]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["method"], []).append(r)
    reference = [r["stats"].get("rte_seconds") for r in groups.get(RETRAIN, []) if r["status"] == "done"]
    ref = float(np.mean(reference)) if reference and all(reference) else None
    titles = ["method", "n", *(title for title, _ in COLUMNS.values()), "RTE min (× Retrain)"]
    lines += ["", "| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for name in (ORIGINAL, RETRAIN, *methods):
        group = groups.get(name, [])
        if not group:
            continue
        done = [r for r in group if r["status"] == "done"]
        cells = [_cell([r["metrics"][k] for r in done if r["metrics"].get(k) is not None], digits)
                 for k, (_, digits) in COLUMNS.items()]
        rte = DASH if name == ORIGINAL else _rte(group, None if name == RETRAIN else ref)
        lines.append("| " + " | ".join([name, _count(group), *cells, rte]) + " |")
    lines += ["", "Mean ± std over seeds (ddof 1); gaps are to Retrain of the same seed, then averaged; RTE = "
              "unlearning (Retrain: training) plus the evaluation's sampling. Definitions: docs/generation.md, "
              "\"Metrics\"."]
    if gates is None:
        lines += ["", "Validity gates: not measured yet (they need the original's and a Retrain's evaluation)."]
    else:
        lines += ["", "Validity gates:", "", *(f"- {line}" for line in gates.lines()), "",
                  "**INVALID RUN**" if invalid else "All gates passed: the run is valid."]
    return "\n".join(lines) + "\n"


def write_comparison(out: Path, rows: Sequence[dict[str, Any]], methods: Sequence[str], title: str) -> Path | None:
    """``comparison.png``: the original, Retrain and each method side by side (the first seed each has samples
    of); None when no row has readable samples."""
    grids: dict[str, torch.Tensor] = {}
    for name in (ORIGINAL, RETRAIN, *methods):
        for r in sorted((r for r in rows if r["method"] == name and r["status"] == "done"), key=lambda r: r["seed"]):
            grid = read_grid(out, r["stats"].get("samples") or {})
            if grid is not None:
                grids[name if name in (ORIGINAL, RETRAIN) else name.removeprefix("ddpm/")] = grid
                break
    if not grids:
        return None
    first = rows[0]["config"]
    return save_comparison(grids, out / "comparison.png", first["forget_class"], title,
                           class_names(first["tier"]["dataset"]))
