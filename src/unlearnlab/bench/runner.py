"""Run a benchmark grid: original and retrained models from the cache, methods × seeds, results in SQLite.

For each seed s: the task (forget set sampled with ``RandomState(s − 1)``), the original model (one per data
split, trained once with seed 1 and cached; or one per seed with ``original_per_seed``), the retrained model R_s
(fresh init with seed s, the original recipe on D_r, cached), the noise-floor retrain R'_s (same D_r, independent
seeds; scored against R_s like a method), then every method run on a copy of the original and scored against
R_s. With ``ulira_shadows`` K, the K U-LiRA shadow models are trained (or loaded) once before the first seed and
every cell of every seed is attacked with them (:mod:`unlearnlab.bench.ulira`). A finished
cell (done or diverged) is never run again; an interrupted or failed one is re-run; a method error becomes the
row's status and the grid goes on (:mod:`unlearnlab.bench.cells`).

The driver (this process) holds the output folder (:class:`~unlearnlab.bench.outdir.RunFolder`: a lock,
``run.log``), trains or loads the originals and retrains, starts each cell's row, hands the cell's work
(:class:`~unlearnlab.bench.classification.ClassificationCell`) to an executor (:mod:`unlearnlab.bench.
executors`) and finishes the row when the outcome arrives: workers never touch the results store. Before any
training it says how much work there is (cells to run, models to train) and, for a resumed run, what it skips;
at the end, how many rows are done, diverged or failed and where the outputs are (:class:`GridStatus`).
Models that come back from a cell (certified ones always, every one with ``save_models``) are saved to
``OUT/models/<method>-seed<s>.pt`` (checksummed, certificate next to it) before the row is finished; a cell's
health warnings are logged and kept in its row's stats.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.markup import escape

from unlearnlab.bench.cache import ModelCache, save_checkpoint
from unlearnlab.bench.cells import Outcome, Row, Scores, attempt, finish, start
from unlearnlab.bench.classification import RETRAIN_META_KEYS, ClassificationCell, clear_task_cache
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.executors import make_executor, resolve
from unlearnlab.bench.experiment import draw_plots
from unlearnlab.bench.forget_quality import forget_quality, retrain_factory
from unlearnlab.bench.outdir import LOG_NAME, RunFolder
from unlearnlab.bench.plan import NOISE_FLOOR, NOISE_FLOOR_OFFSET, Plan, plan
from unlearnlab.bench.progress import GridClock, ProgressLines
from unlearnlab.bench.store import FILENAME, ResultStore
from unlearnlab.bench.tables import write_reports
from unlearnlab.bench.trained import (
    model_cache,
    noise_floor_model,
    original_identity,
    original_model,
    original_seed,
    retrain_identity,
    retrained_model,
)
from unlearnlab.bench.ulira import reference_for, shadow_gaussians, shadow_identity
from unlearnlab.data.datasets import load_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask, make_task, plan_split
from unlearnlab.evaluation import EvalOptions, Evaluation, evaluate
from unlearnlab.metrics import METRIC_DEFINITIONS
from unlearnlab.utils import atomic_write_text, environment
from unlearnlab.version import __version__

Progress = Callable[[str, float], None]
Log = Callable[[str], None]


@dataclass
class GridStatus:
    """Where a grid run stands; filled as it goes, so a caller can report it even after an interrupt."""

    #: cells of the grid (methods × seeds)
    total: int = 0
    #: rows complete (done or diverged) when the run started, then when it ended
    complete: int = 0
    #: status of every row of the grid at the end of the run (``done``, ``diverged``, ``failed``, ``running``)
    counts: dict[str, int] = field(default_factory=dict)
    #: the files the run wrote, by name
    outputs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


def run_grid(config: RunConfig, progress: Progress | None = None, log: Log = print,
             cell_done: Callable[[], None] | None = None, status: GridStatus | None = None) -> str:
    """Run (or resume) the grid of ``config``; returns the Markdown table (also written to the out folder).

    ``progress(label, fraction)`` follows the current training (and, with the serial executor, method) run;
    ``log(text)`` receives every message (rich markup); ``cell_done()`` is called once per grid cell as it
    finishes, now or in an earlier run; ``status`` is filled as the run goes. ``config.executor`` /
    ``config.workers`` choose where cells run; the rows are the same whatever they are. Everything logged, and
    the progress as lines, also goes to ``OUT/run.log``.
    """
    p = plan(config)
    status = status if status is not None else GridStatus()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    with RunFolder(out) as folder, ResultStore(out) as store:

        def say(text: str) -> None:
            log(text)
            folder.log(text)

        lines = ProgressLines(folder.log)

        def tick(label: str, fraction: float) -> None:
            lines(label, fraction)
            if progress is not None:
                progress(label, fraction)

        for note in folder.notes():
            say(note)
        cache = model_cache(p, say)
        clock = _announce(p, store, cache, status, say)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(
            {**config.to_dict(), "resolved_recipe": p.recipe.to_dict(), "resolved_hparams": p.hparams,
             **({"resolved_protocol": p.protocol} if p.protocol_spec is not None else {}),
             **({"resolved_original_sha256": p.original_sha256} if p.original_sha256 else {}),
             "unlearnlab": __version__}, sort_keys=False))
        _run_cells(p, store, cache, folder, status, clock, tick, say, cell_done)
        if config.forget_quality_n:
            _forget_quality_pass(store, p, cache, tick, say)
        markdown = write_reports(store, out)
        draw_plots(store, out, say)
        _summarise(p, store, status, say)
    return markdown


def _announce(p: Plan, store: ResultStore, cache: ModelCache, status: GridStatus, say: Log) -> GridClock:
    """Say what the run will do (cells to run, models to train) and, when resuming, what it skips."""
    config = p.config
    rows = p.rows()
    found = Counter((store.get(row.run_key) or {}).get("status", "new") for row in rows)
    complete = found["done"] + found["diverged"]
    status.total, status.complete = len(rows), complete
    dataset = load_dataset(config.dataset, config.root)
    spec = ForgetSpec.parse(config.forget)
    splits = {seed: plan_split(dataset, spec, seed) for seed in config.seeds}
    originals = [] if config.original else list({cache.path(i): i for i in  # one per data split or seed
                                                  (original_identity(p, s, original_seed(p, seed))
                                                   for seed, s in splits.items())}.values())
    retrains = [retrain_identity(p, s, seed) for seed, s in splits.items()]
    if config.noise_floor:
        retrains += [retrain_identity(p, s, NOISE_FLOOR_OFFSET + seed) for seed, s in splits.items()]
    k = config.ulira_shadows or 0
    some_split = next(iter(splits.values()))
    shadows = [shadow_identity(p, some_split, j, k) for j in range(k)]
    models = (*originals, *retrains, *shadows)
    cached = sum(cache.is_cached(identity) for identity in models)
    executor, workers = resolve(config.executor, config.workers)
    where = executor + (f" × {workers}" if executor != "serial" and workers else "")
    first = f"your original {config.original} (sha256 {str(p.original_sha256)[:12]}…)" if config.original else \
        f"{len(originals)} original"
    extra = f" + {k} U-LiRA shadows" if k else ""
    say(f"work: {len(rows)} cells ({len(p.methods)} method(s) × {len(config.seeds)} seed(s)), "
        f"{len(rows) - complete} to run · models: {first} + {len(retrains)} retrained{extra}, "
        f"{len(models) - cached} to train ({cached} cached) · executor {where}")
    if complete or found["running"] or found["failed"]:
        say(f"resuming {config.out}: skipping {complete} complete rows ({found['done']} done, "
            f"{found['diverged']} diverged); re-running {found['running']} interrupted and {found['failed']} "
            "failed rows")
    if config.save_models:
        unsaved = sum(1 for row in rows if (store.get(row.run_key) or {}).get("status") == "done"
                      and not model_file(p, row.method, row.seed).exists())
        if unsaved:
            say(f"[yellow]--save-models: {unsaved} done row(s) ran without it and have no saved model[/yellow]; "
                "run them again in a new --out to save their models")
    return GridClock(len(rows), skipped=complete)


def model_file(p: Plan, method: str, seed: int) -> Path:
    """Where a cell's unlearned model is saved: ``OUT/models/<method>-seed<s>.pt``."""
    return Path(p.config.out) / "models" / f"{method}-seed{seed}.pt"


def _run_cells(p: Plan, store: ResultStore, cache: ModelCache, folder: RunFolder, status: GridStatus,
               clock: GridClock, tick: Progress, say: Log, cell_done: Callable[[], None] | None) -> None:
    """Train or load the models of each seed, dispatch the seed's pending cells, record their outcomes."""
    config = p.config
    env = environment() | {"device": str(p.device)}
    with make_executor(config.executor, config.workers, str(p.device), config.threads,
                       config.ray_address) as executor:

        def arrived(block: bool) -> None:
            for row, outcome in executor.collect(block):
                _record(store, p, row, outcome, say)
                say(f"{escape(row.label)}: {outcome.status} · {clock.tick()}")
                if cell_done is not None:
                    cell_done()

        try:
            gaussians = None
            for seed in config.seeds:
                task = make_task(config.dataset, config.forget, seed, device=p.device, root=config.root)
                pending = [row for row in (p.row(m, seed, task.split_hash) for m in p.methods)
                           if not store.is_complete(row.run_key)]
                for _ in range(len(p.methods) - len(pending)):
                    if cell_done is not None:
                        cell_done()
                if not pending:
                    continue
                if config.ulira_shadows and gaussians is None:
                    gaussians = shadow_gaussians(p, cache, task, tick)
                o_seed = original_seed(p, seed)
                _, original_meta = original_model(cache, task, p, tick, o_seed)
                original = (Path(config.original) if config.original else
                            cache.path(original_identity(p, task, o_seed)), original_meta["sha256"])
                retrained, meta = retrained_model(cache, task, p, seed, tick)
                reference = evaluate(retrained, task, primary_mia=config.primary_mia,
                                     options=EvalOptions(mias=(config.primary_mia,), test_half=config.test_half))
                options = p.eval_options(None if gaussians is None else reference_for(gaussians, p, task, retrained))
                del retrained
                models = {"retrain": (cache.path(retrain_identity(p, task, seed)), meta)}
                if any(row.method == NOISE_FLOOR for row in pending):
                    _, floor_meta = noise_floor_model(cache, task, p, seed, tick)
                    models[NOISE_FLOOR] = (cache.path(retrain_identity(p, task, NOISE_FLOOR_OFFSET + seed)),
                                           floor_meta)
                for row in pending:
                    path, trained_meta = models.get(row.method, models["retrain"])
                    work = _work(p, task, row, original, (path, trained_meta["sha256"]), trained_meta, reference,
                                 options)
                    folder.keep()  # a result row exists from here on: a failure no longer empties the folder
                    start(store, row, env)
                    executor.submit(row, work, tick, task)
                    arrived(block=False)
            arrived(block=True)
        finally:
            clear_task_cache()


def _work(p: Plan, task: ForgetTask, row: Row, original: tuple[Path, str], retrain: tuple[Path, str],
          meta: dict[str, Any], reference: Evaluation, options: EvalOptions) -> ClassificationCell:
    """The picklable work of one cell (no store, no output folder); checkpoints as (path, SHA-256)."""
    return ClassificationCell(
        method=row.method, seed=row.seed, hparams=dict(p.hparams[row.method]), dataset=p.config.dataset,
        model=p.config.model, forget=p.config.forget, root=p.config.root, device=str(p.device),
        primary_mia=p.config.primary_mia, split_hash=task.split_hash, original=str(original[0]),
        retrain=str(retrain[0]), original_sha256=original[1], retrain_sha256=retrain[1],
        retrain_meta={k: meta.get(k) for k in RETRAIN_META_KEYS}, options=options,
        reference=dict(reference.metrics), reference_definitions=dict(reference.definitions),
        save_model=p.config.save_models)


def _record(store: ResultStore, p: Plan, row: Row, outcome: Outcome, say: Log) -> None:
    """Finish the row of an arrived outcome: a returned model is saved first (with its certificate, if any), and
    the cell's health warnings are logged (they stay in the row's stats)."""
    artifact = outcome.artifact
    if outcome.status == "done" and artifact is not None:
        try:
            outcome = _save_model(p, row, outcome, artifact)
        except Exception as err:
            message = f"saving the unlearned model failed: {type(err).__name__}: {err}"
            outcome = Outcome("failed", error=message, message=message)
    for warning in outcome.stats.get("warnings", ()):
        say(f"[yellow]{escape(row.label)}: warning[/yellow] — {escape(str(warning))}")
    finish(store, row, outcome, say)


def _save_model(p: Plan, row: Row, outcome: Outcome, artifact: dict[str, Any]) -> Outcome:
    """Save ``artifact``'s weights to :func:`model_file` (atomic, checksummed) and its certificate next to them;
    the row's stats name the files."""
    path = model_file(p, row.method, row.seed)
    meta = {"method": row.method, "seed": row.seed, "hparams": p.hparams[row.method], "split_hash": row.split_hash,
            "model": p.config.model, "dataset": p.config.dataset, "forget": p.config.forget,
            **({"original_sha256": p.original_sha256} if p.original_sha256 else {})}
    digest = save_checkpoint(path, artifact["state_dict"], meta)
    stats = {**outcome.stats, "model_file": {"file": str(path), "sha256": digest}}
    cert = artifact.get("certificate")
    if cert is not None:
        stats["certificate"] = {"epsilon": cert.epsilon, "delta": cert.delta, "certified": cert.certified,
                                "file": str(cert.save(path))}
    return Outcome("done", outcome.metrics, outcome.definitions, stats)


def _forget_quality_pass(store: ResultStore, p: Plan, cache: ModelCache, tick: Progress, say: Log) -> None:
    """Add the NeurIPS 2023 forget score to every done row of the first seed that lacks it (resumable).

    N unlearned models (seeds s..s+N−1 from the one original) against N retrained models (seeds s..s+N−1, the
    grid's retrain included, served by the cache), all on the first seed's forget set; the row gains
    ``forget_score_eps`` and ``final_score`` (definitions name N and ε̄) and the full summary in its stats. A
    score whose runs diverge or fail is logged and skipped; the row keeps its status.
    """
    n = p.config.forget_quality_n
    seed = p.config.seeds[0]
    task = make_task(p.config.dataset, p.config.forget, seed, device=p.device, root=p.config.root)
    original, _ = original_model(cache, task, p, tick, original_seed(p, seed))
    retrain_fn = retrain_factory(cache, p, task, tick)
    for method in (m for m in p.methods if m != NOISE_FLOOR):  # the noise floor is a model, not a method to rerun
        key = p.row(method, seed).run_key
        row = store.get(key)
        if row is None or row["status"] != "done" or "forget_score_eps" in row["metrics"]:
            continue

        def work(method: str = method, row: dict[str, Any] = row) -> Scores:
            fq = forget_quality(task, original, method, p.hparams[method], n, retrain_fn, seed0=seed,
                                progress=tick)
            definition = f"{METRIC_DEFINITIONS['forget_score_eps']} [N={fq['n_models']}, eps_bar={fq['eps_bar']}]"
            return Scores({**row["metrics"], "forget_score_eps": fq["F"], "final_score": fq["final_score"]},
                          {**row["definitions"], "forget_score_eps": definition,
                           "final_score": METRIC_DEFINITIONS["final_score"]},
                          {**row["stats"], "forget_quality": fq})

        outcome = attempt(work)
        if outcome.status == "done":
            store.finish(key, "done", outcome.metrics, outcome.definitions, outcome.stats)
        else:
            say(f"[yellow]{method}: forget quality skipped, a run {outcome.status}[/yellow] — "
                f"{escape(str(outcome.message))}")


def complete_rows(p: Plan) -> int:
    """How many rows of the grid are complete (done or diverged) in its results store, e.g. after an interrupt."""
    path = Path(p.config.out) / FILENAME
    if not path.exists():
        return 0
    with ResultStore(path) as store:
        return sum(store.is_complete(row.run_key) for row in p.rows())


def _summarise(p: Plan, store: ResultStore, status: GridStatus, say: Log) -> None:
    """Count the grid's rows by status and say where the outputs are."""
    found = Counter((store.get(row.run_key) or {}).get("status", "missing") for row in p.rows())
    status.counts = dict(found)
    status.complete = found["done"] + found["diverged"]
    out = Path(p.config.out)
    status.outputs = [name for name in ("table.md", "table.csv", "table.tex", FILENAME, "config.yaml", LOG_NAME,
                                        "plots", "models") if (out / name).exists()]
    say(f"rows: {found['done']} done, {found['diverged']} diverged, {found['failed']} failed (of {status.total})"
        f" · outputs in {out}: {', '.join(status.outputs)}")
