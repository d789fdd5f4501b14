"""Run a benchmark grid: original and retrained models from the cache, methods × seeds, results in SQLite.

For each seed s: the task (forget set sampled with ``RandomState(s − 1)``), the original model (one per data
split, trained once with seed 1 and cached), the retrained model R_s (fresh init with seed s, the original
recipe on D_r, cached), then every method run on a copy of the original and scored against R_s. A finished
cell (done or diverged) is never run again; an interrupted one is re-run; a method error becomes the row's
status and the grid goes on.

The driver (this process) trains or loads the originals and retrains, starts each cell's row, hands the cell to
an executor (:mod:`unlearnlab.bench.executors`: ``serial``, a ``local`` process pool or ``ray``) as a small
picklable spec, and finishes the row when the result arrives: workers never touch the results store.

A config naming a protocol (:mod:`unlearnlab.protocols`) must keep the protocol's pinned keys; its rows store
the protocol's label (``"<name> v<version>"``, ``+ " quick"``) and its aggregation (std ddof, extra gap
variants) is applied to the tables. Experiment protocols run through :func:`run_experiment`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.markup import escape
from torch import nn

from unlearnlab import __version__
from unlearnlab.bench.cache import ModelCache, default_cache_dir, save_checkpoint
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.executors import RETRAIN_META_KEYS, CellSpec, check, make_executor
from unlearnlab.bench.forget_quality import forget_quality, retrain_factory
from unlearnlab.bench.report import REFERENCE, render_all
from unlearnlab.bench.report import write_reports as report_tables
from unlearnlab.bench.store import ResultStore, config_hash, run_key
from unlearnlab.data.datasets import load_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask, make_task
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.evaluation import PRIMARY_MIAS, evaluate
from unlearnlab.methods import get_method
from unlearnlab.metrics import METRIC_DEFINITIONS
from unlearnlab.metrics.gap import avg_gap_means, gap_means_ua_ra_ta, mean_metric_std
from unlearnlab.models import create
from unlearnlab.models.registry import check_output_size, list_models
from unlearnlab.protocols import Protocol, get_protocol, protocol_of_label, resolve_experiment
from unlearnlab.training import Recipe, train
from unlearnlab.utils import atomic_write_text, default_device, environment

Progress = Callable[[str, float], None]


@dataclass
class Plan:
    """A validated grid, built before anything is written."""

    config: RunConfig
    recipe: Recipe
    #: canonical method names, ``retrain`` (the reference of every gap) first
    methods: tuple[str, ...]
    hparams: dict[str, dict[str, Any]]
    device: torch.device
    task_key: str
    protocol: str
    #: the recipe of the retrained models (the original recipe unless the config sets ``retrain_recipe``)
    retrain_recipe: Recipe | None = None
    #: the named protocol of the config, at the size it runs (``None`` for a custom grid)
    protocol_spec: Protocol | None = field(default=None)


def _check_pinned(config: RunConfig) -> Protocol:
    """The config's protocol; raises when the config changed a key the protocol pins."""
    spec = get_protocol(str(config.protocol))
    if spec.is_experiment:
        raise UnlearnlabError(f"Protocol {spec.name!r} is an experiment, not a grid: run it with "
                              f"`unlearnlab run --protocol {spec.name}` (runner.run_experiment).")
    for key, want in spec.pinned(config.quick).items():
        got = getattr(config, key)
        if key in ("recipe", "retrain_recipe"):
            same = (Recipe.from_dict(got).to_dict() if got else None) == (
                Recipe.from_dict(want).to_dict() if want else None)
        else:
            same = got == want
        if not same:
            raise UnlearnlabError(
                f"Protocol {spec.name!r}{' (quick)' if config.quick else ''} pins {key} = {want!r}; this run "
                f"sets {got!r}. A changed {key} is another protocol: drop --protocol to run a custom grid.")
    return spec.sized(config.quick)


def plan(config: RunConfig) -> Plan:
    """Validate every name and value of ``config``; raise before any file is written."""
    spec = _check_pinned(config) if config.protocol else None
    load_dataset(config.dataset, config.root)
    ForgetSpec.parse(config.forget)
    if config.model not in list_models():
        create(config.model)  # raises the unknown-name error with suggestions
    if config.primary_mia not in PRIMARY_MIAS:
        raise UnlearnlabError(f"primary_mia {config.primary_mia!r}: use one of {', '.join(PRIMARY_MIAS)}.")
    check(config.executor, config.workers)  # e.g. --executor ray without Ray installed
    canonical = {m: get_method(m).name for m in config.methods}  # resolves aliases, rejects unknown names
    methods = tuple(dict.fromkeys(("retrain", *canonical.values())))
    given = {get_method(m).name: v for m, v in config.hparams.items()}
    unknown = set(given) - set(methods)
    if unknown:
        raise UnlearnlabError(f"hparams given for {sorted(unknown)}, which are not in methods {list(config.methods)}.")
    if "retrain" in given:
        raise UnlearnlabError("The benchmark's retrain uses the original model's recipe: set `recipe:` in the "
                              "config (e.g. recipe: {epochs: 30}) instead of hparams for retrain.")
    device = torch.device(config.device) if config.device else default_device()
    task = make_task(config.dataset, config.forget, config.seeds[0], device="cpu", root=config.root)
    base = Recipe.default(task)
    recipe = Recipe.from_dict({**base.to_dict(), **config.recipe}) if config.recipe else base  # validates keys
    retrain_recipe = (Recipe.from_dict({**recipe.to_dict(), **config.retrain_recipe})
                      if config.retrain_recipe else recipe)
    check_output_size(create(config.model, task), task.input_shape, task.num_classes)
    hparams = {m: get_method(m).resolve(given.get(m), config.profile) for m in methods if m != "retrain"}
    hparams["retrain"] = retrain_recipe.to_dict()
    task_key = f"{config.dataset}|{config.model}|{config.forget}|recipe={recipe.hash}|{config.profile}"
    if retrain_recipe != recipe:
        task_key += f"|retrain={retrain_recipe.hash}"
    derived = f"{protocol_name(config.dataset, ForgetSpec.parse(config.forget))} v1"
    protocol = get_protocol(str(config.protocol)).label(config.quick) if spec is not None else derived
    if protocol != derived:  # the cells of two protocols never share a run key (the digits defaults keep theirs)
        task_key = f"{protocol}|{task_key}"
    return Plan(config, recipe, methods, hparams, device, task_key, protocol, retrain_recipe, spec)


def protocol_name(dataset: str, spec: ForgetSpec) -> str:
    """``digits-random10`` for random 10 %, ``digits-class3`` for class 3, else ``<dataset>-<spec>``."""
    percent = None if spec.fraction is None else round(spec.fraction * 100, 6)
    if spec.kind == "random" and percent is not None and percent == int(percent):
        return f"{dataset}-random{int(percent)}"
    if spec.kind == "class":
        return f"{dataset}-class{'-'.join(map(str, spec.classes))}"
    return f"{dataset}-{spec}"


def _recipe(kind: str, p: Plan) -> Recipe:
    return p.recipe if kind == "original" or p.retrain_recipe is None else p.retrain_recipe


def _identity(kind: str, p: Plan, seed: int, data_hash: str) -> dict[str, Any]:
    """The cache identity of an original (kind 'original') or retrained (kind 'retrain') model."""
    return {"kind": kind, "dataset": p.config.dataset, "model": p.config.model,
            "recipe": _recipe(kind, p).to_dict(), "data": data_hash, "seed": seed}


def trained_model(cache: ModelCache, kind: str, task: ForgetTask, p: Plan, seed: int, data_hash: str,
             progress: Progress) -> tuple[nn.Module, dict[str, Any]]:
    """The original (kind 'original', trained on D) or retrained (kind 'retrain', on D_r) model."""
    recipe = _recipe(kind, p)
    identity = _identity(kind, p, seed, data_hash)
    model = create(p.config.model, task, seed=seed, device=p.device)
    data = task.train if kind == "original" else task.retain

    def fit(m: nn.Module) -> dict[str, Any]:
        stats = train(m, data, recipe, seed=seed,
                      progress=lambda done, total: progress(f"training {kind} (seed {seed})", done / total))
        return {"seconds": stats.seconds, "device": str(p.device), **stats.counters.as_dict()}

    meta, _ = cache.get_or_train(identity, model, fit)
    model.eval()
    return model, meta


def run_grid(config: RunConfig, progress: Progress | None = None, log: Callable[[str], None] = print,
             cell_done: Callable[[], None] | None = None) -> str:
    """Run (or resume) the grid of ``config``; returns the Markdown table (also written to the out dir).

    ``progress(label, fraction)`` follows the current training (and, with the serial executor, method) run;
    ``cell_done()`` is called once per grid cell (method × seed) as it finishes, now or in an earlier run.
    ``config.executor`` / ``config.workers`` choose where cells run; the rows are the same whatever they are.
    """
    p = plan(config)
    progress = progress or (lambda label, fraction: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(
        {**config.to_dict(), "resolved_recipe": p.recipe.to_dict(), "resolved_hparams": p.hparams,
         **({"resolved_protocol": p.protocol} if p.protocol_spec is not None else {}),
         "unlearnlab": __version__}, sort_keys=False))
    cache = ModelCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), config.cache)
    env = environment() | {"device": str(p.device)}
    with ResultStore(out) as store, make_executor(config.executor, config.workers, str(p.device), config.threads,
                                                  config.ray_address) as executor:

        def arrived(block: bool) -> None:
            for spec, result in executor.collect(block):
                _record(store, p, spec, result, log)
                if cell_done is not None:
                    cell_done()

        original_path = None
        for seed in config.seeds:
            task = make_task(config.dataset, config.forget, seed, device=p.device, root=config.root)
            if original_path is None:
                trained_model(cache, "original", task, p, 1, task.data_hash, progress)
                original_path = cache.path(_identity("original", p, 1, task.data_hash))
            retrained, rmeta = trained_model(cache, "retrain", task, p, seed, task.split_hash, progress)
            reference = evaluate(retrained, task, primary_mia=config.primary_mia)
            del retrained
            for method in p.methods:
                spec = _cell_spec(p, task, method, seed, original_path,
                                  cache.path(_identity("retrain", p, seed, task.split_hash)), rmeta, reference, store)
                if spec is None:
                    if cell_done is not None:
                        cell_done()
                    continue
                store.start(task_key=p.task_key, protocol=p.protocol, method=method, seed=seed,
                            config=_row_config(p, method), split_hash=task.split_hash, env=env)
                executor.submit(spec, progress, task)
                arrived(block=False)
        arrived(block=True)
        if config.forget_quality_n:
            _forget_quality_pass(store, p, cache, progress, log)
        markdown = write_reports(store, out)
        _plots(store, out, log)
    return markdown


def _plots(store: ResultStore, out: Path, log: Callable[[str], None]) -> None:
    """Draw the run's figures into ``out/plots``; a plotting failure is reported, never loses the results."""
    from unlearnlab.bench.plots import write_plots

    try:
        write_plots(store, out)
    except Exception as err:  # the tables and rows are already saved
        log(f"[yellow]plots not drawn[/yellow] — {type(err).__name__}: {escape(str(err))}")


def _forget_quality_pass(store: ResultStore, p: Plan, cache: ModelCache, progress: Progress,
                         log: Callable[[str], None]) -> None:
    """Add the NeurIPS 2023 forget score to every done row of the first seed that lacks it (resumable).

    N unlearned models (seeds s..s+N−1 from the one original) against N retrained models (seeds s..s+N−1, the
    grid's retrain included, served by the cache), all on the first seed's forget set; the row gains
    ``forget_score_eps`` and ``final_score`` (definitions name N and ε̄) and the full summary in its stats.
    """
    n = p.config.forget_quality_n
    seed = p.config.seeds[0]
    task = make_task(p.config.dataset, p.config.forget, seed, device=p.device, root=p.config.root)
    original, _ = trained_model(cache, "original", task, p, 1, task.data_hash, progress)
    retrain_fn = retrain_factory(cache, p, task, progress)
    for method in p.methods:
        key = run_key(p.task_key, method, config_hash(_row_config(p, method)), seed)
        row = store.get(key)
        if row is None or row["status"] != "done" or "forget_score_eps" in row["metrics"]:
            continue
        try:
            fq = forget_quality(task, original, method, p.hparams[method], n, retrain_fn, seed0=seed,
                                progress=progress)
        except DivergenceError as err:
            log(f"[yellow]{method}: forget quality skipped, a run diverged[/yellow] — {escape(str(err))}")
            continue
        definition = f"{METRIC_DEFINITIONS['forget_score_eps']} [N={fq['n_models']}, eps_bar={fq['eps_bar']}]"
        metrics = {**row["metrics"], "forget_score_eps": fq["F"], "final_score": fq["final_score"]}
        definitions = {**row["definitions"], "forget_score_eps": definition, "final_score": METRIC_DEFINITIONS[
            "final_score"]}
        store.finish(key, "done", metrics, definitions, {**row["stats"], "forget_quality": fq})


def _row_config(p: Plan, method: str) -> dict[str, Any]:
    """The ``config`` column of a cell (its hash is part of the run key)."""
    return {"method": method, "hparams": p.hparams[method], "model": p.config.model,
            "primary_mia": p.config.primary_mia}


def _cell_spec(p: Plan, task: ForgetTask, method: str, seed: int, original: Path, retrain: Path,
               rmeta: dict[str, Any], reference: Any, store: ResultStore) -> CellSpec | None:
    """The picklable spec of one cell (no store, no output folder), or ``None`` when its row is complete."""
    key = run_key(p.task_key, method, config_hash(_row_config(p, method)), seed)
    if store.is_complete(key):
        return None
    return CellSpec(
        run_key=key, method=method, seed=seed, hparams=dict(p.hparams[method]),
        dataset=p.config.dataset, model=p.config.model, forget=p.config.forget, root=p.config.root,
        device=str(p.device), primary_mia=p.config.primary_mia, split_hash=task.split_hash,
        original=str(original), retrain=str(retrain), retrain_meta={k: rmeta.get(k) for k in RETRAIN_META_KEYS},
        reference=dict(reference.metrics), reference_definitions=dict(reference.definitions),
        threads=p.config.threads or 1)


def _record(store: ResultStore, p: Plan, spec: CellSpec, result: dict[str, Any], log: Callable[[str], None]) -> None:
    """Finish the row of an arrived result (one transaction); the driver alone writes the store and files."""
    status, stats, error = result["status"], dict(result["stats"]), result["error"]
    artifact = result.get("artifact")
    if status == "done" and artifact is not None:  # ship the certified model with its verifiable certificate
        try:
            model_path = Path(p.config.out) / "models" / f"{spec.method}-seed{spec.seed}.pt"
            save_checkpoint(model_path, _Weights(artifact["state_dict"]),
                            {"method": spec.method, "seed": spec.seed, "hparams": spec.hparams,
                             "split_hash": spec.split_hash, "model": p.config.model})
            cert = artifact["certificate"]
            path = cert.save(model_path)
            stats["certificate"] = {"epsilon": cert.epsilon, "delta": cert.delta, "file": str(path)}
        except Exception as err:
            status, error = "failed", f"saving the certified model failed: {type(err).__name__}: {err}"
            result = {**result, "message": error}
    if status == "done":
        store.finish(spec.run_key, "done", result["metrics"], result["definitions"], stats)
        return
    store.finish(spec.run_key, status, {}, {}, {}, error=error)
    if status == "diverged":
        log(f"[yellow]{spec.label}: diverged[/yellow] — {escape(str(result['message']))}")
    else:
        log(f"[red]{spec.label}: failed[/red] — {escape(str(result['message']))}")


class _Weights:
    """A state dict that :func:`save_checkpoint` can save like a model."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def _aggregation(label: str) -> tuple[int, tuple[str, ...]]:
    """(std ddof, gap variants) of the protocol behind a row label; defaults for custom grids."""
    spec = protocol_of_label(label)
    return (1, ("avg_gap_matched",)) if spec is None else (spec.std_ddof, spec.gap_variants)


def _num(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.2f}"


def gap_variants_table(rows: Sequence[dict[str, Any]], ddof: int = 1) -> str:
    """The second table of a protocol showing DualOptim's aggregates, for the rows of ONE protocol and task.

    Per method (one config): ``avg_gap_means`` (gap of seed means vs Retrain's seed mean, over UA, RA, TA, MIA),
    ``gap_means_ua_ra_ta`` (DualOptim's "ToW", over UA, RA, TA) and ``mean_metric_std`` (DualOptim's
    "Avg std": mean of the four per-metric stds), all in %, std with ``ddof``.
    """
    done = [r for r in rows if r["status"] == "done"]
    ref = [r["metrics"] for r in done if r["method"] == REFERENCE]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in done:
        groups.setdefault((r["method"], r["config_hash"]), []).append(r["metrics"])
    several = {m for m, _ in groups if sum(1 for k in groups if k[0] == m) > 1}
    titles = ["Method", "avg_gap_means ↓", "gap_means_ua_ra_ta (ToW) ↓", "mean_metric_std (Avg std)", "n"]
    body = []
    for (method, chash), metrics in sorted(groups.items(), key=lambda kv: kv[0][0] != REFERENCE):
        gaps = (avg_gap_means(metrics, ref), gap_means_ua_ra_ta(metrics, ref)) if ref else (math.nan, math.nan)
        label = f"{method} [{chash[:8]}]" if method in several else method
        body.append([label, _num(gaps[0]), _num(gaps[1]), _num(mean_metric_std(metrics, ddof=ddof)),
                     str(len(metrics))])
    caption = (f"Gap variants · {rows[0]['protocol']} · gaps of seed means vs Retrain's seed mean; Avg std = mean "
               f"of the per-metric stds (UA, RA, TA, MIA), ddof = {ddof}")
    return _markdown_table(caption, titles, body)


def forget_quality_table(rows: Sequence[dict[str, Any]]) -> str:
    """The NeurIPS 2023 forget score of the rows that carry it (``--forget-quality N``), one line per method."""
    scored = [r for r in rows if r["status"] == "done" and "forget_score_eps" in r["metrics"]]
    scored.sort(key=lambda r: r["method"] != REFERENCE)
    body = [[r["method"], _num(r["metrics"]["forget_score_eps"]), _num(r["metrics"]["final_score"]),
             str(r["stats"]["forget_quality"]["n_models"]), str(r["stats"]["forget_quality"]["eps_bar"]),
             str(r["seed"])] for r in scored]
    caption = ("Forget quality (forget_score_eps, NeurIPS 2023 scoring) · N unlearned vs N retrained models; "
               "scores are comparable only at equal N; Retrain's row is the best F this N allows, not 1")
    return _markdown_table(caption, ["Method", "F ↑", "final score ↑", "N", "ε̄", "seed"], body)


def _markdown_table(caption: str, titles: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A captioned, column-aligned Markdown table; empty text when there is no row."""
    if not body:
        return ""
    widths = [max(len(line[i]) for line in [titles, *body]) for i in range(len(titles))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([caption, "", line(titles), rule, *map(line, body)]) + "\n"


def render(rows: Sequence[dict[str, Any]], fmt: str = "markdown") -> str:
    """:func:`unlearnlab.bench.report.render_all` with each protocol's std ddof and, in Markdown, the tables
    that go under the main one: gap variants for protocols that show them (``dualoptim``), forget quality."""

    def extras(group: Sequence[dict[str, Any]], ddof: int) -> str:
        parts = []
        if set(_aggregation(group[0]["protocol"])[1]) - {"avg_gap_matched"}:
            parts.append(gap_variants_table(group, ddof))
        parts.append(forget_quality_table(group))
        return "\n".join(p for p in parts if p)

    return render_all(rows, fmt, ddof=lambda group: _aggregation(group[0]["protocol"])[0],  # type: ignore[arg-type]
                      extra_markdown=extras)


def write_reports(store: ResultStore, out_dir: str | Path) -> str:
    """``table.md``, ``table.csv``, ``table.tex`` of every group in ``store`` (protocol-aware :func:`render`)."""
    return report_tables(store, out_dir, render)


def run_experiment(config: RunConfig, progress: Progress | None = None, log: Callable[[str], None] = print) -> str:
    """Run (or resume) an experiment protocol: resolve its function, then call it with an ExperimentContext.

    ``config.seeds`` replaces the protocol's seeds when it differs from the grid default; the experiment stores
    its rows in ``results.sqlite`` under the protocol's label and skips rows already complete. Returns (and
    writes to ``table.md``) its Markdown table. Nothing is written when the function cannot be resolved.
    """
    from unlearnlab.experiments import ExperimentContext

    spec = get_protocol(str(config.protocol))
    if not spec.is_experiment:
        raise UnlearnlabError(f"Protocol {spec.name!r} is a grid protocol: use run_grid().")
    sized = spec.sized(config.quick)
    fn = resolve_experiment(sized.experiment)
    device = torch.device(config.device) if config.device else default_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    label = spec.label(config.quick)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(
        {"protocol": spec.name, "quick": config.quick, "seeds": list(config.seeds), "out": config.out,
         "device": str(device), "experiment": sized.experiment, "resolved_protocol": label,
         "unlearnlab": __version__}, sort_keys=False))
    cache = ModelCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), config.cache)
    with ResultStore(out) as store:
        ctx = ExperimentContext(out=out, quick=config.quick, seeds=tuple(config.seeds), store=store, cache=cache,
                                device=device, protocol=label, log=log,
                                progress=progress or (lambda label, fraction: None))
        markdown = fn(ctx)
        _plots(store, out, log)
    if not isinstance(markdown, str):
        raise UnlearnlabError(f"Experiment {sized.experiment} returned {type(markdown).__name__}, not a "
                              "Markdown table (str).")
    atomic_write_text(out / "table.md", markdown)
    return markdown


def report(out: str | Path, fmt: str = "markdown") -> str:
    """Re-render the tables of a finished (or partial) run directory; ``fmt="all"`` also draws its plots.

    An experiment protocol's tables are its own (Markdown): they are rebuilt by calling the experiment again
    with the run's ``config.yaml``; its rows are all complete, so it only re-reads them (an unfinished run
    continues, as ``unlearnlab run`` would).
    """
    from unlearnlab.bench.plots import write_plots

    path = Path(out)
    if not (path / "results.sqlite").exists() and path.suffix != ".sqlite":
        raise UnlearnlabError(f"No results.sqlite in {path}: point to the --out folder of `unlearnlab run`.")
    folder = path if path.is_dir() else path.parent
    with ResultStore(path) as store:
        rows = store.rows()
    saved = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").exists() else {}
    if saved.get("experiment"):  # written by run_experiment
        if fmt not in ("markdown", "all"):
            raise UnlearnlabError(f"{saved['protocol']} is an experiment protocol: its tables are Markdown only "
                                  "(--format markdown or all).")
        config = RunConfig(protocol=saved["protocol"], quick=bool(saved.get("quick")),
                           seeds=tuple(saved["seeds"]), out=str(folder), device=saved.get("device"))
        markdown = run_experiment(config)
    else:
        with ResultStore(path) as store:
            markdown = write_reports(store, folder) if fmt == "all" else render(rows, fmt)
    if fmt == "all":
        with ResultStore(path) as store:
            write_plots(store, folder)
    return markdown
