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

import torch
import yaml
from rich.markup import escape

from unlearnlab.bench.cache import ModelCache, check_cache_dir, default_cache_dir
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.outdir import RunFolder
from unlearnlab.bench.plan import resolve_device
from unlearnlab.bench.plots import write_plots
from unlearnlab.bench.progress import ProgressLines
from unlearnlab.bench.store import ResultStore
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocols import get_protocol, resolve_experiment
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


#: an experiment protocol's function
Experiment = Callable[[ExperimentContext], str]


def draw_plots(store: ResultStore, out: Path, log: Log) -> None:
    """Draw a run's figures into ``out/plots``; a plotting failure is reported, never loses the results."""
    try:
        write_plots(store, out)
    except Exception as err:  # the tables and rows are already saved
        log(f"[yellow]plots not drawn[/yellow] — {type(err).__name__}: {escape(str(err))}")


def run_experiment(config: RunConfig, progress: Progress | None = None, log: Log = print) -> str:
    """Run (or resume) the experiment protocol of ``config``; returns (and writes to ``table.md``) its table.

    ``config.seeds`` replaces the protocol's seeds; the experiment stores its rows in ``results.sqlite`` under
    the protocol's label and skips rows already complete. Nothing is written when the function cannot be
    resolved or the device does not exist.
    """
    spec = get_protocol(str(config.protocol))
    if not spec.is_experiment:
        raise UnlearnlabError(f"Protocol {spec.name!r} is a grid protocol: use run_grid().")
    sized = spec.sized(config.quick)
    fn = resolve_experiment(sized.experiment)
    device = resolve_device(config.device)
    cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    check_cache_dir(cache_root)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    label = spec.label(config.quick)
    with RunFolder(out, f"unlearnlab run --protocol {spec.name}") as folder, ResultStore(out) as store:
        folder.keep()  # an experiment writes rows as it goes; a failure leaves them for the next run

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

        atomic_write_text(out / "config.yaml", yaml.safe_dump(
            {"protocol": spec.name, "quick": config.quick, "seeds": list(config.seeds), "out": config.out,
             "device": str(device), "experiment": sized.experiment, "resolved_protocol": label,
             "unlearnlab": __version__}, sort_keys=False))
        cache = ModelCache(cache_root, config.cache, say)
        say(f"experiment {sized.experiment} · protocol {label} · seeds {', '.join(map(str, config.seeds))}")
        ctx = ExperimentContext(out=out, quick=config.quick, seeds=tuple(config.seeds), store=store, cache=cache,
                                device=device, protocol=label, log=say, progress=tick)
        markdown = fn(ctx)
        draw_plots(store, out, say)
        if not isinstance(markdown, str):
            raise UnlearnlabError(f"Experiment {sized.experiment} returned {type(markdown).__name__}, not a "
                                  "Markdown table (str).")
        atomic_write_text(out / "table.md", markdown)
        say(f"saved {out}/table.md, results.sqlite and run.log")
    return markdown
