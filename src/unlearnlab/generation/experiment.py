"""One class-wise DDPM protocol run in this process: references, methods, metrics, gates and pictures
(docs/generation.md, "Running a tier"). The benchmark runner composes the same calls with its cache and store.

Steps: the forget task of ``tier`` (:func:`~unlearnlab.generation.tiers.generation_task`); the evaluation classifier
on every class; the original (seed 1, trained on D) and Retrain (seed s, fresh init, trained on D_r) with the
tier's recipe, unless given (e.g. a user's paper-tier weights); their evaluations and the validity gates; each
method from the original with the tier's budget, evaluated against Retrain; ``results.json`` and one sample grid
per row plus a comparison figure in ``out``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearnlab.api import unlearn
from unlearnlab.generation.evaluation import (
    EvalClassifier,
    GateReport,
    GenerationEvaluation,
    RealStatistics,
    evaluate_generator,
    real_statistics,
    validity_gates,
)
from unlearnlab.generation.models import Denoiser
from unlearnlab.generation.pictures import save_comparison, save_sample_grid
from unlearnlab.generation.tiers import PROTOCOL_METHODS, Tier, build_model, classifier_data, generation_task, get_tier
from unlearnlab.generation.training import classifier_recipe, train_denoiser, train_eval_classifier
from unlearnlab.methods import get_method
from unlearnlab.utils import atomic_write_text, default_device


@dataclass
class ProtocolRun:
    """Rows (one per model × seed), the gates, the written files and the wall time of each stage (s)."""

    rows: list[dict[str, Any]]
    gates: GateReport
    files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Context:
    tier: Tier
    task: Any
    classifier: EvalClassifier
    real: RealStatistics
    out: Path | None

    def evaluate(self, model: Denoiser, reference: GenerationEvaluation | None = None) -> GenerationEvaluation:
        t = self.tier
        return evaluate_generator(model, self.task, classifier=self.classifier, sampler=t.sampler,
                                  n_forget=t.n_forget, n_per_class=t.n_per_class, real=self.real, reference=reference)


def _row(label: str, preset: str, seed: int, ev: GenerationEvaluation, seconds: float, hparams: dict[str, Any]
         ) -> dict[str, Any]:
    return {"method": label, "preset": preset, "seed": seed, "hparams": hparams, "seconds_method": seconds,
            "seconds_eval": ev.seconds, **ev.as_dict()}


def run_protocol(tier: Tier | str, forget_class: int, *, methods: Sequence[str] | None = None,
                 seeds: Sequence[int] = (1,), out: str | Path | None = None, device: torch.device | str | None = None,
                 root: str | Path | None = None, original: Denoiser | None = None,
                 retrains: Mapping[int, Denoiser] | None = None,
                 log: Callable[[str], None] | None = None) -> ProtocolRun:
    """Run the protocol (module docstring); ``methods`` are row labels of
    :data:`~unlearnlab.generation.tiers.PROTOCOL_METHODS` or preset names (default: every protocol row).
    ``original`` and ``retrains`` (seed → model) replace training them (their rows then report 0 s)."""
    tier = get_tier(tier) if isinstance(tier, str) else tier
    device = torch.device(device) if device is not None else default_device()
    say = log or (lambda message: None)
    clock: dict[str, float] = {}
    start = time.perf_counter()
    task = generation_task(tier, forget_class, seed=1, device=device, root=root)
    train, test, name = classifier_data(tier, device, root)
    classifier = train_eval_classifier(train, test, name, task.num_classes,
                                       recipe=classifier_recipe(tier.classifier_epochs))
    ctx = _Context(tier, task, classifier, real_statistics(task, classifier, tier.n_per_class),
                   Path(out) if out is not None else None)
    clock["classifier"] = time.perf_counter() - start
    say(f"evaluation classifier: test accuracy {classifier.test_accuracy:.1f} % ({clock['classifier']:.0f} s)")

    if original is None:
        original = build_model(tier, task.input_shape, task.num_classes, seed=1)
        clock["original"] = train_denoiser(original, task.train, tier.recipe, seed=1, flip=tier.flip).seconds
    original = original.to(device)
    ev_original = ctx.evaluate(original)
    rows = [_row("original", "original", 1, ev_original, clock.get("original", 0.0), tier.recipe.to_dict())]
    grids = {"original": ev_original.grid}
    gates: GateReport | None = None
    for seed in seeds:
        retrain = (retrains or {}).get(seed)
        if retrain is None:
            retrain = build_model(tier, task.input_shape, task.num_classes, seed=seed)
            clock[f"retrain/{seed}"] = train_denoiser(retrain, task.retain, tier.recipe, seed=seed,
                                                      flip=tier.flip).seconds
        ev_retrain = ctx.evaluate(retrain.to(device))
        rows.append(_row("retrain", "retrain", seed, ev_retrain, clock.get(f"retrain/{seed}", 0.0),
                         tier.recipe.to_dict()))
        grids.setdefault("retrain", ev_retrain.grid)
        if gates is None:
            gates = validity_gates(ev_original, ev_retrain, tier.recognition, fd_factor=tier.fd_factor)
            say("\n".join(gates.lines()))
        for label in methods if methods is not None else PROTOCOL_METHODS:
            preset = PROTOCOL_METHODS.get(label, label)
            overrides = tier.budgets.get(preset, {})
            result = unlearn(original, task, method=preset, seed=seed, profile=tier.profile, **overrides)
            ev = ctx.evaluate(result.model, reference=ev_retrain)
            rows.append(_row(label, get_method(preset).name, seed, ev, result.seconds, result.hparams))
            grids.setdefault(label, ev.grid)
            clock[f"{label}/{seed}"] = result.seconds + ev.seconds
            say(f"{label} seed {seed}: ua {ev.metrics['ua']:.1f} fd_clf {ev.metrics['fd_clf']:.3f} "
                f"({result.seconds:.1f} s + eval {ev.seconds:.1f} s)")
    clock["total"] = time.perf_counter() - start
    run = ProtocolRun(rows, gates, seconds=clock)
    if ctx.out is not None:
        run.files = _write(ctx, run, grids)
    return run


def _write(ctx: _Context, run: ProtocolRun, grids: dict[str, torch.Tensor]) -> list[Path]:
    c = ctx.task.forgotten_classes[0]
    files = [save_sample_grid(grid, ctx.out / f"samples-{label.replace('/', '_')}.png", c, label)
             for label, grid in grids.items()]
    files.append(save_comparison(grids, ctx.out / "comparison.png", c, f"{ctx.tier.name}: forget class {c}"))
    record = {"tier": ctx.tier.settings(), "classifier": ctx.classifier.describe(), "gates": run.gates.as_dict(),
              "rows": run.rows, "seconds": run.seconds}
    path = ctx.out / "results.json"
    atomic_write_text(path, json.dumps(record, indent=1, default=str))
    return [*files, path]
