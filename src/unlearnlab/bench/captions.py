"""What a reader needs around a result table: a caption in words, a legend, and row labels (docs/protocols.md).

* :func:`caption`: protocol (or custom grid), dataset, model, forget set, seeds, full or ``--quick`` size, the
  primary MIA, the device and the split — from the rows and, for a registered protocol, its definition.
* :func:`legend`: what the parentheses, ±, brackets and marks of *this* table mean (only the ones it uses).
* :func:`method_labels`: a row label per run — the method name; when one method ran with several settings, the
  settings that differ (``salun (lr=0.01)``), never a hash unless nothing else tells them apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from unlearnlab.bench.plan import NOISE_FLOOR
from unlearnlab.data.forget import ForgetSpec
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocols import protocol_of_label
from unlearnlab.training import Recipe

Row = Mapping[str, Any]
DASH = "–"
#: the label of the noise-floor row
NOISE_FLOOR_LABEL = "retrain (independent seeds)"
#: the task key of a plain ``unlearnlab run`` (the smoke demo)
SMOKE_TASK_KEY = f"digits|mlp|random:0.1|recipe={Recipe().hash}|default"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _guarantee(row: Row) -> str:
    """`` (ε=…, δ=…)`` for a row whose method shipped a certificate, `` (not certified: reproducible noise)`` for a
    run whose noise came from the run seed, else empty."""
    cert = (row.get("stats") or {}).get("certificate")
    if not cert:
        return ""
    if cert.get("certified") is False:
        return " (not certified: reproducible noise)"
    return f" (ε={cert['epsilon']:.3g}, δ={cert['delta']:.3g})"


def _differing(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """config hash → ``k=v, …`` over the hyperparameters whose values differ between the configs; a top-level
    config key (model, primary MIA) when no hyperparameter differs; the short hash as the last resort."""
    for part in ("hparams", None):
        views = {h: (c.get("hparams") or {}) if part else {k: v for k, v in c.items() if k != "hparams"}
                 for h, c in configs.items()}
        keys = sorted({k for v in views.values() for k in v})
        differ = [k for k in keys if len({repr(v.get(k, DASH)) for v in views.values()}) > 1]
        if differ:
            return {h: ", ".join(f"{k}={_value(v.get(k, DASH))}" for k in differ) for h, v in views.items()}
    return {h: f"config {h[:8]}" for h in configs}


def display_name(method: str) -> str:
    """The row name of a method (the noise floor gets words, every other method its registry name)."""
    return NOISE_FLOOR_LABEL if method == NOISE_FLOOR else method


def method_labels(rows: Sequence[Row]) -> dict[str, str]:
    """run key → row label: the method's name, its differing settings when it ran with several configs, and a
    certified method's guarantee."""
    configs: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        configs.setdefault(r["method"], {})[r["config_hash"]] = r.get("config") or {}
    settings = {m: _differing(c) for m, c in configs.items() if len(c) > 1}
    labels = {}
    for r in rows:
        name = display_name(r["method"])
        if r["method"] in settings:
            name += f" ({settings[r['method']][r['config_hash']]})"
        labels[r["run_key"]] = name + _guarantee(r)
    return labels


def seed_range(seeds: Sequence[int]) -> str:
    """``"1–5"`` for a contiguous range, ``"1"`` for one seed, else ``"1, 3, 7"``."""
    seeds = sorted(set(seeds))
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}{DASH}{seeds[-1]}"
    return ", ".join(map(str, seeds))


def split_label(rows: Sequence[Row]) -> str:
    """First 8 hex digits of the split hash, or of a digest over the (seed, split hash) pairs when they differ."""
    pairs = sorted({(int(r["seed"]), r["split_hash"]) for r in rows})
    if len({h for _, h in pairs}) == 1:
        return pairs[0][1][:8]
    return hashlib.sha256("\n".join(f"{s}:{h}" for s, h in pairs).encode()).hexdigest()[:8]


def forget_words(forget: str) -> str:
    """A forget spec in words: ``random 10 %``, ``130 random samples``, ``class 3`` …"""
    try:
        spec = ForgetSpec.parse(forget)
    except UnlearnlabError:
        return forget
    if spec.kind == "random":
        return f"random {spec.fraction * 100:g} %" if spec.fraction is not None else f"{spec.count} random samples"
    if spec.kind == "class":
        return f"class {', '.join(map(str, spec.classes))} (test set without it)"
    return f"the samples listed in {spec.path}"


def _grid_facts(rows: Sequence[Row], label: str) -> tuple[str, list[str]]:
    """(what the table is, [dataset / model, forget set, per-seed original]) from the registry or the task key."""
    quick = label.endswith(" quick")
    spec = protocol_of_label(label)
    if spec is not None:
        p = spec.sized(quick)
        epochs = f", {p.recipe.epochs} ep" if p.recipe is not None else ""
        facts = [f"{p.dataset} / {p.model}{epochs}", f"forget {forget_words(str(p.forget))}"]
        if p.original_per_seed:
            facts.append("one original model per seed")
        return f"Protocol {label} ({'--quick size' if quick else 'full size'})", facts
    task_key = str(rows[0]["task_key"])
    parts = task_key.split("|")
    start = 1 if parts and " v" in parts[0] else 0  # a protocol label prefixes the keys of named protocols
    dataset, model, forget = (parts[start:start + 3] + [DASH] * 3)[:3]
    what = f"Custom grid {label}"
    if task_key == SMOKE_TASK_KEY:
        what = (f"Smoke demo ({label}: the defaults of a plain `unlearnlab run`; the digits-random10 protocol runs "
                "seeds 1–5)")
    return what, [f"{dataset} / {model}", f"forget {forget_words(forget)}"]


def caption(rows: Sequence[Row], mia: str) -> str:
    """One line saying what the table holds (see the module docstring)."""
    label = str(rows[0]["protocol"])
    what, facts = _grid_facts(rows, label)
    devices = sorted({str(r["env"].get("device_name") or r["env"].get("device") or "unknown device") for r in rows})
    seeds = [int(r["seed"]) for r in rows]
    return " · ".join([what, *facts, f"seeds {seed_range(seeds)}", f"MIA = {mia}", ", ".join(devices),
                       f"split {split_label(rows)}"])


def _svc_cut(rows: Sequence[Row]) -> bool:
    return any(((r.get("stats") or {}).get("evaluation") or {}).get("mia", {}).get("mia_efficacy_svc_conf", {})
               .get("cut") for r in rows)


def legend(rows: Sequence[Row], summaries: Sequence[Any], ddof: int) -> list[str]:
    """The sentences that explain this table's notation (only what appears in it)."""
    several = any(s.n_seeds > 1 for s in summaries)
    lines = [(f"Cells: mean ± std over seeds (sample std, ddof {ddof})" if several else "Cells: the one seed's value "
              "(one seed: no ±)") + "; (g) = |mean − Retrain's mean|, the gap."]
    if several and any(s.n_seeds == 1 for s in summaries):
        lines.append("A row with one seed shows no ±.")
    if any(st.attack_std is not None for s in summaries for st in s.metrics.values()):
        k = sorted({int(((r.get("stats") or {}).get("evaluation") or {}).get("attack_draws", 0)) for r in rows} - {0})
        lines.append(f"[±a] = std of the MIA over K = {', '.join(map(str, k))} resampled attack sets (other shadow "
                     "members or subsamples; root mean square over seeds): the part of the MIA that is the "
                     "attack's own draw, not the method.")
    if any(s.is_noise_floor for s in summaries):
        lines.append(f"{NOISE_FLOOR_LABEL}: a second Retrain, other seeds for initialisation and data order; its "
                     "gaps are the noise floor. * = gap above noise: larger than 2·sqrt(τ² + a²)/√n, τ = root mean "
                     "square of the seed-matched differences between the two Retrains, a = the row's attack spread "
                     "(0 without one), n = the row's seeds.")
    else:
        lines.append("No independent Retrain row: gaps are not tested against the noise floor.")
    lines.append("Avg.Gap: mean ± std over seeds of (1/4)·Σ|x − Retrain| over UA, RA, TA, MIA on the same seed"
                 + ("; (unmatched) = gap of means, Retrain lacks some seeds." if any(not s.matched for s in summaries)
                    else "."))
    lines.append("RTE: minutes; (r×) = ratio to Retrain's time, given only when both were timed on the same device "
                 "type with the same warm-up and precision.")
    notes = sorted({s.rte_note for s in summaries if s.rte_note})
    lines.extend(f"RTE n/a: {note}." for note in notes)
    if _svc_cut(rows):
        lines.append("MIA-Efficacy: D_r is shorter than D_test here, so the shadow non-members were cut to |D_r| by a "
                     "seeded draw (the row's definition says so).")
    return lines


def plot_title(rows: Sequence[Row]) -> str:
    """A figure title in words: protocol (or custom grid), dataset / model, forget set, seeds."""
    label = str(rows[0]["protocol"])
    what, facts = _grid_facts(rows, label)
    what = what.split(" (")[0] if what.startswith(("Protocol", "Custom")) else f"smoke demo ({label})"
    return f"{what}, {', '.join(facts[:2])}, seeds {seed_range([int(r['seed']) for r in rows])}"
