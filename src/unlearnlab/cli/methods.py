"""``unlearnlab methods [PATTERN | NAME]``: the registered methods, or one method in full.

On a terminal the listing is a table; piped (or ``--format text``) it is plain tab-separated text, one method a
line starting with its name, with every default written out, so ``grep`` and ``cut`` work on it;
``--format json`` gives the same data as JSON. A NAME (or alias) without wildcards shows that method in full:
composition (forget ∣ retain × rule + modifiers), the task families it runs on, paper, summary, aliases, defaults
and the reference profile's values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from unlearnlab.cli.common import app, echo, guard, out_console
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import get_method, list_methods
from unlearnlab.methods.registry import load_optional

FORMATS = ("auto", "table", "text", "json")


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items())


def describe(name: str) -> dict[str, Any]:
    """Everything the registry says about method ``name``, as plain data."""
    info = get_method(name)
    return {"name": info.name, "aliases": list(info.aliases), "composition": info.composition,
            "families": info.families, "paper": info.paper, "summary": info.summary,
            "defaults": dict(info.defaults), "reference": dict(info.reference)}


def _detail(data: dict[str, Any]) -> str:
    lines = [data["name"], f"  aliases: {', '.join(data['aliases']) or '-'}",
             f"  composition: {data['composition']}", f"  runs on: {', '.join(data['families'])}",
             f"  paper: {data['paper']}", f"  summary: {data['summary']}", "  defaults:"]
    lines += [f"    {k} = {_value(v)}" for k, v in data["defaults"].items()]
    lines.append("  reference profile (--profile reference):" + ("" if data["reference"] else " same as defaults"))
    lines += [f"    {k} = {_value(v)}" for k, v in data["reference"].items()]
    return "\n".join(lines)


@app.command("methods")
def methods(
    pattern: Annotated[str | None, typer.Argument(
        help="A method name or alias (shows it in full), or a shell-style filter such as '*dual*'.")] = None,
    defaults: Annotated[bool, typer.Option("--defaults/--no-defaults", help="Show defaults.")] = True,
    fmt: Annotated[str, typer.Option("--format", "-f", help="auto (table on a terminal, text when piped) | "
                                                             "table | text | json")] = "auto",
) -> None:
    """List the registered methods: name, composition, source paper, defaults."""
    with guard():
        if fmt not in FORMATS:
            raise UnlearnlabError(f"--format {fmt!r}: use {', '.join(FORMATS)}.")
        if fmt == "auto":
            fmt = "table" if sys.stdout.isatty() else "text"
        if pattern is not None and not any(c in pattern for c in "*?["):
            data = describe(pattern)  # an unknown name fails here, with suggestions
            echo(json.dumps(data, indent=2, default=str) if fmt == "json" else _detail(data))
            return
        load_optional()  # the presets of installed optional packages (llm/…) are listed too
        names = list_methods(pattern)
        if not names:
            raise UnlearnlabError(f"No method matches {pattern!r}: run `unlearnlab methods` for the list.")
    listed = [describe(name) for name in names]
    if fmt == "json":
        echo(json.dumps(listed, indent=2, default=str))
    elif fmt == "text":
        echo("# " + "\t".join(["name", "composition", "paper", "aliases", *(["defaults"] if defaults else [])]))
        for d in listed:
            echo("\t".join([d["name"], d["composition"], d["paper"], ",".join(d["aliases"]) or "-",
                            *([_pairs(d["defaults"])] if defaults else [])]))
    else:
        table = Table("method", "composition", "source paper", *(["defaults"] if defaults else []), show_lines=True)
        for d in listed:
            label = d["name"] + (f"\n(aliases: {', '.join(d['aliases'])})" if d["aliases"] else "")
            cells = [label, d["composition"], d["paper"], *([_pairs(d["defaults"])] if defaults else [])]
            table.add_row(*map(escape, cells))  # "alternate[shared]" is text, not a rich style tag
        out_console.print(table)
