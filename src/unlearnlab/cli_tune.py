"""``unlearnlab tune`` (Optuna search on D_val) and ``unlearnlab plots`` (trade-off figures of a run folder).

Registered on :data:`unlearnlab.cli.app` when imported (``cli.py`` imports this module at its end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unlearnlab.bench.config import _yaml, parse_seeds
from unlearnlab.cli import _fail, app, console, out_console
from unlearnlab.errors import UnlearnlabError


def tune(
    method: Annotated[str, typer.Option(help="Method to tune (see `unlearnlab methods`).")],
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
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Search a method's hyperparameters (Optuna TPE) for the lowest Avg.Gap to Retrain on D_val; resumable."""
    import torch

    from unlearnlab.bench.tune import load_space
    from unlearnlab.bench.tune import tune as run_tune

    if threads:
        torch.set_num_threads(threads)
    try:
        fixed = {}
        for item in set_ or []:
            lhs, sep, rhs = item.partition("=")
            if not sep or not lhs.strip():
                raise UnlearnlabError(f"--set {item!r}: use KEY=VALUE, e.g. --set epochs=5.")
            fixed[lhs.strip()] = _yaml(rhs)
        result = run_tune(
            dataset, model, forget, method, parse_seeds(seeds), trials, out=out, storage=storage,
            study_name=study_name, space=load_space(space) if space else None, hparams=fixed,
            select_on=select_on, sampler_seed=sampler_seed, profile=profile, root=root, device=device,
            recipe={"epochs": epochs} if epochs else None, cache=not no_cache, log=console.print,
        )
    except UnlearnlabError as err:
        _fail(err)
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    out_console.print(f"{result.method}: {params} (Avg.Gap on D_{result.select_on} {result.best_value:.3f}, "
                      f"{len(result.trials)} trials)", markup=False, highlight=False)
    if result.compat:
        console.print(f"[yellow]compat: {', '.join(result.compat)} — selected on the test split.[/yellow]")
    console.print(f"Saved {out}/trials.csv, best.yaml (run it: unlearnlab run -c {out}/best.yaml), tune.md and "
                  "sensitivity plots.")


def plots(run_dir: Annotated[Path, typer.Argument(help="The --out folder of `unlearnlab run`.")],
          out: Annotated[Path | None, typer.Option(help="Folder for the figures (default: RUN_DIR).")] = None) -> None:
    """Draw the unlearning–utility trade-off (UA gap vs TA, Pareto front) per protocol, as PNG and PDF."""
    from unlearnlab.bench.plots import write_plots
    from unlearnlab.bench.store import FILENAME, ResultStore

    if not (run_dir / FILENAME).exists():
        _fail(UnlearnlabError(f"No {FILENAME} in {run_dir}: point to the --out folder of `unlearnlab run`."))
    try:
        with ResultStore(run_dir) as store:
            paths = write_plots(store, out or run_dir)
    except UnlearnlabError as err:
        _fail(err)
    if not paths:
        console.print("No group with a finished Retrain and another method: nothing to plot.")
    for path in paths:
        out_console.print(str(path), markup=False, highlight=False)


app.command("tune")(tune)
app.command("plots")(plots)
