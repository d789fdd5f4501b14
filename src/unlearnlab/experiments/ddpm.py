"""The class-wise DDPM protocols ``ddpm-<tier>-class<c>`` (docs/generation.md, "Running the protocols").

:func:`digits`, :func:`fmnist` and :func:`cifar10` run one tier of :mod:`unlearnlab.generation.tiers` as an
experiment (``run(ctx) -> str``, :mod:`unlearnlab.experiments`):

1. :func:`prepare` checks everything the user gave, before anything is written or trained: the forget class (a
   class of the data that has training images, every class present), the run's changes to the tier
   (``--set tier.KEY=V`` / ``sampler.KEY=V``, recorded in every row and named above the table), the methods and
   their overrides (``--set ddpm/rl.iterations=500``), and the user's original (``--original``: a class-conditional
   denoiser of the tier's architecture);
2. the evaluation classifier, the original (seed 1, on D) and each Retrain (seed s, on D_r) come from the model
   cache (content-addressed, checksummed, training resumable after an interruption), or the original is the
   user's; a model is only built when a row still needs it;
3. one row per model and seed goes through :mod:`unlearnlab.bench.cells`: ``original`` (seed 1), then per seed
   ``retrain`` and every method, each evaluated with the tier's sampler and sample counts (methods against the
   Retrain of their seed). A row stores the metrics and their definitions, the tier's settings, the method's
   resolved hyperparameters, the seconds of the method (or training) and of the evaluation, the validity gates of
   its seed (``stats["valid"]``) and its sample files; the environment and the split hash are columns. Complete
   rows are skipped, so an interrupted run (Ctrl-C, a killed process) resumes where it stopped;
4. the table, the sample grids and ``comparison.png`` (:mod:`unlearnlab.experiments.ddpm_tables`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape
from torch import nn

from unlearnlab.api import unlearn
from unlearnlab.bench import cells
from unlearnlab.bench.cache import ArchitectureError, check_state_dict, state_and_meta
from unlearnlab.bench.cells import Row, Scores, check_finite
from unlearnlab.bench.store import config_hash
from unlearnlab.checksums import DamagedFileError, read_checked, sha256_hex, torch_object
from unlearnlab.data.datasets import ImageDataset, load_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask
from unlearnlab.errors import HealthWarning, UnlearnlabError
from unlearnlab.experiments import ExperimentContext
from unlearnlab.experiments import ddpm_tables as tables
from unlearnlab.generation.evaluation import (
    EvalClassifier,
    GenerationEvaluation,
    RealStatistics,
    evaluate_generator,
    real_statistics,
)
from unlearnlab.generation.family import GENERATION
from unlearnlab.generation.models import Denoiser
from unlearnlab.generation.sampler import timestep_sequence
from unlearnlab.generation.tiers import PROTOCOL_METHODS, Tier, build_model, classifier_data, generation_task, get_tier
from unlearnlab.generation.training import (
    classifier_accuracy,
    classifier_recipe,
    eval_classifier_network,
    train_denoiser,
)
from unlearnlab.generation.unet import require_diffusers
from unlearnlab.methods import get_method
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import train
from unlearnlab.utils import environment

VERSION = 1
#: ``--set`` groups that change the tier rather than a method
SETTING_GROUPS = ("tier", "sampler")
CLASSIFIER_MODEL = "small_cnn"
#: the seed of the original (one per data split) and of the evaluation classifier
ORIGINAL_SEED = 1
#: a training's resumable state is saved at most this often (digits epochs take a fraction of a second each)
CHECKPOINT_SECONDS = 30.0


@dataclass
class Setup:
    """A checked run: the tier with the run's changes, the task, the methods and what they get."""

    tier: Tier
    label: str
    forget_class: int
    task: ForgetTask
    dataset: ImageDataset
    #: unlearning presets in table order (Retrain is the reference, not among them)
    methods: tuple[str, ...]
    #: preset → the overrides ``unlearn`` gets (the tier's budget, then the user's values)
    overrides: dict[str, dict[str, Any]]
    #: preset → every hyperparameter it runs with (recorded in its rows)
    resolved: dict[str, dict[str, Any]]
    #: the user's changes, by group (``tier``, ``sampler``, a preset)
    changes: dict[str, dict[str, Any]]
    #: the user's original, loaded, and its file's SHA-256
    original: Denoiser | None
    original_sha256: str | None
    task_key: str


def forget_class_of(spec: str | None) -> int:
    """The one class of a ``class:K`` forget spec."""
    parsed = ForgetSpec.parse(spec or "")
    if parsed.kind != "class" or len(parsed.classes) != 1:
        raise UnlearnlabError(f"The DDPM protocols forget exactly one class ('class:K'), got {spec!r}.")
    return int(parsed.classes[0])


def prepare(ctx: ExperimentContext, tier_name: str) -> Setup:
    """Check the run's input and build its task (module docstring, step 1); nothing is written or trained."""
    c = forget_class_of(ctx.forget)
    changes = {str(k): dict(v) for k, v in ctx.hparams.items()}
    tier = get_tier(tier_name).overridden(changes.get("tier"), changes.get("sampler"))
    methods = tuple(m for m in (ctx.methods or ("retrain", *PROTOCOL_METHODS.values())) if m != "retrain")
    unknown = sorted(set(changes) - set(SETTING_GROUPS) - set(methods))
    if unknown:
        raise UnlearnlabError(f"--set {unknown[0]}.…: {unknown[0]!r} is neither a method of this run nor a setting "
                              f"group; use tier.KEY, sampler.KEY or one of {', '.join(methods)}.")
    overrides = {m: {**tier.budgets.get(m, {}), **changes.get(m, {})} for m in methods}
    resolved = {m: get_method(m).resolve(overrides[m], tier.profile, family=GENERATION) for m in methods}
    timestep_sequence(tier.timesteps, tier.sampler.steps)  # more sampler steps than T is an error
    if tier.model.startswith("unet:"):
        require_diffusers()
    ds = load_dataset(tier.dataset, ctx.root)
    task = generation_task(tier, c, seed=1, device=ctx.device, dataset=ds)
    original, sha = None, None
    if ctx.original is not None:
        original = build_model(tier, task.input_shape, task.num_classes, seed=ORIGINAL_SEED)
        sha = load_original(ctx.original, original, tier.model)
        original = original.to(ctx.device).eval()
    key = "|".join(["ddpm", f"v{VERSION}", tier.name, f"class{c}", config_hash(tier.settings()),
                    task.split_hash[:16], f"original={sha[:16] if sha else 'trained'}"])
    return Setup(tier, ctx.protocol, c, task, ds, methods, overrides, resolved,
                 {k: v for k, v in changes.items() if v}, original, sha, key)


def load_original(path: str, model: Denoiser, name: str) -> str:
    """Load the user's original into ``model`` (the tier's ``name`` architecture) and return the file's SHA-256.

    Takes an unlearnlab checkpoint or a ``torch.save(denoiser.state_dict())``, and for a UNet tier the state dict of
    the bare ``diffusers.UNet2DModel`` too. A checksum file next to it is verified; the bytes reach
    ``torch.load(weights_only=True)`` only then. A model without class conditioning, another architecture or
    another class count is refused with the fix."""
    file = Path(path)
    how = "save it with torch.save(model.state_dict(), PATH)"
    if not file.is_file():
        raise UnlearnlabError(f"original {path} {'is not a file' if file.exists() else 'does not exist'}: give the "
                              f"path of your trained class-conditional denoiser ({how}).")
    try:
        data = read_checked(file, required=False)
        state, _ = state_and_meta(torch_object(data, file), str(file))
    except DamagedFileError as err:
        raise UnlearnlabError(f"original {path} cannot be used ({err.reason}): {how}, or use an intact copy.") from None
    except OSError as err:
        raise UnlearnlabError(f"original {path} cannot be read ({err.strerror}): check its permissions.") from None
    state = _with_prefix(state, model)
    embeddings = [f"{n}.weight" for n, m in model.named_modules()
                  if isinstance(m, nn.Embedding) and m.num_embeddings == model.num_classes + 1]
    if embeddings and not any(k in state for k in embeddings):
        raise UnlearnlabError(
            f"original {path} has no class conditioning (no class embedding {embeddings[0]!r}): class-wise "
            f"forgetting needs a class-conditional model with {model.num_classes + 1} class embeddings (the last is "
            "the null class of classifier-free guidance); train it with num_class_embeds="
            f"{model.num_classes + 1} (diffusers) or build it with unlearnlab.generation.")
    try:
        check_state_dict(model, state, str(file), None)
    except ArchitectureError as err:
        raise UnlearnlabError(f"original {path} does not fit the {name} model of this tier with {model.num_classes} "
                              f"classes ({err.details}): pass a model trained with this tier's architecture on every "
                              "class of its dataset.") from None
    model.load_state_dict(state)
    return sha256_hex(data)


def _with_prefix(state: dict[str, torch.Tensor], model: Denoiser) -> dict[str, torch.Tensor]:
    """A bare UNet's state dict keyed as in ``model`` (``net.unet.`` prefix, the model's own ᾱ buffer); any other
    state dict as it is."""
    own = model.state_dict()
    if any(k in own for k in state) or not any(f"net.unet.{k}" in own for k in state):
        return state
    return {**{f"net.unet.{k}": v for k, v in state.items()}, "alphas_bar": own["alphas_bar"]}


class TierRun:
    """One run of a tier (module docstring, steps 2–4): models from the cache when a row needs them, the rows."""

    def __init__(self, ctx: ExperimentContext, setup: Setup):
        self.ctx = ctx
        self.setup = setup
        self.env = environment() | {"device": str(ctx.device)}

    # ---------------------------------------------------------------------------------------------- models
    @functools.cached_property
    def classifier(self) -> EvalClassifier:
        """The evaluation classifier of the tier's dataset (every class, seed 1), cached with its test accuracy."""
        s, ctx = self.setup, self.ctx
        train_data, test_data, name = classifier_data(s.tier, ctx.device, dataset=s.dataset)
        recipe = classifier_recipe(s.tier.classifier_epochs)
        identity = {"kind": "eval-classifier", "dataset": name, "model": CLASSIFIER_MODEL,
                    "recipe": recipe.to_dict(), "data": s.task.data_hash, "seed": ORIGINAL_SEED}
        net = eval_classifier_network(train_data, s.task.num_classes, seed=ORIGINAL_SEED, model=CLASSIFIER_MODEL)

        def fit(m: nn.Module) -> dict[str, Any]:
            stats = train(m, train_data, recipe, seed=ORIGINAL_SEED, progress=self._tick("evaluation classifier"),
                          checkpoint=self._checkpoint(identity))
            return {"seconds": stats.seconds, "device": str(ctx.device),
                    "test_accuracy": classifier_accuracy(m, test_data)}

        meta, _ = ctx.cache.get_or_train(identity, net, fit)
        ctx.log(f"evaluation classifier ({name}): test accuracy {meta['test_accuracy']:.1f} %")
        return EvalClassifier(net.eval(), name, s.task.num_classes, tuple(train_data.x.shape[1:]),
                              float(meta["test_accuracy"]))

    @functools.cached_property
    def real(self) -> RealStatistics:
        return real_statistics(self.setup.task, self.classifier, self.setup.tier.n_per_class)

    @functools.cached_property
    def original(self) -> tuple[Denoiser, dict[str, Any]]:
        """The user's original, or the tier's trained on D with seed 1 (cached), with its training metadata."""
        if self.setup.original is not None:
            return self.setup.original, {"seconds": None, "source": str(self.ctx.original)}
        return self.trained("original", ORIGINAL_SEED)

    def trained(self, kind: str, seed: int) -> tuple[Denoiser, dict[str, Any]]:
        """The tier's model trained with ``seed`` on D (``kind="original"``) or D_r (``"retrain"``), from the cache."""
        s, ctx = self.setup, self.ctx
        task = s.task
        model = build_model(s.tier, task.input_shape, task.num_classes, seed=seed).to(ctx.device)
        data = task.train if kind == "original" else task.retain
        identity = {"kind": f"ddpm-{kind}", "dataset": task.dataset, "model": s.tier.model,
                    "diffusion": model.settings(), "recipe": s.tier.recipe.to_dict(), "flip": s.tier.flip,
                    "data": task.data_hash if kind == "original" else task.split_hash, "seed": seed}

        def fit(m: nn.Module) -> dict[str, Any]:
            stats = train_denoiser(m, data, s.tier.recipe, seed=seed, flip=s.tier.flip,
                                   progress=self._tick(f"training {kind} (seed {seed})"),
                                   checkpoint=self._checkpoint(identity))
            return {"seconds": stats.seconds, "device": str(ctx.device), **stats.counters.as_dict()}

        meta, _ = ctx.cache.get_or_train(identity, model, fit)
        return model.eval(), meta

    def _checkpoint(self, identity: dict[str, Any]) -> TrainCheckpoint | None:
        partial = self.ctx.cache.partial(identity)
        return None if partial is None else dataclasses.replace(partial, min_interval=CHECKPOINT_SECONDS)

    def _tick(self, label: str) -> Callable[[int, int], None]:
        return lambda done, total: self.ctx.progress(label, done / total)

    # ---------------------------------------------------------------------------------------------- rows
    def row(self, name: str, seed: int, config: dict[str, Any]) -> Row:
        s = self.setup
        changes = {g: v for g, v in s.changes.items() if g in SETTING_GROUPS or g == name}  # this row's only
        base = {"forget_class": s.forget_class, "tier": s.tier.settings(), "changes": changes,
                "original": s.original_sha256 or "trained"}
        return Row(s.task_key, s.label, name, seed, {**base, **config}, s.task.split_hash,
                   name=f"{name} (seed {seed})")

    def cell(self, row: Row, work: Callable[[], Scores]) -> dict[str, Any]:
        """The stored row: run now (its samples saved before the row is finished) unless already complete."""
        store = self.ctx.store
        if not store.is_complete(row.run_key):
            cells.start(store, row, self.env)
            outcome = cells.attempt(work)
            if outcome.artifact is not None:
                title = f"{row.method} (seed {row.seed})"
                files = tables.write_samples(Path(self.ctx.out), row.method, row.seed, outcome.artifact,
                                             self.setup.forget_class, title, self.setup.tier.dataset)
                outcome = dataclasses.replace(outcome, stats={**outcome.stats, "samples": files}, artifact=None)
            cells.finish(store, row, outcome, self.ctx.log)
            if outcome.status == "done":
                m = outcome.metrics
                self.ctx.log(f"{row.label}: ua {m['ua']:.1f} %, fidelity {m['fidelity']:.1f} %, fd_clf "
                             f"{m['fd_clf']:.3f} ({outcome.stats['seconds'] or 0:.1f} s + evaluation "
                             f"{outcome.stats['seconds_eval']:.1f} s)")
        stored = store.get(row.run_key)
        assert stored is not None
        return stored

    def evaluate(self, model: Denoiser, reference: GenerationEvaluation | None = None) -> GenerationEvaluation:
        t = self.setup.tier
        return evaluate_generator(model, self.setup.task, classifier=self.classifier, sampler=t.sampler,
                                  n_forget=t.n_forget, n_per_class=t.n_per_class, real=self.real, reference=reference)

    def scores(self, ev: GenerationEvaluation, seconds: float | None, stats: dict[str, Any]) -> Scores:
        """A row's metrics, definitions and stats (seconds of the method or training, of the evaluation, RTE)."""
        return Scores(dict(ev.metrics), dict(ev.definitions), {
            "seconds": seconds, "seconds_eval": ev.seconds, "rte_seconds": (seconds or 0.0) + ev.seconds,
            "per_class": {str(k): v for k, v in ev.per_class.items()}, "settings": ev.settings,
            "classifier": self.classifier.describe(), **stats}, ev.grid)

    def original_work(self) -> Scores:
        model, meta = self.original
        return self.scores(self.evaluate(model), meta.get("seconds"), {"training": meta})

    def retrain_work(self, seed: int, ev_original: GenerationEvaluation) -> Scores:
        model, meta = self.trained("retrain", seed)
        ev = self.evaluate(model)
        gates = tables.gates_of(ev_original, ev, self.setup.tier.settings())
        return self.scores(ev, meta["seconds"], {"training": meta, "gates": gates.as_dict(), "valid": gates.passed})

    def method_work(self, method: str, seed: int, ev_retrain: GenerationEvaluation, gates: dict[str, Any]) -> Scores:
        s = self.setup
        label = f"{method} (seed {seed})"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HealthWarning)  # kept in the row's stats and logged
            res = unlearn(self.original[0], s.task, method=method, seed=seed, profile=s.tier.profile,
                          progress=lambda f: self.ctx.progress(label, f), **s.overrides[method])
        for text in res.stats.get("warnings", []):  # each names the method
            self.ctx.log(f"[yellow]seed {seed}: {escape(str(text))}[/yellow]")
        check_finite(res.model, label)
        ev = self.evaluate(res.model, reference=ev_retrain)
        return self.scores(ev, res.seconds, {**res.counters.as_dict(), **res.stats, "gates": gates,
                                             "valid": gates["passed"]})

    def run(self, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
        """Every row of the run (done now or before), in table order."""
        s, ctx = self.setup, self.ctx
        recipe = s.tier.recipe.to_dict()
        original = self.row(tables.ORIGINAL, ORIGINAL_SEED, {"model": "original", "recipe": recipe})
        retrains = {seed: self.row(tables.RETRAIN, seed, {"model": "retrain", "recipe": recipe}) for seed in seeds}
        methods = {(m, seed): self.row(m, seed, {"method": m, "hparams": s.resolved[m]})
                   for seed in seeds for m in s.methods}
        every = [original, *retrains.values(), *methods.values()]
        todo = sum(not ctx.store.is_complete(r.run_key) for r in every)
        ctx.log(f"{s.label}: {len(every)} rows ({todo} to run, {len(every) - todo} done before)"
                + (f"; changed settings: {escape(tables.changes_text(s.changes))}" if s.changes else ""))
        if ctx.device.type == "cpu" and s.tier.name == "cifar10" and todo and not s.changes:
            ctx.log("[yellow]the CIFAR-10 paper tier on the CPU: expect days (a GPU runs it in hours)[/yellow]")
        done = [self.cell(original, self.original_work)]
        if done[0]["status"] != "done":
            ctx.log("[red]the original's evaluation did not finish: no other row runs; re-run to retry[/red]")
            return done
        ev_original = tables.stored_evaluation(done[0])
        for seed in seeds:
            retrain = self.cell(retrains[seed], functools.partial(self.retrain_work, seed, ev_original))
            done.append(retrain)
            if retrain["status"] != "done":
                ctx.log(f"[red]Retrain (seed {seed}) did not finish: its methods wait for it; re-run to retry[/red]")
                continue
            ev_retrain = tables.stored_evaluation(retrain)
            gates = retrain["stats"]["gates"]
            for m in s.methods:
                done.append(self.cell(methods[(m, seed)],
                                      functools.partial(self.method_work, m, seed, ev_retrain, gates)))
        return done


def run_tier(ctx: ExperimentContext, tier: str) -> str:
    """Run (or resume) ``ddpm-<tier>-class<c>``; writes the comparison figure and returns the table."""
    setup = prepare(ctx, tier)
    seeds = tuple(int(x) for x in ctx.seeds)
    rows = TierRun(ctx, setup).run(seeds)
    out = Path(ctx.out)
    figure = tables.write_comparison(out, rows, setup.methods, f"{setup.label}: forget class {setup.forget_class}")
    if figure is not None:
        ctx.log(f"saved {figure} and {out / tables.SAMPLES}/")
    return tables.render(rows, setup.label, setup.methods, seeds)


def digits(ctx: ExperimentContext) -> str:
    """``ddpm-digits-class<c>``: the CI tier."""
    return run_tier(ctx, "digits")


def fmnist(ctx: ExperimentContext) -> str:
    """``ddpm-fmnist-class<c>``: the dev tier (Fashion-MNIST at 14×14)."""
    return run_tier(ctx, "fmnist")


def cifar10(ctx: ExperimentContext) -> str:
    """``ddpm-cifar10-class<c>``: the paper tier (the user's CIFAR-10 files; a GPU)."""
    return run_tier(ctx, "cifar10")
