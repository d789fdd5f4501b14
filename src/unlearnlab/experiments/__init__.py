"""Paper experiments that are not a classification grid (MinNorm-OG's synthetic studies, certified budgets).

An experiment is a function ``run(ctx: ExperimentContext) -> str`` that computes its rows, stores each one in
``ctx.store`` (skipping rows already complete, so an interrupted run resumes), writes its own tables/plots into
``ctx.out`` and returns its Markdown table. Protocol objects (:mod:`unlearnlab.protocols`) point to them.
"""

from __future__ import annotations

from unlearnlab.bench.experiment import Experiment, ExperimentContext

__all__ = ["Experiment", "ExperimentContext"]
