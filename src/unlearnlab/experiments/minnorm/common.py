"""What MinNorm-OG's three experiments share (docs/minnorm_experiments.md): method names and labels, grids as
configuration lists, one result row per cell, the unlearning call, and the Pareto-front summary of the
label-erasure table.

A *cell* is one (setting, method, configuration, trial seed); its row lives in ``ctx.store`` under
``task_key`` = the setting's key and ``config`` = the preset's hyperparameters (plus the setting's T, batch size
and p_retain), so a rerun skips every complete cell.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearnlab.bench.cells import Row, Scores, run_cell
from unlearnlab.bench.store import config_hash, run_key
from unlearnlab.data.tensors import TensorData
from unlearnlab.experiments import ExperimentContext
from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.registry import get_method
from unlearnlab.utils import atomic_write_text, component_seed

#: table labels of the paper's methods (presets ``minnorm-og`` and ``mnog/…``)
LABELS = {
    "mnog/retrain": "Retrain", "minnorm-og": "MinNorm-OG", "mnog/gd": "GD", "mnog/ga": "GA", "mnog/ngp": "NGP",
    "mnog/ngd": "NGD", "mnog/ridge": "Ridge", "mnog/l1-sparse": "ℓ1-Sparse", "mnog/scrub": "SCRUB",
    "mnog/npo": "NPO", "mnog/salun": "SalUn",
}
#: the poisoning experiment's methods (the paper's Table 1)
SINE_METHODS = ("mnog/retrain", "minnorm-og", "mnog/gd", "mnog/ga", "mnog/ngp", "mnog/ngd", "mnog/ridge",
                "mnog/l1-sparse")
#: the image experiments' methods (all eleven)
IMAGE_METHODS = (*SINE_METHODS, "mnog/scrub", "mnog/npo", "mnog/salun")
#: per method, the values searched for each of its active hyperparameters
Grid = dict[str, dict[str, Sequence[Any]]]


def grid_configs(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (the product over its keys, keys sorted)."""
    keys = sorted(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def fmt_config(config: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``"key value, …"`` of the given keys present in ``config`` (``"—"`` when none is)."""
    return ", ".join(f"{k} {config[k]:g}" if isinstance(config[k], float) else f"{k} {config[k]}"
                     for k in keys if k in config) or "—"


@dataclass
class Cell:
    """One result row to compute: (setting key, method, configuration, trial seed)."""

    task_key: str
    method: str
    config: dict[str, Any]
    seed: int

    @property
    def key(self) -> str:
        return run_key(self.task_key, self.method, config_hash(self.config), self.seed)


def unlearn_run(model: nn.Module, method: str, hparams: Mapping[str, Any], forget: TensorData, retain: TensorData,
                num_classes: int, seed: int) -> tuple[dict[str, Any], float]:
    """Build ``method`` with ``hparams`` and run it in place on ``model``; (stats, seconds).

    Calls the unlearner directly (not ``ul.unlearn``): regression targets are float and would be cast to class
    labels by ``as_tensor_data``.
    """
    info = get_method(method)
    unlearner = info.build(info.resolve(dict(hparams)))
    t0 = time.perf_counter()
    stats = unlearner.run(model, UnlearnData(forget, retain, info={"num_classes": num_classes}), RunContext(seed=seed))
    return stats, time.perf_counter() - t0


def finite_model(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def record(ctx: ExperimentContext, cell: Cell, split_hash: str, work: Callable[[], tuple[dict, dict, dict]]) -> None:
    """Run ``work() -> (metrics, definitions, stats)`` as the cell's result row (:mod:`unlearnlab.bench.cells`:
    ``diverged`` on a divergence or a non-finite metric, ``failed`` on another exception; logged, not raised)."""
    row = Row(cell.task_key, ctx.protocol, cell.method, cell.seed, cell.config, split_hash,
              name=f"{cell.method} seed {cell.seed} {cell.task_key}")
    run_cell(ctx.store, row, lambda: Scores(*work()), ctx.log)


def complete_rows(ctx: ExperimentContext, task_key: str) -> dict[str, dict[str, Any]]:
    """Complete rows of ``task_key`` by run key."""
    return {r["run_key"]: r for r in ctx.store.rows(task_key=task_key) if r["status"] in ("done", "diverged")}


def trial_values(ctx: ExperimentContext, task_key: str, method: str, metric: str,
                 configs: Sequence[Mapping[str, Any]] | None = None,
                 missing: float = math.nan) -> tuple[dict[str, dict[int, float]], dict[str, dict]]:
    """``method``'s values of ``metric`` in the context's trials: per configuration hash, trial seed → value (a
    row without the metric counts as ``missing``); and the configurations by hash. With ``configs`` only rows of
    those configurations count (the present grid: rows of an older grid in the same store are left out)."""
    allowed = None if configs is None else {config_hash(c) for c in configs}
    per: dict[str, dict[int, float]] = {}
    found: dict[str, dict] = {}
    for r in complete_rows(ctx, task_key).values():
        if r["method"] != method or r["seed"] not in ctx.seeds or (allowed is not None
                                                                     and r["config_hash"] not in allowed):
            continue
        v = r["metrics"].get(metric)
        per.setdefault(r["config_hash"], {})[r["seed"]] = missing if v is None else float(v)
        found[r["config_hash"]] = r["config"]
    return per, found


def write_table(ctx: ExperimentContext, name: str, text: str) -> str:
    """Write ``text`` to ``ctx.out/name`` (atomically) and return it."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ctx.out / name, text)
    return text


def init_seed(seed: int, component: str) -> int:
    """The model-initialisation seed of a trial's ``component`` (``"mnog-sine-init"``, …)."""
    return component_seed(seed, component) % (2**31)


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Keys of the points (retain quality ↑, forget error ↓) that no other point dominates, by retain quality."""
    keys = [k for k, (q, e) in points.items() if math.isfinite(q) and math.isfinite(e)]
    front = []
    for k in keys:
        q, e = points[k]
        if not any((q2 >= q and e2 <= e) and (q2 > q or e2 < e) for k2 in keys if k2 != k
                   for q2, e2 in [points[k2]]):
            front.append(k)
    return sorted(front, key=lambda k: points[k][0])


def gt_distance(gt: tuple[float, float], points: Mapping[str, tuple[float, float]], front: Sequence[str]) -> float:
    """Smallest Euclidean distance from the GT point to the front's points (ours, not in the paper)."""
    if not front:
        return math.nan
    return min(math.hypot(points[k][0] - gt[0], points[k][1] - gt[1]) for k in front)
