"""What the Fashion-MNIST headline costs: each method's evaluation (all metrics) against its unlearning, and the
first run's time estimated from the pieces.

Setup: protocol ``fmnist-random10`` (or ``--protocol``) at its full size, seed 1, on the CPU with one torch thread.
The original model, the retrained model and ``--shadows`` U-LiRA shadow models come from the model cache (trained
first when absent; their training times are read from the checkpoints). For every method (``--methods``, default
the protocol's), each repeat runs ``unlearn`` with the protocol's values and then ``evaluate`` with the protocol's
evaluation options (its MIAs, K attack draws of the primary MIA, U-LiRA against the retrained model), timing both
with ``--clock``; the ratio eval/unlearn is per repeat (same background load), its median is printed.

The U-LiRA part of an evaluation costs the same whatever K: it scores D_f once and looks the shadow Gaussians up,
so ``--shadows 2`` (the default here) times it correctly; the protocol's K shadows cost K shadow trainings once
per protocol, estimated from one shadow's measured training time.

The estimate of a first run (empty caches) of ``fmnist-random10`` and one ``fmnist-class<c>``: S originals (one
per seed, shared by both), S retrains and S noise-floor retrains per protocol, K shadows (random forgetting only),
and per seed every method's unlearning and evaluation plus the evaluation of the two Retrain rows.

Training times are the checkpoints' wall-clock times, so the estimate uses ``--clock wall`` by default.

    python bench/fmnist_cost.py [--methods ft,rl] [--repeats 1] [--clock wall|cpu] [--shadows 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from unlearnlab.api import unlearn
from unlearnlab.bench.cache import load_checkpoint
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.plan import NOISE_FLOOR, REFERENCE, plan
from unlearnlab.bench.trained import model_cache, original_model, retrained_model
from unlearnlab.bench.ulira import reference_for, shadow_gaussians, shadow_identity
from unlearnlab.data.forget import make_task
from unlearnlab.errors import DivergenceError
from unlearnlab.evaluation import evaluate
from unlearnlab.models import create
from unlearnlab.protocols import get_protocol


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(_row(r, widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", default="fmnist-random10")
    parser.add_argument("--methods", default=None, help="comma-separated (default: the protocol's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(common.CLOCKS), default="wall",
                        help="wall (default: comparable with the checkpoints' wall-clock training times) or cpu")
    parser.add_argument("--shadows", type=int, default=2, help="U-LiRA shadows trained for the timing (even)")
    parser.add_argument("--cache", default=None, help="model cache folder (default $UNLEARNLAB_CACHE)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    common.limit_threads(args.threads)
    timer = common.CLOCKS[args.clock]
    spec = get_protocol(args.protocol)
    config: RunConfig = spec.run_config(cache_dir=args.cache, threads=args.threads, device="cpu")
    shadows = args.shadows if spec.ulira_shadows else None
    # the protocol's settings as a custom grid: its pinned shadow count is replaced by the timing's
    p = plan(RunConfig(**{**config.model_dump(), "protocol": None, "ulira_shadows": shadows}))
    print(common.describe_machine(p.device))
    print(f"protocol {spec.label()} · clock {args.clock} · {args.repeats} repeat(s) · timing shadows {shadows}")
    cache = model_cache(p)
    task = make_task(config.dataset, config.forget, 1, device=p.device, root=config.root)
    original, original_meta = original_model(cache, task, p, seed=1)
    retrained, retrain_meta = retrained_model(cache, task, p, 1)
    reference = evaluate(retrained, task, primary_mia=config.primary_mia)
    ulira = None
    shadow_seconds = float("nan")
    if shadows:
        start = time.perf_counter()
        gaussians = shadow_gaussians(p, cache, task)
        score_seconds = (time.perf_counter() - start) / shadows
        meta = load_checkpoint(cache.path(shadow_identity(p, task, 0, shadows)), create(config.model, task))
        shadow_seconds = float(meta["seconds"]) + score_seconds  # its training (checkpoint) + loading and scoring
        ulira = reference_for(gaussians, p, task, retrained)
    options = p.eval_options(ulira)
    print(f"training (from the checkpoints, wall): original {original_meta['seconds']:.1f} s on |D| = {len(task.train)}"
          f", retrain {retrain_meta['seconds']:.1f} s on |D_r| = {len(task.retain)}; one shadow (training + scoring "
          f"the pool) {shadow_seconds:.1f} s")
    methods = [m for m in (args.methods.split(",") if args.methods else p.methods) if m not in (REFERENCE,
                                                                                                 NOISE_FLOOR)]
    times: dict[str, dict[str, list[float]]] = {m: {"unlearn": [], "eval": []} for m in methods}
    eval_reference: list[float] = []
    for r in range(args.repeats):
        start = timer()
        evaluate(retrained, task, None, config.primary_mia, options=options)
        eval_reference.append(timer() - start)
        for method in methods[r % len(methods):] + methods[: r % len(methods)]:
            start = timer()
            try:
                res = unlearn(original, task, method=method, seed=1, **p.hparams[method])
            except DivergenceError as err:  # untuned values may diverge: say so and go on
                print(f"{method}: diverged ({err})")
                continue
            times[method]["unlearn"].append(timer() - start)
            start = timer()
            evaluate(res.model, task, reference, config.primary_mia, options=options)
            times[method]["eval"].append(timer() - start)
    rows = []
    for m in [m for m in methods if times[m]["unlearn"]]:
        ratios = [e / u for e, u in zip(times[m]["eval"], times[m]["unlearn"])]
        rows.append([m, f"{common.median(times[m]['unlearn']):.2f}", f"{common.median(times[m]['eval']):.2f}",
                     f"{common.median(ratios):.2f}"])
    print(f"\nPer method, seconds ({args.clock} clock; eval = all metrics of the protocol: "
          f"{', '.join(options.mias)}, K = {options.attack_draws} draws of {config.primary_mia}"
          f"{', U-LiRA' if ulira else ''}):")
    _table(["method", "unlearn s", "eval s", "eval / unlearn"], rows)
    _estimate(spec, p, original_meta, retrain_meta, shadow_seconds, times, common.median(eval_reference))


def _estimate(spec: Any, p: Any, original_meta: dict, retrain_meta: dict, shadow_seconds: float,
              times: dict[str, dict[str, list[float]]], eval_reference: float) -> None:
    """Print the first-run estimate of the random and one class-wise protocol from the measured pieces."""
    seeds = len(spec.seeds)
    k = spec.ulira_shadows or 0
    timed = [t for t in times.values() if t["unlearn"]]
    per_seed = sum(common.median(t["unlearn"]) + common.median(t["eval"]) for t in timed) * len(times) / len(timed)
    cells = seeds * (per_seed + 2 * eval_reference)
    originals = seeds * original_meta["seconds"]
    retrains = 2 * seeds * retrain_meta["seconds"]
    shadows = k * shadow_seconds
    random_total = originals + retrains + shadows + cells
    class_total = retrains + cells  # originals shared; no U-LiRA
    print(f"\nFirst-run estimate ({seeds} seeds, {len(times)} methods (diverged ones counted at the mean of the "
          f"others), {k} shadows; measured pieces above):")
    _table(["part", "fmnist-random10 min", "fmnist-class<c> min"], [
        ["originals (one per seed, shared)", f"{originals / 60:.1f}", "0.0 (cached)"],
        ["retrains + noise-floor retrains", f"{retrains / 60:.1f}", f"{retrains / 60:.1f}"],
        ["U-LiRA shadows", f"{shadows / 60:.1f}", "–"],
        ["cells (unlearn + evaluate)", f"{cells / 60:.1f}", f"{cells / 60:.1f}"],
        ["total", f"{random_total / 60:.1f}", f"{class_total / 60:.1f}"],
    ])


if __name__ == "__main__":
    main()
