"""``unlearnlab tune``: Optuna search of a method's hyperparameters, selected on D_val (docs/tuning.md); with
``--protocol NAME [--all-methods]``, the search that selects a protocol's committed values (docs/protocols.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from unlearnlab.bench.config import parse_methods, parse_seeds, parse_yaml
from unlearnlab.bench.protocol_tuning import OUTPUT, tune_protocol
from unlearnlab.bench.tune import load_space
from unlearnlab.bench.tune import tune as run_tune
from unlearnlab.cli.common import app, console, echo, guard
from unlearnlab.distributed.serve import single_process_only
from unlearnlab.errors import UnlearnlabError


@app.command("tune")
def tune(
    method: Annotated[str | None, typer.Option(help="Method to tune (see `unlearnlab methods`); with --protocol, "
                                                    "a comma-separated list of its methods.")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name (see `unlearnlab datasets`).")] = "digits",
    model: Annotated[str, typer.Option(help="Model name (see `unlearnlab models`).")] = "mlp",
    forget: Annotated[str, typer.Option(help="random:0.1 | class:3 | indices:FILE.npy")] = "random:0.1",
    seeds: Annotated[str, typer.Option(help="Seeds every trial runs on, e.g. '1,2,3' or '1-5'.")] = "1,2,3",
    trials: Annotated[int, typer.Option(help="Trials to add to the study in this call.")] = 20,
    out: Annotated[str, typer.Option(help="Output folder (trials.csv, best.yaml, plots, tune.sqlite).")]
    = "runs/tune",
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage: an RDB URL (postgresql://…, mysql://…) shared by many workers, or an SQLite "
             "file path. Default: OUT/tune.sqlite.")] = None,
    study_name: Annotated[str | None, typer.Option(help="Study name (default: from task, method, split).")]
    = None,
    space: Annotated[Path | None, typer.Option(
        help="YAML search space: {key: {low: …, high: …, log: true}} or {key: [choices]}.")] = None,
    select_on: Annotated[str, typer.Option(
        help="val (default: D_val stands in for D_test) | test (compatibility with papers; recorded).")] = "val",
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE hyperparameter fixed in all trials.")]
    = None,
    sampler_seed: Annotated[int, typer.Option(help="Seed of the TPE sampler.")] = 0,
    profile: Annotated[str, typer.Option(help="Hyperparameter profile: default | reference.")] = "default",
    root: Annotated[str | None, typer.Option(help="Folder holding the dataset files.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, … (default: CUDA when present).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the original/retrain recipe's epochs.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Retrain original/retrained models.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (>= 1).", min=1)] = None,
    protocol: Annotated[str | None, typer.Option(
        help="Tune with a protocol's dataset, model, forget set, recipe, budgets and primary MIA; writes "
             f"OUT/{OUTPUT}, the protocol's committed values (docs/protocols.md).")] = None,
    all_methods: Annotated[bool, typer.Option("--all-methods", help="With --protocol: every method of it.")]
    = False,
) -> None:
    """Search a method's hyperparameters (Optuna TPE) for the lowest Avg.Gap to Retrain on D_val; resumable."""
    if threads:
        torch.set_num_threads(threads)
    if protocol is not None or all_methods:
        _tune_protocol(protocol, method, all_methods, seeds, trials, out, device, root)
        return
    with guard(out):
        single_process_only("unlearnlab tune")
        if method is None:
            raise UnlearnlabError("--method is required (or --protocol NAME --all-methods).")
        fixed = {}
        for item in set_ or []:
            lhs, sep, rhs = item.partition("=")
            if not sep or not lhs.strip():
                raise UnlearnlabError(f"--set {item!r}: use KEY=VALUE, e.g. --set epochs=5.")
            fixed[lhs.strip()] = parse_yaml(rhs, f"--set {item!r}: the value")
        result = run_tune(
            dataset, model, forget, method, parse_seeds(seeds), trials, out=out, storage=storage,
            study_name=study_name, space=load_space(space) if space else None, hparams=fixed,
            select_on=select_on, sampler_seed=sampler_seed, profile=profile, root=root, device=device,
            recipe={"epochs": epochs} if epochs else None, cache=not no_cache, log=console.print,
        )
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    echo(f"{result.method}: {params} (Avg.Gap on D_{result.select_on} {result.best_value:.3f}, "
         f"{len(result.trials)} trials)")
    if result.compat:
        console.print(f"[yellow]compat: {', '.join(result.compat)} — selected on the test split.[/yellow]")
    console.print(f"Saved {out}/trials.csv, best.yaml (run it: unlearnlab run -c {out}/best.yaml), tune.md and "
                  "sensitivity plots.")



def _tune_protocol(protocol: str | None, method: str | None, all_methods: bool, seeds: str, trials: int, out: str,
                   device: str | None, root: str | None) -> None:
    """``unlearnlab tune --protocol NAME (--all-methods | --method M[,M…])``."""
    with guard(out):
        single_process_only("unlearnlab tune")
        if protocol is None:
            raise UnlearnlabError("--all-methods needs --protocol NAME (see `unlearnlab protocols`).")
        if all_methods == (method is not None):
            raise UnlearnlabError("With --protocol, give --all-methods or --method M[,M...], not both or neither.")
        document = tune_protocol(protocol, trials, parse_seeds(seeds), out,
                                 methods=None if all_methods else parse_methods(method), device=device, root=root,
                                 log=console.print)
    for key, values in document["protocols"].items():
        for name, params in values.items():
            echo(f"{key} · {name}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    console.print(f"Saved {out}/{OUTPUT}: copy its `protocols` entry into "
                  "src/unlearnlab/protocol_data/fmnist_tuned.yaml to commit the values.")
