"""``unlearnlab report``: re-render the tables of a run folder from its results database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unlearnlab.bench.tables import report as render
from unlearnlab.cli.common import app, echo, guard


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of `unlearnlab run`.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown | latex | csv | all (writes files)")]
    = "markdown",
) -> None:
    """Re-render the tables of a run folder from its results database."""
    with guard(run_dir):
        echo(render(run_dir, fmt))
