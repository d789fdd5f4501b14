"""What every verb of the ``unlearnlab`` command line shares: the Typer app, the consoles, error handling.

A user error never ends in a traceback: :func:`guard` turns :class:`~unlearnlab.errors.UnlearnlabError`, a
read-only or full disk and a damaged results database into ``error: …`` on standard error and exit code 2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from unlearnlab.bench.outdir import write_error
from unlearnlab.bench.store import database_error
from unlearnlab.errors import UnlearnlabError
from unlearnlab.version import __version__

#: exit code of a user error (bad input, unusable output folder); 1 is a run with failed cells
USAGE_ERROR = 2

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Machine unlearning benchmark and toolkit.",
                  pretty_exceptions_enable=False)
#: messages, progress and errors (standard error)
console = Console(stderr=True, soft_wrap=True)
#: results: tables, listings (standard output)
out_console = Console(soft_wrap=True)


def fail(err: Exception) -> NoReturn:
    """Print ``err`` as ``error: …`` and exit with :data:`USAGE_ERROR`."""
    console.print(f"[bold red]error:[/bold red] {escape(str(err))}", soft_wrap=True)
    raise typer.Exit(USAGE_ERROR)


@contextmanager
def guard(where: str | Path = ".") -> Iterator[None]:
    """Turn user errors raised inside the block into :func:`fail` (``where``: the folder being written)."""
    try:
        yield
    except UnlearnlabError as err:
        fail(err)
    except OSError as err:
        translated = write_error(err, Path(where))
        if translated is None:
            raise
        fail(translated)
    except sqlite3.Error as err:
        fail(database_error(err, Path(where)))


def echo(text: str) -> None:
    """Print plain ``text`` on standard output as it is: no markup, no wrapping, tabs kept."""
    typer.echo(text)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    """unlearnlab: unlearn data from PyTorch models and measure how well it was removed."""
    if version:
        echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        echo(ctx.get_help())
