"""MinNorm-OG's three experiments (docs/minnorm_experiments.md), each ``run(ctx) -> str``
(:mod:`unlearnlab.experiments`) and each a protocol target (``unlearnlab.experiments.minnorm:poisoning``,
``:label_erasure``, ``:collapse``):

- :func:`poisoning` (:mod:`.sine`) — sine regression with 5 poisoned points; sup-norm error after unlearning.
- :func:`label_erasure` and :func:`collapse` (:mod:`.images`, settings and grids in :mod:`.image_settings`) —
  coloured image copies; Pareto fronts of (retain quality, forget error), and colour accuracy.
- :mod:`.common` — method names, grids as configuration lists, result rows, the unlearning call.

Every experiment stores one row per (method, configuration, trial seed, setting) in ``ctx.store``, skips rows
already complete (a trial's original model is trained, or read from ``ctx.cache``, only when a row of that trial
is missing), writes its Markdown table to ``ctx.out`` and returns it. ``ctx.quick`` selects the small CPU scale.
"""

from __future__ import annotations

from unlearnlab.experiments.minnorm.images import collapse, label_erasure
from unlearnlab.experiments.minnorm.sine import poisoning

__all__ = ["collapse", "label_erasure", "poisoning"]
