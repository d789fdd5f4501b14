"""``unlearnlab models``: the registered models, one name a line."""

from __future__ import annotations

from unlearnlab.cli.common import app, echo
from unlearnlab.models import list_models


@app.command("models")
def models() -> None:
    """List the registered models."""
    for name in list_models():
        echo(name)
