"""Selecting a protocol's method values on D_val: one Optuna search per method, one YAML of the chosen values.

``unlearnlab tune --protocol NAME --all-methods`` runs :func:`unlearnlab.bench.tune.tune` for every method of the
protocol (retrain excluded) with the protocol's dataset, model, forget set, recipe, profile, primary MIA and
per-seed originals, each trial scored on D_val against Retrain of the same seed (docs/tuning.md). The protocol's
budget keys (e.g. ``epochs``) stay fixed; what a method's space searches (its learning rate and own keys) is
chosen. Each method's study lives in ``OUT/<method>/``, so a call resumes (more trials) where the last stopped;
a call for some of the methods keeps the other methods' values already in the output.
The values end in ``OUT/protocol-hparams.yaml``, in the format of ``protocol_data/fmnist_tuned.yaml``: copy its
``protocols`` entry there to make them the protocol's committed defaults (docs/protocols.md).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from unlearnlab.bench.tune import NoFiniteTrial, default_space, tune
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocols import get_protocol
from unlearnlab.utils import atomic_write_text
from unlearnlab.version import __version__

OUTPUT = "protocol-hparams.yaml"
_MEMBER = re.compile(r"^(?P<stem>.+-class)\d+$")


def template_name(name: str) -> str:
    """The key a protocol's values are stored under: a class-wise member's family (``fmnist-class<c>``)."""
    match = _MEMBER.match(name)
    return f"{match['stem']}<c>" if match else name


def tune_protocol(name: str, trials: int, seeds: Sequence[int], out: str | Path, methods: Sequence[str] | None = None,
                  device: str | None = None, cache_dir: str | None = None, root: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Tune every method of protocol ``name`` (or ``methods``) with ``trials`` more trials each on ``seeds``; write
    and return ``{"protocols": {key: {method: values}}, …}`` (``OUT/protocol-hparams.yaml``)."""
    spec = get_protocol(name)
    if spec.is_experiment:
        raise UnlearnlabError(f"Protocol {name!r} is an experiment; only grid protocols have method values to tune.")
    chosen_methods = [m for m in (methods or spec.methods) if m != "retrain"]
    unknown = [m for m in chosen_methods if m not in spec.methods]
    if unknown:
        raise UnlearnlabError(f"{unknown} are not methods of protocol {name!r} ({', '.join(spec.methods)}).")
    out = Path(out)
    say = log or (lambda text: None)
    key = template_name(name)
    previous = _previous(out / OUTPUT, key)  # a call for some methods keeps the values of the others
    chosen: dict[str, dict[str, Any]] = dict(previous.get("protocols", {}).get(key) or {})
    summary: dict[str, Any] = dict(previous.get("selection") or {})
    for method in chosen_methods:
        space = default_space(method)
        fixed = {k: v for k, v in spec.hparams.get(method, {}).items() if k not in space}
        say(f"[bold]{method}[/bold]: searching {', '.join(space)} (fixed: {fixed or 'preset defaults'})")
        try:
            result = tune(spec.dataset, spec.model, str(spec.forget), method, tuple(seeds), trials,
                          out=out / method, space=space, hparams=fixed, select_on="val", profile=spec.profile,
                          primary_mia=spec.primary_mia, recipe=spec.recipe.to_dict() if spec.recipe else None,
                          original_per_seed=spec.original_per_seed, root=root, device=device, cache_dir=cache_dir,
                          plots=True, log=say)
        except NoFiniteTrial as err:  # every trial diverged: keep the preset's values, say so, go on
            say(f"[yellow]{method}: {err}[/yellow]")
            summary[method] = {"avg_gap_val": None, "note": "every trial diverged: the preset's values stay"}
            chosen.pop(method, None)
            continue
        chosen[method] = {k: _plain(v) for k, v in result.best_params.items()}
        summary[method] = {"avg_gap_val": round(result.best_value, 4), "trials": len(result.trials)}
    which = "--all-methods" if methods is None else f"--method {','.join(chosen_methods)}"
    command = f"unlearnlab tune --protocol {name} {which} --trials {trials} --seeds {','.join(map(str, seeds))}"
    document = {
        "selected_on": "val",
        "commands": [*previous.get("commands", []), command],
        "unlearnlab": __version__,
        "date": datetime.date.today().isoformat(),
        "selection": summary,
        "protocols": {key: chosen},
    }
    atomic_write_text(out / OUTPUT, yaml.safe_dump(document, sort_keys=False))
    return document


def _previous(path: Path, key: str) -> dict[str, Any]:
    """The earlier output in ``path`` when it holds values of protocol ``key``, else nothing."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) and key in (data.get("protocols") or {}) else {}


def _plain(value: Any) -> Any:
    """A YAML-friendly scalar (floats rounded to 4 significant digits: the search cannot resolve more)."""
    return float(f"{value:.4g}") if isinstance(value, float) else value
