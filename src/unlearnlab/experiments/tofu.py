"""The TOFU-format protocols ``tofu-mini-forget01|05|10`` and ``tofu-forget10`` (docs/llm.md, "Running the
protocols").

Each is an experiment (``run(ctx) -> str``, :mod:`unlearnlab.experiments`):

1. :func:`prepare` checks everything before anything is written or trained: the run's changes to the tier
   (``--set data.KEY=V``, ``model.KEY=V``, ``stage1.KEY=V``, ``stage2.KEY=V``; recorded in every row and named
   above the table), the methods and their overrides (``--set llm/npo-gd.lr=1e-4``), and for the paper tier the
   TOFU folder (``--root``), the user's target checkpoint (``--original``) and the retain reference
   (``--set retain.model=DIR`` or ``--set retain.eval=TOFU_EVAL.json``, OpenUnlearning's retain logs);
2. per seed s, the reference (stage 1), target (stage 2 on ``full``) and retain model (stage 2 on ``retainXX``)
   come from the model cache (content-addressed by :func:`unlearnlab.language.model_key`, checksummed, training
   resumable) and are only built when a row still needs them. The noise floor compares the retain model of s with
   the retain model of the next seed of the run (cyclically; ``s + 1`` when the run has one seed), so one extra
   retain model is trained for a one-seed run;
3. rows go through :mod:`unlearnlab.bench.cells` (done / diverged / failed; complete rows are skipped, so a killed
   run resumes): ``retain`` (the retain model's report, no reference), ``target`` (against the retain model of its
   seed) and one per (method, seed), each unlearned from the target of its seed and evaluated against the retain
   model of its seed. A row stores the report's metrics and their definitions, the tier's settings, the method's
   resolved hyperparameters, the seconds of training or unlearning and of the evaluation, the forget truth ratios
   and Min-K AUC the gates and the noise floor are computed from, and five forget questions with the model's
   answers; the split hash and the environment are columns. OpenUnlearning's ``TOFU_EVAL.json`` /
   ``TOFU_SUMMARY.json`` of every evaluated model go to ``OUT/openunlearning/<method>-seed<s>/``;
4. the table with the gates, ``generations.md`` (:mod:`unlearnlab.experiments.tofu_tables`); the forget quality vs
   model utility figure is drawn with the other figures (:func:`unlearnlab.bench.plots.write_plots`).

The paper tier runs the user's target (no seeds of its own: its rows and the retain reference have seed 1) and
each method with every seed of the run, on DualOptim's recipe (``profile="reference"``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from transformers import PreTrainedModel

from unlearnlab.api import unlearn
from unlearnlab.bench import cells
from unlearnlab.bench.cells import Outcome, Row, Scores, check_finite
from unlearnlab.bench.figures import slug
from unlearnlab.bench.store import config_hash
from unlearnlab.distributed.runtime import Runtime
from unlearnlab.distributed.serve import everywhere, leader
from unlearnlab.errors import HealthWarning, UnlearnlabError
from unlearnlab.experiments import ExperimentContext
from unlearnlab.experiments import tofu_tables as tables
from unlearnlab.language import evaluation as lm_eval
from unlearnlab.language import models as lm_models
from unlearnlab.language import stages
from unlearnlab.language.family import LANGUAGE_MODEL
from unlearnlab.language.generator import SIZES, generate
from unlearnlab.language.loader import load_tofu
from unlearnlab.language.records import RETAIN_OF, TofuData
from unlearnlab.language.task import LanguageTask, make_task
from unlearnlab.language.tokens import tokenizer_hash
from unlearnlab.methods import get_method
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import Recipe
from unlearnlab.utils import environment

VERSION = 1
#: the generator seed of every generated tier (the data are fixed; the seeds of a run are model seeds)
DATA_SEED = 0
#: ``--set`` groups that change the tier rather than a method
SETTING_GROUPS = ("data", "model", "stage1", "stage2", "retain")
#: where the OpenUnlearning export of every evaluated model goes, under the run folder
EXPORTS = "openunlearning"
#: a training's resumable state is saved at most this often
CHECKPOINT_SECONDS = 30.0
#: hyperparameters the protocols pin for their exploratory row (docs/llm.md, "certified-gradclip on a language
#: model"): the parameter-norm clip C0 above the models' norm, AdamW-free SGD fine-tuning at the LM batch size, and
#: noise drawn from the run seed so the row reproduces (the row then says "not certified")
PINNED: dict[str, dict[str, Any]] = {
    "certified-gradclip": {"C0": 100.0, "C1": 10.0, "lr": 0.3, "batch_size": 16, "epochs": 5,
                           "noise_source": "seeded"},
}


@dataclass(frozen=True)
class Tier:
    """A protocol size: generated data and a from-scratch model (``size``, ``model``), or the user's files."""

    name: str
    size: str | None
    model: str | None
    profile: str

    @property
    def generated(self) -> bool:
        return self.size is not None


TIERS = {"mini": Tier("mini", "tofu-mini", "mini", "default"), "xs": Tier("xs", "tofu-mini-xs", "xs", "default"),
         "paper": Tier("paper", None, None, "reference")}


@dataclass
class Setup:
    """A checked run: tier, data, task, methods with their overrides, and the user's models (paper tier)."""

    tier: Tier
    label: str
    forget: str
    data: TofuData
    task: LanguageTask
    config: lm_models.LMConfig | None
    stage1: Recipe
    stage2: Recipe
    #: unlearning presets in table order
    methods: tuple[str, ...]
    #: preset → the overrides ``unlearn`` gets (the protocol's pinned values, then the user's)
    overrides: dict[str, dict[str, Any]]
    #: preset → every hyperparameter it runs with (recorded in its rows)
    resolved: dict[str, dict[str, Any]]
    changes: dict[str, dict[str, Any]]
    #: the paper tier's target and retain model (or retain logs) and their SHA-256 fingerprints
    target: PreTrainedModel | None = None
    retain: PreTrainedModel | None = None
    retain_logs: lm_eval.TofuReport | None = None
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        """What every row's config records about the tier (changes included)."""
        base = {"tier": self.tier.name, "forget": self.forget, "data_hash": self.data.hash,
                "tokenizer": tokenizer_hash(self.task.tokenizer), "profile": self.tier.profile,
                "changes": self.changes}
        if self.tier.generated:
            size = dataclasses.asdict(SIZES[str(self.tier.size)])
            return {**base, "size": {**size, **self.changes.get("data", {})}, "data_seed": DATA_SEED,
                    "model": self.config.to_dict() if self.config else None, "stage1": self.stage1.to_dict(),
                    "stage2": self.stage2.to_dict()}
        return {**base, "data": str(self.data.source), "checkpoints": dict(self.fingerprints)}

    @property
    def task_key(self) -> str:
        return "|".join(["tofu", f"v{VERSION}", self.tier.name, self.forget, self.data.hash,
                         config_hash(self.settings)])


def _changed(group: str, base: Any, changes: Mapping[str, Any]) -> Any:
    """``base`` (a :class:`Recipe` or :class:`LMConfig`) with the ``--set group.KEY=V`` changes applied."""
    if isinstance(base, Recipe):
        return Recipe.from_dict({**base.to_dict(), **changes}) if changes else base
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise UnlearnlabError(f"--set {group}.{unknown[0]}: not a model field; use one of {', '.join(sorted(fields))}.")
    return dataclasses.replace(base, **changes)


def fingerprint(folder: str | Path) -> str:
    """SHA-256 (16 hex digits) of every file's name and bytes in a checkpoint folder (or of one file)."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted([root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())):
        digest.update(str(path.relative_to(root) if path != root else path.name).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def retain_logs(path: str | Path) -> lm_eval.TofuReport:
    """A retain model's report from its ``TOFU_EVAL.json`` (ours or OpenUnlearning's retain logs): the forget
    truth ratios (``forget_truth_ratio`` → ``value_by_index`` → ``score``), the Min-K AUC (``mia_min_k``) and
    every aggregate value."""
    file = Path(path)
    if not file.is_file():
        raise UnlearnlabError(f"retain.eval {str(file)!r} is not a file: give the TOFU_EVAL.json of the retain model "
                              "(OpenUnlearning's retain logs, or the one unlearnlab writes for a retain row).")
    try:
        logs = json.loads(file.read_text(encoding="utf-8"))
        ratios = [float(v["score"]) for v in logs["forget_truth_ratio"]["value_by_index"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UnlearnlabError(f"retain.eval {str(file)!r} is not a TOFU_EVAL.json with per-index forget truth ratios "
                              f"(forget_truth_ratio.value_by_index.*.score): {type(err).__name__}: {err}.") from None
    metrics = {k: v["agg_value"] for k, v in logs.items() if isinstance(v, dict) and "agg_value" in v}
    auc = metrics.get("mia_min_k")
    return lm_eval.TofuReport(metrics, {k: f"from {file.name}" for k in metrics}, forget_truth_ratios=ratios,
                              mink_auc=0.5 if auc is None else float(auc))


def prepare(ctx: ExperimentContext, tier_name: str, forget: str) -> Setup:
    """Check the run's input and build its task (module docstring, step 1); nothing is written or trained."""
    tier = TIERS["xs" if ctx.quick and tier_name == "mini" else tier_name]
    if ctx.quick and not tier.generated:
        raise UnlearnlabError("tofu-forget10 has no quick size (it runs your checkpoint): for a quick run use "
                              "`unlearnlab run --protocol tofu-mini-forget10 --quick`.")
    changes = {str(k): dict(v) for k, v in ctx.hparams.items() if v}
    methods = tuple(ctx.methods)
    groups = SETTING_GROUPS if not tier.generated else tuple(g for g in SETTING_GROUPS if g != "retain")
    unknown = sorted(set(changes) - set(groups) - set(methods))
    if unknown:
        raise UnlearnlabError(f"--set {unknown[0]}.…: {unknown[0]!r} is neither a method of this run nor a setting "
                              f"group; use {', '.join(f'{g}.KEY' for g in groups)} or one of {', '.join(methods)}.")
    overrides = {m: {**PINNED.get(m, {}), **changes.get(m, {})} for m in methods}
    resolved = {m: get_method(m).resolve(overrides[m], tier.profile, family=LANGUAGE_MODEL) for m in methods}
    stage1 = _changed("stage1", stages.STAGE1, changes.get("stage1", {}))
    stage2 = _changed("stage2", stages.STAGE2, changes.get("stage2", {}))
    if tier.generated:
        data = generate(str(tier.size), DATA_SEED, **changes.get("data", {}))
        tok = stages.build_tokenizer(data)
        config = _changed("model", lm_models.TIERS[str(tier.model)], changes.get("model", {}))
        task = make_task(data, tok, forget, max_length=config.context)
        return Setup(tier, ctx.protocol, forget, data, task, config, stage1, stage2, methods, overrides, resolved,
                     changes)
    return _prepare_paper(ctx, tier, forget, changes, methods, overrides, resolved)


def _prepare_paper(ctx: ExperimentContext, tier: Tier, forget: str, changes: dict[str, dict[str, Any]],
                   methods: tuple[str, ...], overrides: dict[str, dict[str, Any]],
                   resolved: dict[str, dict[str, Any]]) -> Setup:
    """The paper tier's input: TOFU folder, target checkpoint, retain model or logs (module docstring)."""
    if ctx.root is None:
        raise UnlearnlabError("tofu-forget10 needs the TOFU data folder: --root PATH (TOFU's JSON files: "
                              "full.json, forget10.json, forget10_perturbed.json, retain_perturbed.json, …).")
    if ctx.original is None:
        raise UnlearnlabError("tofu-forget10 needs your target model: --original PATH, a local Hugging Face "
                              "checkpoint folder fine-tuned on TOFU's full split (with its tokenizer).")
    retain_given = changes.get("retain", {})
    bad = sorted(set(retain_given) - {"model", "eval"})
    if bad or len(retain_given) > 1:
        raise UnlearnlabError("--set retain.…: give one of retain.model=DIR (the retain checkpoint) or "
                              "retain.eval=FILE (its TOFU_EVAL.json).")
    data = load_tofu(ctx.root)
    target, tok = lm_models.load_lm(ctx.original)
    task = make_task(data, tok, forget, max_length=lm_models.context_length(target))
    prints = {"target": fingerprint(ctx.original)}
    retain = logs = None
    if "model" in retain_given:
        retain, retain_tok = lm_models.load_lm(str(retain_given["model"]))
        if tokenizer_hash(retain_tok) != tokenizer_hash(tok):
            raise UnlearnlabError(f"retain.model {retain_given['model']} has another tokenizer than the target: "
                                  "both must come from the same base model.")
        prints["retain"] = fingerprint(str(retain_given["model"]))
    elif "eval" in retain_given:
        logs = retain_logs(str(retain_given["eval"]))
        prints["retain"] = fingerprint(str(retain_given["eval"]))
    settings_changes = {k: v for k, v in changes.items() if k != "retain"}
    return Setup(tier, ctx.protocol, forget, data, task, None, stages.STAGE1, stages.STAGE2, methods, overrides,
                 resolved, settings_changes, target.to(ctx.device), retain, logs, prints)


class TofuRun:
    """One run (module docstring, steps 2–3): models from the cache when a row needs them, the rows."""

    def __init__(self, ctx: ExperimentContext, setup: Setup):
        self.ctx = ctx
        self.setup = setup
        self.env = environment() | {"device": str(ctx.device)}
        self._models: dict[tuple[str, int], tuple[PreTrainedModel, dict[str, Any]]] = {}

    # ---------------------------------------------------------------------------------------------- models
    def model(self, kind: str, seed: int) -> tuple[PreTrainedModel, dict[str, Any]]:
        """The ``kind`` ("reference", "target", "retain") model of ``seed`` with its training metadata: the
        user's (paper tier) or from the cache, trained there once (resumably) when missing."""
        s = self.setup
        if not s.tier.generated:
            model = s.target if kind == "target" else s.retain
            assert model is not None
            return model, {"seconds": None, "source": s.fingerprints.get(kind)}
        if (kind, seed) in self._models:
            return self._models[(kind, seed)]
        split = None if kind == "reference" else ("full" if kind == "target" else RETAIN_OF[s.forget])
        identity = stages.model_key(kind, s.data, s.task.tokenizer, s.config, seed, s.stage1,
                                    None if kind == "reference" else s.stage2, split)
        tok, ctx = s.task.tokenizer, self.ctx

        def fit(m: PreTrainedModel) -> dict[str, Any]:
            progress = self._tick(f"training {kind} (seed {seed})")
            if kind == "reference":
                stats = stages.stage1(m, s.data, tok, s.stage1, seed, progress=progress,
                                      checkpoint=self._checkpoint(identity))
            else:
                m.load_state_dict(self.model("reference", seed)[0].state_dict())
                stats = stages.stage2(m, s.data, tok, str(split), s.stage2, seed, progress=progress,
                                      checkpoint=self._checkpoint(identity))
            return {"seconds": stats.seconds, "device": str(ctx.device)}

        model = lm_models.build_lm(s.config, tok, seed).to(ctx.device)
        meta, _ = ctx.cache.get_or_train(identity, model, fit)
        self._models[(kind, seed)] = (model.eval(), meta)
        return self._models[(kind, seed)]

    def _checkpoint(self, identity: dict[str, Any]) -> TrainCheckpoint | None:
        partial = self.ctx.cache.partial(identity)
        return None if partial is None else dataclasses.replace(partial, min_interval=CHECKPOINT_SECONDS)

    def _tick(self, label: str) -> Callable[[int, int], None]:
        return lambda done, total: self.ctx.progress(label, done / total)

    # ---------------------------------------------------------------------------------------------- rows
    def row(self, name: str, seed: int, config: dict[str, Any]) -> Row:
        s = self.setup
        return Row(s.task_key, s.label, name, seed, {**s.settings, **config}, s.data.hash,
                   name=f"{name} (seed {seed})")

    def cell(self, row: Row, work: Callable[[], Scores]) -> dict[str, Any]:
        """The stored row: run now (its OpenUnlearning files written before the row is finished) unless complete."""
        if not self.ctx.store.is_complete(row.run_key):
            outcome = cells.run_cell(self.ctx.store, row, work, self.ctx.log, self.env, save=self._export(row))
            if outcome is not None and outcome.status == "done":
                m = outcome.metrics
                fq = m.get("forget_quality")
                self.ctx.log(f"{row.label}: forget quality {'–' if fq is None else f'{fq:.3g}'}, model utility "
                             f"{m.get('model_utility', float('nan')):.3f}, forget ROUGE-L "
                             f"{m.get('forget_Q_A_ROUGE', float('nan')):.3f} ({outcome.stats.get('seconds') or 0:.1f} s"
                             f" + evaluation {outcome.stats.get('seconds_eval') or 0:.1f} s)")
        stored = self.ctx.store.get(row.run_key)
        assert stored is not None
        return stored

    def _export(self, row: Row) -> Callable[[Outcome], Outcome]:
        """Write a done row's report in OpenUnlearning's schema and name the folder in the row's stats."""

        def save(outcome: Outcome) -> Outcome:
            if outcome.artifact is None:
                return outcome
            folder = f"{EXPORTS}/{slug(row.method)}-seed{row.seed}"
            lm_eval.write_openunlearning(outcome.artifact, Path(self.ctx.out) / folder)
            return dataclasses.replace(outcome, stats={**outcome.stats, "openunlearning": folder}, artifact=None)

        return save

    def scores(self, model: PreTrainedModel, reference: lm_eval.TofuReport | None, seconds: float | None,
               stats: dict[str, Any]) -> Scores:
        """The row of ``model`` evaluated against ``reference`` (its report is the artifact exported)."""
        start = time.perf_counter()
        report = lm_eval.evaluate_lm(model, self.setup.task, reference)
        return Scores(dict(report.metrics), dict(report.definitions), {
            "seconds": seconds, "seconds_eval": time.perf_counter() - start,
            "forget_truth_ratios": report.forget_truth_ratios, "mink_auc": report.mink_auc,
            "samples": report.samples, **stats}, report)

    def retain_work(self, seed: int) -> Scores:
        if self.setup.retain_logs is not None:
            logs = self.setup.retain_logs
            return Scores(dict(logs.metrics), dict(logs.definitions),
                          {"seconds": None, "forget_truth_ratios": logs.forget_truth_ratios,
                           "mink_auc": logs.mink_auc, "source": self.setup.fingerprints.get("retain")})
        model, meta = self.model("retain", seed)
        return self.scores(model, None, meta.get("seconds"), {"training": meta})

    def target_work(self, seed: int, retain: lm_eval.TofuReport | None) -> Scores:
        model, meta = self.model("target", seed)
        return self.scores(model, retain, meta.get("seconds"), {"training": meta})

    def method_work(self, method: str, seed: int, retain: lm_eval.TofuReport | None) -> Scores:
        s = self.setup
        label = f"{method} (seed {seed})"
        target = self.model("target", seed)[0]

        def here() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", HealthWarning)  # kept in the row's stats and logged
                return unlearn(target, s.task, method=method, seed=seed, profile=s.tier.profile,
                               progress=lambda f: self.ctx.progress(label, f), **s.overrides[method])
        rt = leader()
        if rt is not None and s.tier.generated:
            raise UnlearnlabError(f"{self.ctx.protocol} trains its own models in one process: run it without "
                                  "torchrun (tofu-forget10 is the protocol that runs across ranks).")
        res = here() if rt is None else everywhere(
            UnlearnOnRank(str(self.ctx.root), str(self.ctx.original), s.forget, method, seed, s.tier.profile,
                          dict(s.overrides[method])), here)
        for text in res.stats.get("warnings", []):
            self.ctx.log(f"[yellow]seed {seed}: {escape(str(text))}[/yellow]")
        check_finite(res.model, label)
        extra: dict[str, Any] = {k: v for k, v in res.stats.items() if k not in ("certificate", "noisy_losses")}
        if res.certificate is not None:  # the exploratory certified row: its (ε, δ) and whether it is certified
            extra["certificate"] = res.certificate.state_dict()
        return self.scores(res.model, retain, res.seconds, {**res.counters.as_dict(), **extra})

    def run(self, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
        """Every row of the run (done now or before), in table order."""
        s, ctx = self.setup, self.ctx
        own = s.tier.generated
        retain_seeds = tables.retain_seeds(seeds) if own else (1,)
        if not own and s.retain is None and s.retain_logs is None:
            retain_seeds = ()
        retains = {r: self.row(tables.RETAIN, r, {"role": tables.RETAIN}) for r in retain_seeds}
        targets = {t: self.row(tables.TARGET, t, {"role": tables.TARGET}) for t in (seeds if own else (1,))}
        methods = {(m, seed): self.row(m, seed, {"role": "method", "method": m, "hparams": s.resolved[m]})
                   for seed in seeds for m in s.methods}
        every = [*retains.values(), *targets.values(), *methods.values()]
        todo = sum(not ctx.store.is_complete(r.run_key) for r in every)
        ctx.log(f"{s.label}: {len(every)} rows ({todo} to run, {len(every) - todo} done before)"
                + (f"; changed settings: {escape(tables.changes_text(s.changes))}" if s.changes else ""))
        done = [self.cell(row, functools.partial(self.retain_work, r)) for r, row in retains.items()]
        reports = {r["seed"]: tables.stored_report(r) for r in done if r["status"] == "done"}
        for t, row in targets.items():
            done.append(self.cell(row, functools.partial(self.target_work, t, reports.get(t if own else 1))))
        for (m, seed), row in methods.items():
            reference = reports.get(seed if own else 1)
            if reference is None and (own or retain_seeds):
                ctx.log(f"[red]{m} (seed {seed}) waits for the retain model's row of its seed; re-run to retry[/red]")
                continue
            done.append(self.cell(row, functools.partial(self.method_work, m, seed, reference)))
        return done


@dataclass(frozen=True)
class UnlearnOnRank:
    """A follower rank's part of one paper-tier row under torchrun (docs/scaling.md): the same TOFU files, target
    checkpoint, forget split and method, unlearned on this rank's device; rank 0 alone evaluates and writes."""

    root: str
    original: str
    forget: str
    method: str
    seed: int
    profile: str
    hparams: dict[str, Any]

    def __call__(self, rt: Runtime) -> None:
        target, tok = lm_models.load_lm(self.original)
        task = make_task(load_tofu(self.root), tok, self.forget, max_length=lm_models.context_length(target))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HealthWarning)
            unlearn(target.to(rt.device), task, method=self.method, seed=self.seed, profile=self.profile,
                    **self.hparams)


def run_tier(ctx: ExperimentContext, tier: str, forget: str) -> str:
    """Run (or resume) one TOFU-format protocol; writes ``generations.md`` and returns the table."""
    setup = prepare(ctx, tier, forget)
    seeds = tuple(int(x) for x in ctx.seeds)
    rows = TofuRun(ctx, setup).run(seeds)
    path = tables.write_generations(Path(ctx.out), rows, setup.methods, seeds)
    if path is not None:
        ctx.log(f"saved {path}")
    return tables.render(rows, setup.label, setup.methods, seeds)


def mini_forget01(ctx: ExperimentContext) -> str:
    """``tofu-mini-forget01`` (quick: tofu-mini-xs)."""
    return run_tier(ctx, "mini", "forget01")


def mini_forget05(ctx: ExperimentContext) -> str:
    """``tofu-mini-forget05`` (quick: tofu-mini-xs)."""
    return run_tier(ctx, "mini", "forget05")


def mini_forget10(ctx: ExperimentContext) -> str:
    """``tofu-mini-forget10`` (quick: tofu-mini-xs)."""
    return run_tier(ctx, "mini", "forget10")


def paper_forget10(ctx: ExperimentContext) -> str:
    """``tofu-forget10``: the user's TOFU folder and checkpoint, DualOptim's recipe."""
    return run_tier(ctx, "paper", "forget10")
