"""``unlearnlab run``: run (or resume) a benchmark grid or an experiment protocol and print its table.

Flags override the keys of ``--config``; a named protocol pins dataset, model, forget set, recipes and MIA.
Progress goes to standard error — bars on a terminal, one line per epoch (at most one a second) with elapsed
time and ETA otherwise — and, always, to ``OUT/run.log``. ``--original PATH`` unlearns from the user's own
trained model; ``--save-models`` keeps every unlearned model in ``OUT/models/``. SIGINT and SIGTERM stop the run
cleanly and say how to resume. Exit codes: 0 done, 1 some cell failed, 2 bad input or an unusable output
folder, 130/143 interrupted. Under ``torchrun`` each cell and each model to train is one run shared by every rank
(``--parallel ddp|fsdp``); rank 0 alone prints and writes (docs/scaling.md).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from unlearnlab.bench.config import (
    RunConfig,
    from_dict,
    load_config_dict,
    parse_assignment,
    parse_methods,
    parse_seeds,
)
from unlearnlab.bench.executors import resolve
from unlearnlab.bench.experiment import run_experiment
from unlearnlab.bench.plan import Plan, plan
from unlearnlab.bench.progress import ProgressLines
from unlearnlab.bench.runner import GridStatus, complete_rows, run_grid
from unlearnlab.cli.common import app, console, echo, guard
from unlearnlab.distributed import launched, runtime, use
from unlearnlab.distributed.serve import drive, single_process_only
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocols import Protocol, get_protocol
from unlearnlab.version import __version__

#: exit code when a cell failed (its row is retried by the next run)
CELLS_FAILED = 1
#: keys an experiment protocol takes from a config file
EXPERIMENT_KEYS = {"out", "root", "cache", "cache_dir", "device", "threads", "seeds", "protocol", "quick"}
#: flags of the options an experiment protocol may accept (``Protocol.accepts``)
OPTION_FLAGS = {"--methods": "methods", "--set": "hparams", "--original": "original", "--parallel": "parallel"}


def _default(key: str) -> str:
    """The default of a config key, as ``run --help`` shows it."""
    value = RunConfig.model_fields[key].default
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return "auto" if value is None else str(value)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM interrupts it as SIGINT does (rows in flight stay ``running``); SIGINT gets
    Python's own KeyboardInterrupt handler whatever the calling process had installed."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous_term = signal.signal(signal.SIGTERM, raise_interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


class _Display:
    """Where progress goes on standard error: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, cells: int) -> None:
        self.lines_mode = not (sys.stdout.isatty() and console.is_terminal)
        self._lines = ProgressLines(lambda text: console.print(text, markup=False, highlight=False))
        self._bars: Progress | None = None
        self._cells = cells
        self._grid: Any = None
        self._current: dict[str, Any] = {}

    def __enter__(self) -> _Display:
        if not self.lines_mode:
            self._bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=False)
            self._bars.__enter__()
            self._grid = self._bars.add_task("grid", total=self._cells) if self._cells else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.__exit__(None, None, None)

    def progress(self, label: str, fraction: float) -> None:
        if self._bars is None:
            self._lines(label, fraction)
            return
        if label not in self._current:
            for old in self._current.values():
                self._bars.remove_task(old)
            self._current.clear()
            self._current[label] = self._bars.add_task(label, total=100)
        self._bars.update(self._current[label], completed=round(100 * fraction))

    def cell_done(self) -> None:
        if self._bars is not None and self._grid is not None:
            self._bars.advance(self._grid)

    def log(self, text: str) -> None:
        console.print(text, soft_wrap=True)


@app.command("run")
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config; flags override its keys.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (see `unlearnlab datasets`).",
                                                show_default=_default("dataset"))] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `unlearnlab models`).",
                                              show_default=_default("model"))] = None,
    forget: Annotated[str | None, typer.Option(
        help="random:0.1 (fraction, with a decimal point) | random:130 (count >= 2) | random:count=1 | class:3 | "
             "indices:FILE.npy", show_default=_default("forget"))] = None,
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods (see `unlearnlab methods`).",
                                                show_default=_default("methods"))] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds, e.g. '1,2,3' or '1-5'.",
                                              show_default=_default("seeds"))] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (results.sqlite, tables, config, run.log).",
                                            show_default=_default("out") + " (protocols: runs/NAME[-quick])")]
    = None,
    root: Annotated[str | None, typer.Option(help="Folder holding the dataset files.",
                                             show_default="$UNLEARNLAB_DATA")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps.",
                                               show_default="CUDA when present, else cpu")] = None,
    profile: Annotated[str | None, typer.Option(help="Hyperparameter profile: default | reference.",
                                                show_default=_default("profile"))] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Retrain original/retrained models.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (>= 1).",
                                                show_default="torch's default")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="METHOD.KEY=VALUE hyperparameter override "
                                                                 "(VALUE is YAML).")] = None,
    protocol: Annotated[str | None, typer.Option(help="Named protocol (see `unlearnlab protocols`); it pins "
                                                      "dataset, model, forget, recipes and MIA.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The protocol's quick size (minutes on a CPU).")] = False,
    executor: Annotated[str | None, typer.Option(help="Where cells run: serial (this process) | local (process "
                                                      "pool) | ray (Ray tasks).",
                                                 show_default="serial, or local with --workers > 1")] = None,
    workers: Annotated[int | None, typer.Option(help="Concurrent cells (ray: tasks in flight).",
                                                show_default="local: min(2, CPUs); ray: the cluster's CPUs")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address for --executor ray.",
                                                    show_default="$RAY_ADDRESS, else a local instance")] = None,
    forget_quality: Annotated[int | None, typer.Option(
        "--forget-quality", help="Add the NeurIPS'23 forget score (N unlearned vs N retrained models, seed 1 "
                                 "only; N >= 2, resolution ε̄ = ceil(ln(N-1))).", show_default="off")] = None,
    original: Annotated[str | None, typer.Option(
        "--original", help="Your trained original model for --model (a state dict saved with torch.save, or an "
                           "unlearnlab checkpoint; loaded weights-only) instead of training one; its SHA-256 "
                           "joins every row.", show_default="train one, seed 1, cached")] = None,
    save_models: Annotated[bool, typer.Option(
        "--save-models", help="Save every unlearned model to OUT/models/<method>-seed<s>.pt (checksummed; "
                              "certified ones always are, with their certificate).")] = False,
    parallel: Annotated[str | None, typer.Option(
        help="Under torchrun: ddp (the model fits on one device) | fsdp (parameters, gradients and optimizer "
             "states sharded over the ranks).", show_default="ddp")] = None,
) -> None:
    """Run (or resume) a benchmark grid and print the paper-style table. No arguments: the digits default."""
    with guard(out or "."):
        data = load_config_dict(config) if config else {}
        name = protocol or data.get("protocol")
        quick = quick or bool(data.get("quick", False))
        if name is None and quick:
            raise UnlearnlabError("--quick needs --protocol NAME (see `unlearnlab protocols`).")
        overrides = {"out": out, "root": root, "device": device, "threads": threads,
                     "seeds": parse_seeds(seeds) if seeds else None, "cache": False if no_cache else None}
        bring = {"original": original, "save_models": True if save_models else None}
        if name is not None:
            pinned = {"--dataset": dataset, "--model": model, "--forget": forget}
            given = [flag for flag, value in pinned.items() if value is not None]
            if given:
                raise UnlearnlabError(f"{', '.join(given)}: protocol {name!r} pins dataset, model and forget set; "
                                      "drop --protocol to run a custom grid.")
            spec = get_protocol(str(name))
            data = {"out": f"runs/{spec.name}{'-quick' if quick else ''}", **data}
            if spec.is_experiment:
                if "parallel" not in spec.accepts:
                    single_process_only(f"Protocol {spec.name!r} (an experiment)")
                grid_only = {"--methods": methods, "--profile": profile, "--set": set_ or None,
                             "--executor": executor, "--workers": workers, "--ray-address": ray_address,
                             "--forget-quality": forget_quality, "--original": original,
                             "--save-models": save_models, "--parallel": parallel}
                cfg = _experiment_config(spec, quick, data, grid_only, overrides)
                if spec.accepts:
                    cfg = cfg.updated(methods=parse_methods(methods) if methods else None,
                                      hparams=_assigned(cfg.hparams, set_), original=original)
                _shared_across_ranks(parallel)
                drive(runtime(), lambda: _run_experiment(spec, cfg))
                return
            cfg = spec.run_config(quick, **{k: v for k, v in data.items() if k not in ("protocol", "quick")})
        else:
            cfg = from_dict(data)
        cfg = cfg.updated(**overrides, **bring, dataset=dataset, model=model, forget=forget, profile=profile,
                          methods=parse_methods(methods) if methods else None, hparams=_assigned(cfg.hparams, set_),
                          executor=executor, workers=workers, ray_address=ray_address, forget_quality_n=forget_quality)
        _shared_across_ranks(parallel)
        if cfg.forget_quality_n:
            single_process_only("--forget-quality")
        drive(runtime(), lambda: _run_grid(plan(cfg)))


def _shared_across_ranks(parallel: str | None) -> None:
    """Set how a run under torchrun shares each model (``--parallel``); refuse the flag outside torchrun."""
    use(parallel)
    if parallel is not None and launched() is None:
        raise UnlearnlabError(f"--parallel {parallel} shares a run across the ranks of a torchrun job: start it "
                              "with `torchrun --nproc-per-node N -m unlearnlab.cli run …`, or drop --parallel.")


def _assigned(hparams: dict[str, dict[str, Any]], items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``hparams`` with the ``--set METHOD.KEY=VALUE`` assignments applied."""
    out = {k: dict(v) for k, v in hparams.items()}
    for item in items or []:
        method, key, value = parse_assignment(item)
        out.setdefault(method, {})[key] = value
    return out


def _experiment_config(spec: Protocol, quick: bool, data: dict[str, Any], grid_only: dict[str, Any],
                       overrides: dict[str, Any]) -> RunConfig:
    """The config of ``unlearnlab run --protocol <experiment>``: only output, root, device, cache, thread and
    seed options apply, and the options the protocol accepts (``--methods``, ``--set``, ``--original``)."""
    keys = EXPERIMENT_KEYS | set(spec.accepts)
    given = [flag for flag, value in grid_only.items() if value and OPTION_FLAGS.get(flag) not in spec.accepts]
    extra = sorted(set(data) - keys)
    if given or extra:
        takes = ["--out", "--root", "--seeds", "--device", "--threads", "--no-cache", "--quick",
                 *(flag for flag, key in OPTION_FLAGS.items() if key in spec.accepts)]
        raise UnlearnlabError(f"{', '.join(given + extra)}: protocol {spec.name!r} is an experiment; it takes only "
                              f"{', '.join(takes)}.")
    base = {k: v for k, v in data.items() if k in keys}
    cfg = from_dict({**base, "protocol": spec.name, "quick": quick,
                     "seeds": base.get("seeds", list(spec.sized(quick).seeds))})
    return cfg.updated(**overrides)


def _interrupted(signal_name: str, done: int, total: int) -> None:
    of = f" ({done} of {total} rows done)" if total else ""
    console.print(f"[yellow]interrupted ({signal_name}) — re-run the same command to resume{of}[/yellow]")


def _run_experiment(spec: Protocol, cfg: RunConfig) -> None:
    console.print(f"[bold]unlearnlab {__version__}[/bold] · protocol {spec.label(cfg.quick)} · experiment "
                  f"{spec.sized(cfg.quick).experiment} · seeds {', '.join(map(str, cfg.seeds))} → {cfg.out}")
    display = _Display(0)
    try:
        with _terminate_as_interrupt(), display:
            markdown = run_experiment(cfg, display.progress, display.log)
    except KeyboardInterrupt as stop:
        _interrupted("SIGTERM" if isinstance(stop, Interrupted) else "SIGINT", 0, 0)
        raise typer.Exit(143 if isinstance(stop, Interrupted) else 130) from None
    echo(markdown)
    console.print(f"Saved {cfg.out}/table.md, results.sqlite and run.log.")


def _run_grid(grid: Plan) -> None:
    cfg = grid.config
    engine, engine_workers = resolve(cfg.executor, cfg.workers)
    where = "" if engine == "serial" else f" · executor {engine}" + (f" × {engine_workers}" if engine_workers else "")
    what = f"protocol {grid.protocol} · " if cfg.protocol else ""
    console.print(f"[bold]unlearnlab {__version__}[/bold] · {what}{cfg.dataset} · {cfg.model} · forget {cfg.forget} · "
                  f"methods {', '.join(grid.methods)} · seeds {', '.join(map(str, cfg.seeds))}{where} → {cfg.out}")
    status = GridStatus()
    display = _Display(len(grid.methods) * len(cfg.seeds))
    try:
        with _terminate_as_interrupt(), display:
            markdown = run_grid(cfg, display.progress, display.log, display.cell_done, status)
    except KeyboardInterrupt as stop:
        _interrupted("SIGTERM" if isinstance(stop, Interrupted) else "SIGINT", complete_rows(grid),
                     len(grid.rows()))
        raise typer.Exit(143 if isinstance(stop, Interrupted) else 130) from None
    echo(markdown)
    console.print(f"Saved {cfg.out}/table.md, table.csv, table.tex, results.sqlite and run.log.")
    if status.failed:
        console.print(f"[red]{status.failed} cell(s) failed[/red]: their errors are in {cfg.out}/run.log and "
                      "results.sqlite; re-run the same command to retry them.")
        raise typer.Exit(CELLS_FAILED)

