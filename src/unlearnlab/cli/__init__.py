"""The ``unlearnlab`` command line: one module per verb, all registered on :data:`app`.

``unlearnlab = "unlearnlab.cli:app"`` is the console script; ``python -m unlearnlab.cli`` runs it too.
"""

from __future__ import annotations

from unlearnlab.cli import datasets, methods, models, plots, protocols, report, run, tune
from unlearnlab.cli.common import app

__all__ = ["app", "datasets", "methods", "models", "plots", "protocols", "report", "run", "tune"]
