"""The ``unlearnlab`` command line: one verb per job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from unlearnlab import __version__
from unlearnlab.bench.config import (
    from_dict,
    load_config_dict,
    parse_assignment,
    parse_methods,
    parse_seeds,
    protocol_config,
)
from unlearnlab.errors import UnlearnlabError

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Machine unlearning benchmark and toolkit.")
console = Console(stderr=True)
out_console = Console()


def _fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/bold red] {escape(str(err))}")
    raise typer.Exit(2)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    """unlearnlab: unlearn data from PyTorch models and measure how well it was removed."""
    if version:
        out_console.print(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        out_console.print(ctx.get_help())


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config; flags override its keys.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (see `unlearnlab datasets`).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `unlearnlab models`).")] = None,
    forget: Annotated[str | None, typer.Option(help="random:0.1 | class:3 | indices:FILE.npy")] = None,
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods (see `unlearnlab methods`).")] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds, e.g. '1,2,3' or '1-5'.")] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (results.sqlite, tables, config).")] = None,
    root: Annotated[str | None, typer.Option(help="Folder holding the dataset files.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: CUDA when present).")] = None,
    profile: Annotated[str | None, typer.Option(help="Hyperparameter profile: default | reference.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Retrain original/retrained models.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="METHOD.KEY=VALUE hyperparameter override.")] = None,
    protocol: Annotated[str | None, typer.Option(help="Named protocol (see `unlearnlab protocols`); it pins "
                                                      "dataset, model, forget, recipes and MIA.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The protocol's quick size (minutes on a CPU).")] = False,
    executor: Annotated[str | None, typer.Option(help="Where cells run: serial (this process) | local (process "
                                                      "pool) | ray (Ray tasks). Default: serial, or local with "
                                                      "--workers > 1.")] = None,
    workers: Annotated[int | None, typer.Option(help="Concurrent cells (local default: min(2, CPUs); ray: tasks "
                                                     "in flight, default the cluster's CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address for --executor ray (default: "
                                                         "$RAY_ADDRESS, else a local instance).")] = None,
    forget_quality: Annotated[int | None, typer.Option(
        "--forget-quality", help="Add the NeurIPS'23 forget score (N unlearned vs N retrained models, seed 1 "
                                 "only; N >= 2, resolution ε̄ = ceil(ln(N-1))).")] = None,
) -> None:
    """Run (or resume) a benchmark grid and print the paper-style table. No arguments: the digits default."""
    from unlearnlab.bench.runner import plan, run_experiment, run_grid

    try:
        data = load_config_dict(config) if config else {}
        name = protocol or data.get("protocol")
        quick = quick or bool(data.get("quick", False))
        if name is None and quick:
            raise UnlearnlabError("--quick needs --protocol NAME (see `unlearnlab protocols`).")
        if name is not None:
            pinned = {"--dataset": dataset, "--model": model, "--forget": forget}
            given = [flag for flag, value in pinned.items() if value is not None]
            if given:
                raise UnlearnlabError(f"{', '.join(given)}: protocol {name!r} pins dataset, model and forget set; "
                                      "drop --protocol to run a custom grid.")
            from unlearnlab.protocols import get_protocol

            spec = get_protocol(str(name))
            if "out" not in data:
                data = {**data, "out": f"runs/{spec.name}{'-quick' if quick else ''}"}
            if spec.is_experiment:
                _run_experiment_command(spec, quick, data, out=out, root=root, device=device, threads=threads,
                                        seeds=seeds, no_cache=no_cache, methods=methods, profile=profile,
                                        set_=set_, run_experiment=run_experiment,
                                        scale_out={"--executor": executor, "--workers": workers,
                                                   "--ray-address": ray_address})
                return
            cfg = protocol_config(spec.name, quick, data)
        else:
            cfg = from_dict(data)
        hparams = {k: dict(v) for k, v in cfg.hparams.items()}
        for item in set_ or []:
            method, key, value = parse_assignment(item)
            hparams.setdefault(method, {})[key] = value
        cfg = cfg.updated(
            dataset=dataset, model=model, forget=forget, out=out, root=root, device=device, profile=profile,
            threads=threads, methods=parse_methods(methods) if methods else None,
            seeds=parse_seeds(seeds) if seeds else None, cache=False if no_cache else None, hparams=hparams,
            executor=executor, workers=workers, ray_address=ray_address, forget_quality_n=forget_quality,
        )
        grid_plan = plan(cfg)
    except UnlearnlabError as err:
        _fail(err)
    what = f"protocol {grid_plan.protocol} · " if cfg.protocol else ""
    from unlearnlab.bench.executors import resolve

    engine, engine_workers = resolve(cfg.executor, cfg.workers)
    where = "" if engine == "serial" else f" · executor {engine}" + (f" × {engine_workers}" if engine_workers else "")
    console.print(f"[bold]unlearnlab {__version__}[/bold] · {what}{cfg.dataset} · {cfg.model} · forget {cfg.forget} · "
                  f"methods {', '.join(grid_plan.methods)} · seeds {', '.join(map(str, cfg.seeds))}{where} → "
                  f"{cfg.out}")
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bars:
        cells = len(grid_plan.methods) * len(cfg.seeds)
        grid = bars.add_task("grid", total=cells)
        current: dict[str, Any] = {}

        def progress(label: str, fraction: float) -> None:
            if label not in current:
                for old in current.values():
                    bars.remove_task(old)
                current.clear()
                current[label] = bars.add_task(label, total=100)
            bars.update(current[label], completed=round(100 * fraction))

        try:
            markdown = run_grid(cfg, progress, log=console.print, cell_done=lambda: bars.advance(grid))
        except UnlearnlabError as err:
            _fail(err)
    out_console.print(markdown, soft_wrap=True, markup=False, highlight=False)
    console.print(f"Saved {cfg.out}/table.md, table.csv, table.tex and results.sqlite.")


def _run_experiment_command(spec: Any, quick: bool, data: dict[str, Any], *, out: str | None, root: str | None,
                            device: str | None, threads: int | None, seeds: str | None, no_cache: bool,
                            methods: str | None, profile: str | None, set_: list[str] | None,
                            run_experiment: Any, scale_out: dict[str, Any] | None = None) -> None:
    """``unlearnlab run --protocol <experiment>``: only output, device, cache, thread and seed options apply."""
    grid_only = {"--methods": methods, "--profile": profile, "--set": set_ or None, **(scale_out or {})}
    given = [flag for flag, value in grid_only.items() if value]
    allowed = {"out", "root", "cache", "cache_dir", "device", "threads", "seeds", "protocol", "quick"}
    extra = sorted(set(data) - allowed)
    if given or extra:
        raise UnlearnlabError(f"{', '.join(given + extra)}: protocol {spec.name!r} is an experiment; it takes only "
                              "--out, --seeds, --device, --threads, --no-cache and --quick.")
    base = {k: v for k, v in data.items() if k in allowed}
    cfg = from_dict({**base, "protocol": spec.name, "quick": quick,
                     "seeds": base.get("seeds", list(spec.sized(quick).seeds))})
    cfg = cfg.updated(out=out, root=root, device=device, threads=threads,
                      seeds=parse_seeds(seeds) if seeds else None, cache=False if no_cache else None)
    console.print(f"[bold]unlearnlab {__version__}[/bold] · protocol {spec.label(quick)} · experiment "
                  f"{spec.sized(quick).experiment} · seeds {', '.join(map(str, cfg.seeds))} → {cfg.out}")
    markdown = run_experiment(cfg, log=console.print)
    out_console.print(markdown, soft_wrap=True, markup=False, highlight=False)
    console.print(f"Saved {cfg.out}/table.md and results.sqlite.")


@app.command()
def protocols(
    name: Annotated[str | None, typer.Argument(help="A protocol name or alias: print its full definition.")] = None,
) -> None:
    """List the named protocols: name, paper, dataset/model, forget, seeds, primary MIA, quick size."""
    from unlearnlab.protocols import aliases_of, get_protocol, list_protocols

    if name is not None:
        try:
            spec = get_protocol(name)
        except UnlearnlabError as err:
            _fail(err)
        out_console.print(f"[bold]{escape(spec.label())}[/bold] · {escape(spec.paper)}")
        out_console.print(escape(spec.description), soft_wrap=True)
        for quick in (False, True):
            sized = spec.sized(quick)
            fields = ({"experiment": sized.experiment, "seeds": sized.seeds} if spec.is_experiment else
                      {"dataset": sized.dataset, "model": sized.model, "forget": sized.forget,
                       "recipe": sized.recipe.to_dict() if sized.recipe else "Recipe.default(task)",
                       "retrain_recipe": sized.retrain_recipe.to_dict() if sized.retrain_recipe else "= recipe",
                       "methods": ", ".join(sized.methods), "profile": sized.profile, "seeds": sized.seeds,
                       "primary_mia": sized.primary_mia, "val_seed": sized.val_seed, "std_ddof": sized.std_ddof,
                       "gap_variants": ", ".join(sized.gap_variants), "compat": list(sized.compat)})
            out_console.print(f"[bold]{'quick' if quick else 'full'}[/bold]")
            for key, value in fields.items():
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


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of `unlearnlab run`.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown | latex | csv | all (writes files)")]
    = "markdown",
) -> None:
    """Re-render the tables of a run folder from its results database."""
    from unlearnlab.bench.runner import report as render

    if fmt not in ("markdown", "latex", "csv", "all"):
        _fail(UnlearnlabError(f"--format {fmt!r}: use markdown, latex, csv or all."))
    try:
        out_console.print(render(run_dir, fmt), markup=False, highlight=False, soft_wrap=True)
    except UnlearnlabError as err:
        _fail(err)


@app.command()
def methods(pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. '*dual*'.")] = None,
            defaults: Annotated[bool, typer.Option("--defaults/--no-defaults", help="Show defaults.")] = True) -> None:
    """List the registered methods: name, family, source paper, defaults."""
    from unlearnlab.methods import get_method, list_methods

    table = Table("method", "family", "source paper", *(["defaults"] if defaults else []), show_lines=True)
    for name in list_methods(pattern):
        info = get_method(name)
        label = name + (f"\n(aliases: {', '.join(info.aliases)})" if info.aliases else "")
        cells = [label, info.composition, info.paper]
        if defaults:
            cells.append(", ".join(f"{k}={v}" for k, v in info.defaults.items()))
        table.add_row(*map(escape, cells))  # "alternate[shared]" is text, not a rich style tag
    out_console.print(table)


@app.command()
def datasets() -> None:
    """List the registered datasets."""
    from unlearnlab.data import list_datasets

    for name in list_datasets():
        out_console.print(name)


@app.command()
def models() -> None:
    """List the registered models."""
    from unlearnlab.models import list_models

    for name in list_models():
        out_console.print(name)
import unlearnlab.cli_tune  # noqa: E402,F401  (registers the tune and plots commands)
