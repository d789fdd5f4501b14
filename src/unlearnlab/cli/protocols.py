"""``unlearnlab protocols [NAME]``: the named protocols, or one protocol's full definition."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from unlearnlab.cli.common import app, guard, out_console
from unlearnlab.protocols import Protocol, aliases_of, get_protocol, list_protocols


def _fields(spec: Protocol, quick: bool) -> dict[str, object]:
    sized = spec.sized(quick)
    if spec.is_experiment:
        optional = {"forget": sized.forget, "methods": ", ".join(sized.methods),
                    "accepts": ", ".join(f"--{'set' if o == 'hparams' else o}" for o in sized.accepts)}
        return {"experiment": sized.experiment, **{k: v for k, v in optional.items() if v}, "seeds": sized.seeds}
    return {"dataset": sized.dataset, "model": sized.model, "forget": sized.forget,
            "recipe": sized.recipe.to_dict() if sized.recipe else "Recipe.default(task)",
            "retrain_recipe": sized.retrain_recipe.to_dict() if sized.retrain_recipe else "= recipe",
            "methods": ", ".join(sized.methods), "profile": sized.profile, "seeds": sized.seeds,
            "primary_mia": sized.primary_mia, "mias": ", ".join(sized.mias), "attack_draws": sized.attack_draws,
            "ulira_shadows": sized.ulira_shadows or "off", "noise_floor": sized.noise_floor,
            "original_per_seed": sized.original_per_seed, "test_half": sized.test_half,
            "val_seed": sized.val_seed, "std_ddof": sized.std_ddof,
            "gap_variants": ", ".join(sized.gap_variants), "compat": list(sized.compat),
            "method values (a run may not change them)": _values(sized.hparams),
            "searched by the paper (pass them with --set METHOD.KEY=VALUE)": _searched(sized.searched)}


def _values(hparams: dict[str, dict[str, object]]) -> str:
    return "; ".join(f"{m}: " + ", ".join(f"{k}={v!r}" for k, v in sorted(vals.items()))
                     for m, vals in sorted(hparams.items()) if vals) or "none"


def _searched(searched: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{m}: {', '.join(keys)}" for m, keys in sorted(searched.items()) if keys) or "none"


@app.command("protocols")
def protocols(
    name: Annotated[str | None, typer.Argument(help="A protocol name or alias: print its full definition.")] = None,
) -> None:
    """List the named protocols: name, paper, dataset/model, forget, seeds, primary MIA, quick size."""
    if name is not None:
        with guard():
            spec = get_protocol(name)
        out_console.print(f"[bold]{escape(spec.label())}[/bold] · {escape(spec.paper)}")
        out_console.print(escape(spec.description), soft_wrap=True)
        for quick in (False, True):
            out_console.print(f"[bold]{'quick' if quick else 'full'}[/bold]")
            for key, value in _fields(spec, quick).items():
                out_console.print(f"  {key}: {escape(str(value))}", soft_wrap=True)
        return
    table = Table("paper", "dataset / model", "forget", "seeds", "primary MIA", "quick size", show_lines=True)
    table.columns.insert(0, Column("protocol", no_wrap=True))  # a name must stay copyable
    for spec in list_protocols():
        aliases = aliases_of(spec.name)
        label = spec.label() + (f"\n(aliases: {', '.join(aliases)})" if aliases else "")
        full, small = spec.summary(False), spec.summary(True)
        quick_text = (f"{small['data']} · seeds {small['seeds']}" if not spec.is_experiment
                      else f"seeds {small['seeds']}")
        table.add_row(*map(escape, [label, spec.paper, full["data"], full["forget"], full["seeds"], full["mia"],
                                    quick_text]))
    out_console.print(table)
