"""``unlearnlab datasets``: the registered datasets, one name a line."""

from __future__ import annotations

from unlearnlab.cli.common import app, echo
from unlearnlab.data import list_datasets


@app.command("datasets")
def datasets() -> None:
    """List the registered datasets."""
    for name in list_datasets():
        echo(name)
