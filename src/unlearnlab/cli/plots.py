"""``unlearnlab plots``: the trade-off figures of a run folder (PNG and PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unlearnlab.bench.plots import write_plots
from unlearnlab.bench.store import FILENAME, ResultStore
from unlearnlab.cli.common import app, console, echo, guard
from unlearnlab.errors import UnlearnlabError


@app.command("plots")
def plots(run_dir: Annotated[Path, typer.Argument(help="The --out folder of `unlearnlab run`.")],
          out: Annotated[Path | None, typer.Option(help="Folder for the figures (default: RUN_DIR).")] = None) -> None:
    """Draw the unlearning–utility trade-off (UA gap vs TA, Pareto front) per protocol, as PNG and PDF."""
    with guard(out or run_dir):
        if not (run_dir / FILENAME).exists():
            raise UnlearnlabError(f"No {FILENAME} in {run_dir}: point to the --out folder of `unlearnlab run`.")
        with ResultStore(run_dir) as store:
            paths = write_plots(store, out or run_dir)
    if not paths:
        console.print("No group with a finished Retrain and another method: nothing to plot.")
    for path in paths:
        echo(str(path))
