"""Paper experiments that are not a classification grid (MinNorm-OG's synthetic studies, certified budgets).

An experiment is a function ``run(ctx: ExperimentContext) -> str`` that computes its rows, stores each one in
``ctx.store`` (skipping rows already complete, so an interrupted run resumes), writes its own tables/plots into
``ctx.out`` and returns its Markdown table. Protocol objects (:mod:`unlearnlab.protocols`) point to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.store import ResultStore


@dataclass
class ExperimentContext:
    """What an experiment run receives."""

    out: Path
    quick: bool
    seeds: tuple[int, ...]
    store: ResultStore
    cache: ModelCache
    device: torch.device
    protocol: str
    log: Callable[[str], None] = print
    progress: Callable[[str, float], None] = field(default=lambda label, fraction: None)


Experiment = Callable[[ExperimentContext], str]
