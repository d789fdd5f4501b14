"""Running an experiment protocol: resolve its function, give it an :class:`ExperimentContext`, save its table.

Experiment protocols (MinNorm-OG's studies, certified budget curves) are not grids: each is a function
``run(ctx: ExperimentContext) -> str`` (:mod:`unlearnlab.experiments`) that fills the results store through
:mod:`unlearnlab.bench.cells` and returns its Markdown table. The output folder is held as in a grid run
(:class:`~unlearnlab.bench.outdir.RunFolder`: lock, ``run.log``, clear write errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.markup import escape

from unlearnlab.bench.cache import ModelCache, check_cache_dir, default_cache_dir
from unlearnlab.bench.config import DEFAULT_METHODS, RunConfig
from unlearnlab.bench.outdir import RunFolder
from unlearnlab.bench.plan import resolve_device
from unlearnlab.bench.plots import write_plots
from unlearnlab.bench.progress import ProgressLines
from unlearnlab.bench.store import ResultStore
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocols import Protocol, get_protocol, resolve_experiment
from unlearnlab.utils import atomic_write_text
from unlearnlab.version import __version__

Progress = Callable[[str, float], None]
Log = Callable[[str], None]


@dataclass
class ExperimentContext:
    """What an experiment function receives (re-exported by :mod:`unlearnlab.experiments`)."""

    out: Path
    quick: bool
    seeds: tuple[int, ...]
    store: ResultStore
    cache: ModelCache
    device: torch.device
    protocol: str
    log: Log = print
    progress: Progress = field(default=lambda label, fraction: None)
    #: the protocol's forget spec (e.g. ``"class:3"`` for a member of a ``…-class<c>`` family), if it has one
    forget: str | None = None
    #: where the dataset files are (``--root``; None: the default places)
    root: str | None = None
    #: the methods to run (the protocol's, or the user's subset) when the protocol accepts ``methods``
    methods: tuple[str, ...] = ()
    #: ``--set`` values ({name: {key: value}}) when the protocol accepts ``hparams``
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the user's original model file (``--original``) when the protocol accepts it
    original: str | None = None


#: an experiment protocol's function
Experiment = Callable[[ExperimentContext], str]


def draw_plots(store: ResultStore, out: Path, log: Log) -> None:
    """Draw a run's figures into ``out/plots``; a plotting failure is reported, never loses the results."""
    try:
        write_plots(store, out)
    except Exception as err:  # the tables and rows are already saved
        log(f"[yellow]plots not drawn[/yellow] — {type(err).__name__}: {escape(str(err))}")


def experiment_options(spec: Protocol, config: RunConfig) -> dict[str, Any]:
    """The ``methods``, ``hparams`` and ``original`` of ``config`` for an experiment protocol (sized), each
    refused unless the protocol accepts it; ``methods`` must be among the protocol's (default: all of them)."""
    given = {"methods": config.methods != DEFAULT_METHODS, "hparams": bool(config.hparams),
             "original": config.original is not None}
    refused = [name for name, set_ in given.items() if set_ and name not in spec.accepts]
    if refused:
        raise UnlearnlabError(f"{', '.join(refused)}: protocol {spec.name!r} does not take them (it takes "
                              f"{', '.join(spec.accepts) or 'none of methods, hparams, original'}).")
    if "methods" not in spec.accepts:
        return {}
    methods = tuple(config.methods) if given["methods"] else spec.methods
    unknown = [m for m in methods if m not in spec.methods]
    if unknown:
        raise UnlearnlabError(f"{', '.join(unknown)}: not a method of protocol {spec.name!r}; its methods are "
                              f"{', '.join(spec.methods)}.")
    return {"methods": methods, "hparams": {k: dict(v) for k, v in config.hparams.items()},
            "original": config.original}


def run_experiment(config: RunConfig, progress: Progress | None = None, log: Log = print) -> str:
    """Run (or resume) the experiment protocol of ``config``; returns (and writes to ``table.md``) its table.

    ``config.seeds`` replaces the protocol's seeds; the experiment stores its rows in ``results.sqlite`` under
    the protocol's label and skips rows already complete. Nothing is written when the function cannot be
    resolved or the device does not exist, nor (the folder is put back as it was) when the experiment fails
    before it started a row.
    """
    spec = get_protocol(str(config.protocol))
    if not spec.is_experiment:
        raise UnlearnlabError(f"Protocol {spec.name!r} is a grid protocol: use run_grid().")
    sized = spec.sized(config.quick)
    options = experiment_options(sized, config)
    fn = resolve_experiment(sized.experiment)
    device = resolve_device(config.device)
    cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    check_cache_dir(cache_root)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    label = spec.label(config.quick)
    with RunFolder(out, f"unlearnlab run --protocol {spec.name}") as folder, ResultStore(out) as store:

        def say(text: str) -> None:
            log(text)
            folder.log(text)

        lines = ProgressLines(folder.log)
        for note in folder.notes():
            say(note)

        def tick(what: str, fraction: float) -> None:
            lines(what, fraction)
            if progress is not None:
                progress(what, fraction)

        saved = {"protocol": spec.name, "quick": config.quick, "seeds": list(config.seeds), "out": config.out,
                 "device": str(device), "experiment": sized.experiment, "resolved_protocol": label,
                 "unlearnlab": __version__}
        # what `unlearnlab report` needs to re-read the same rows (each only when given)
        saved |= {k: v for k, v in {"root": config.root, "cache_dir": config.cache_dir,
                                    "methods": list(options.get("methods", ())) or None,
                                    "hparams": options.get("hparams") or None,
                                    "original": options.get("original")}.items() if v is not None}
        atomic_write_text(out / "config.yaml", yaml.safe_dump(saved, sort_keys=False))
        cache = ModelCache(cache_root, config.cache, say)
        say(f"experiment {sized.experiment} · protocol {label} · seeds {', '.join(map(str, config.seeds))}")
        ctx = ExperimentContext(out=out, quick=config.quick, seeds=tuple(config.seeds), store=store, cache=cache,
                                device=device, protocol=label, log=say, progress=tick, forget=sized.forget,
                                root=config.root, **options)
        try:
            markdown = fn(ctx)
        finally:
            if store.rows():  # rows exist: a failure leaves them (and the folder) for the next run
                folder.keep()
        draw_plots(store, out, say)
        if not isinstance(markdown, str):
            raise UnlearnlabError(f"Experiment {sized.experiment} returned {type(markdown).__name__}, not a "
                                  "Markdown table (str).")
        atomic_write_text(out / "table.md", markdown)
        say(f"saved {out}/table.md, results.sqlite and run.log")
    return markdown
