"""``python -m unlearnlab.cli``: the ``unlearnlab`` command."""

from unlearnlab.cli import app

app(prog_name="unlearnlab")
