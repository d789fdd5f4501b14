"""Cost of one optimizer step of every registered unlearning method, relative to a plain FT step.

Setup: ``small_cnn`` on random inputs ``[n, 3, 32, 32]`` with 10 classes, |D_f| = 256, |D_r| = 2304, batch 64
(``batch_size=64`` is passed to every method; method-specific batch sizes such as scrub-original's
``forget_batch_size=32`` keep their preset value), on CUDA when present, else CPU.

Iterative methods: ``unlearn()`` includes per-run setup (saliency mask, teacher copy, optimizer state), so
each method runs at two epoch counts E1 < E2 and

    seconds per step = (t(E2) − t(E1)) / (steps(E2) − steps(E1)),

which cancels the setup; ``setup = t(E1) − steps(E1) · (seconds per step)`` is reported too. ``t`` is
``UnlearnResult.seconds`` (the library's timed region: everything the method does, without its
discarded warm-up steps). E1 = 1 and E2 = 2, except for methods with fewer than ``--min-delta-steps``
steps per epoch (GA: 256/64 = 4), where E2 = 1 + ceil(min_delta / steps_per_epoch) so the difference
spans enough steps to be measurable.

One-shot methods (retrain) are reported as their total time relative to one FT epoch (FT with epochs=1
in the same repeat), run with ``--retrain-epochs`` epochs (the default recipe trains 60).

Every timed call of every method is interleaved round-robin (order rotated per repeat); ratios are medians
of per-repeat ratios.

``--clock cpu`` reads that same timed region with ``time.process_time`` instead of ``time.perf_counter``
(CPU device only): on a shared CPU machine it drops the time spent waiting for a core.

    python bench/method_steps.py [--methods ft,scrub,...] [--repeats 3] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

import unlearnlab as ul
import unlearnlab.api
from unlearnlab.methods import get_method, list_methods
from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.models.registry import create


def is_iterative(name: str) -> bool:
    info = get_method(name)
    return isinstance(info.build(info.resolve({}), 10), IterativeUnlearner)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=None,
                    help="comma-separated method names (default: every registered method); 'ft' is always added")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0, help="discarded rounds (unlearn() already warms up)")
    ap.add_argument("--n-forget", type=int, default=256)
    ap.add_argument("--n-retain", type=int, default=2304)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--min-delta-steps", type=int, default=32)
    ap.add_argument("--retrain-epochs", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=sorted(common.CLOCKS), default="wall",
                    help="'cpu': the timed region of unlearn() is read with time.process_time (shared CPU "
                         "machines; CPU device only)")
    ap.add_argument("--verbose", action="store_true", help="print every timed call")
    args = ap.parse_args(argv)

    common.limit_threads(args.threads)
    device = common.pick_device(args.device)
    if args.clock == "cpu":
        if device.type == "cuda":
            ap.error("--clock cpu measures process CPU time, which does not include GPU work: use wall on CUDA")
        # unlearn() reads its timed region with time.perf_counter(); point that module's clock at the process
        # CPU clock for this benchmark process only (the library code is unchanged).
        unlearnlab.api.time = types.SimpleNamespace(perf_counter=time.process_time)
    names = [m.strip() for m in args.methods.split(",")] if args.methods else list_methods()
    names = [get_method(n).name for n in names]  # canonical names (accepts aliases)
    if "ft" not in names:
        names.insert(0, "ft")
    iterative = [n for n in names if is_iterative(n)]
    oneshot = [n for n in names if n not in iterative]

    gen = torch.Generator().manual_seed(0)
    n_f, n_r = args.n_forget, args.n_retain
    x = torch.rand(n_f + n_r, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (n_f + n_r,), generator=gen).to(device)
    forget, retain = (x[:n_f], y[:n_f]), (x[n_f:], y[n_f:])
    model = create("small_cnn", input_shape=(3, 32, 32), num_classes=10, seed=1, device=device)

    def call(method: str, epochs: int) -> ul.UnlearnResult:
        return ul.unlearn(model, forget=forget, retain=retain, method=method, epochs=epochs,
                          batch_size=args.batch_size)

    # Steps per epoch (and a first, discarded run of every method): decides E2 for each method.
    epochs2: dict[str, int] = {}
    for name in iterative:
        steps = call(name, 1).counters.optimizer_steps
        epochs2[name] = 1 + max(1, math.ceil(args.min_delta_steps / max(1, steps)))

    results: dict[str, ul.UnlearnResult] = {}

    def runner(key: str, method: str, epochs: int):
        def fn() -> float:
            res = call(method, epochs)
            results[key] = res
            return res.seconds
        return fn

    fns = {}
    for name in iterative:
        fns[f"{name}@1"] = runner(f"{name}@1", name, 1)
        fns[f"{name}@{epochs2[name]}"] = runner(f"{name}@{epochs2[name]}", name, epochs2[name])
    for name in oneshot:
        fns[f"{name}@{args.retrain_epochs}"] = runner(f"{name}@{args.retrain_epochs}", name, args.retrain_epochs)

    print(f"# bench/method_steps.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# small_cnn, x ~ U[0,1) of shape [n, 3, 32, 32], 10 classes, |D_f|={n_f}, |D_r|={n_r}, "
          f"batch_size={args.batch_size}, repeats={args.repeats}, clock={args.clock}")
    log = print if args.verbose else None
    t = common.interleaved_timings(fns, args.repeats, args.warmup, device, log)

    per_step: dict[str, list[float]] = {}
    setup: dict[str, list[float]] = {}
    info_steps, info_samples, info_epochs = {}, {}, {}
    for name in iterative:
        e2 = epochs2[name]
        r1, r2 = results[f"{name}@1"].counters, results[f"{name}@{e2}"].counters
        ds = r2.optimizer_steps - r1.optimizer_steps
        per_step[name] = [(b - a) / ds for a, b in zip(t[f"{name}@1"], t[f"{name}@{e2}"])]
        setup[name] = [a - r1.optimizer_steps * s for a, s in zip(t[f"{name}@1"], per_step[name])]
        info_epochs[name] = f"1 vs {e2}"
        info_steps[name] = f"{r1.optimizer_steps}"
        info_samples[name] = f"{(r2.forward_samples - r1.forward_samples) / ds:.0f}"
    print()
    common.print_ratios(
        per_step, "ft", title="Seconds per optimizer step (setup cancelled), relative to an FT step:",
        extra={"epochs": info_epochs, "steps/epoch": info_steps, "fwd samples/step": info_samples,
               "setup s (median)": {n: f"{common.median(v):.3f}" for n, v in setup.items()}},
    )
    if oneshot:
        one = {"ft (1 epoch)": t["ft@1"]}
        for name in oneshot:
            one[f"{name} ({args.retrain_epochs} epoch(s))"] = t[f"{name}@{args.retrain_epochs}"]
        print()
        common.print_ratios(one, "ft (1 epoch)", title="One-shot methods: total time relative to one FT epoch:")


if __name__ == "__main__":
    main()
