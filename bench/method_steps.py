"""Cost of one optimizer step of every registered unlearning method, relative to a plain FT step.

Setup: ``small_cnn`` on random inputs ``[n, 3, 32, 32]`` with 10 classes, |D_f| = 256, |D_r| = 2304, batch 64
(``batch_size=64`` is passed to every method that has the key; method-specific sizes such as scrub-original's
``forget_batch_size=32`` keep their preset value), on CUDA when present, else CPU.

Iterative methods: ``unlearn()`` includes per-run setup (saliency mask, teacher copy, optimizer state), so
each method runs at two epoch counts E1 < E2 and

    seconds per step = (t(E2) − t(E1)) / (steps(E2) − steps(E1)),

which cancels the setup; ``setup = t(E1) − steps(E1) · (seconds per step)`` is reported too. ``t`` is
``UnlearnResult.seconds`` (the library's timed region: everything the method does, without its discarded
warm-up steps) and ``steps`` is ``UnlearnResult.counters.optimizer_steps``. E1 = 1 and E2 = 2, except for
methods with fewer than ``--min-delta-steps`` steps per epoch (GA: 256/64 = 4), where
E2 = 1 + ceil(min_delta / steps_per_epoch) so the difference spans enough steps to be measurable.

A second, within-run estimate comes from the same E2 runs (CPU only): a global optimizer step post-hook
stamps the clock after every ``optimizer.step()`` of an optimizer over more than one element (EUPMU's scalar
λ optimizer is ignored), and ``(last stamp − first stamp) / (stamps − 1)`` is the mean step interval, epoch
boundaries included and setup excluded. It does not difference two noisy runs, so it is much less noisy; both
are reported.

One-shot methods (family "one-shot", or no ``epochs`` hyperparameter; retrain) are reported as their total
time relative to one FT epoch (FT with epochs=1 in the same repeat); retrain runs ``--retrain-epochs`` epochs
(the default recipe trains 60, so multiply).

All timed calls are interleaved round-robin (order rotated per repeat); ratios are medians of per-repeat
ratios. ``--clock cpu`` reads the same timed region with ``time.process_time`` instead of
``time.perf_counter`` (CPU device only): on a shared CPU machine it drops time spent waiting for a core.
Methods that fail to run in this setting are listed as skipped, with the error.

    python bench/method_steps.py [--methods ft,scrub,'salun*',...] [--repeats 3] [--clock wall|cpu]
                                 [--set minnorm-og.grad_sample_size=50]
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

import unlearnlab as ul
import unlearnlab.api
from unlearnlab.bench.config import parse_assignment
from unlearnlab.methods import get_method, list_methods
from unlearnlab.models.registry import create


class StepStamps:
    """Clock readings after every optimizer step (optimizers over more than one element only)."""

    def __init__(self, timer):
        self.timer = timer
        self.times: list[float] = []

    def __call__(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if sum(p.numel() for g in optimizer.param_groups for p in g["params"]) > 1:
            self.times.append(self.timer())

    def mean_interval(self) -> float:
        t = self.times
        return (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else math.nan


def expand(spec: str | None) -> list[str]:
    """Comma-separated names, aliases or shell patterns → canonical method names, in registry order."""
    if not spec:
        return list_methods()
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        names = list_methods(item) if any(c in item for c in "*?[") else [get_method(item).name]
        out += [n for n in names if n not in out]
    return out


def is_oneshot(name: str) -> bool:
    info = get_method(name)
    return info.family.startswith("one-shot") or "epochs" not in info.defaults


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=None,
                    help="comma-separated names or patterns (default: every registered method); ft is always added")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0,
                    help="discarded rounds (a first call of every method already runs, to count its steps)")
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
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=VALUE",
                    help="hyperparameter override, e.g. --set minnorm-og.grad_sample_size=50 (repeatable)")
    args = ap.parse_args(argv)
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.overrides:
        method, key, value = parse_assignment(item)
        overrides.setdefault(get_method(method).name, {})[key] = value

    common.limit_threads(args.threads)
    device = common.pick_device(args.device)
    timer = common.clock(args.clock)
    if args.clock == "cpu":
        if device.type == "cuda":
            ap.error("--clock cpu measures process CPU time, which does not include GPU work: use wall on CUDA")
        # unlearn() reads its timed region with time.perf_counter(); point that module's clock at the process
        # CPU clock, in this benchmark process only (the library code is unchanged).
        unlearnlab.api.time = types.SimpleNamespace(perf_counter=time.process_time)
    names = expand(args.methods)
    if "ft" not in names:
        names.insert(0, "ft")

    gen = torch.Generator().manual_seed(0)
    n_f, n_r = args.n_forget, args.n_retain
    x = torch.rand(n_f + n_r, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (n_f + n_r,), generator=gen).to(device)
    forget, retain = (x[:n_f], y[:n_f]), (x[n_f:], y[n_f:])
    model = create("small_cnn", input_shape=(3, 32, 32), num_classes=10, seed=1, device=device)

    def call(method: str, epochs: int | None) -> ul.UnlearnResult:
        keys = get_method(method).defaults
        hp: dict[str, Any] = {}
        if epochs is not None and "epochs" in keys:
            hp["epochs"] = epochs
        if "batch_size" in keys:
            hp["batch_size"] = args.batch_size
        hp.update(overrides.get(get_method(method).name, {}))
        return ul.unlearn(model, forget=forget, retain=retain, method=method, **hp)

    stamps = StepStamps(timer)
    in_run_ok = device.type == "cpu"  # on CUDA the stamps would need a synchronise per step
    handle = register_optimizer_step_post_hook(stamps) if in_run_ok else None

    print(f"# bench/method_steps.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# small_cnn, x ~ U[0,1) of shape [n, 3, 32, 32], 10 classes, |D_f|={n_f}, |D_r|={n_r}, "
          f"batch_size={args.batch_size}, repeats={args.repeats}, clock={args.clock}")

    # First call of every method (discarded): counts its steps per epoch, decides E2, finds methods that fail.
    skipped: dict[str, str] = {}
    epochs2: dict[str, int] = {}
    iterative: list[str] = []
    oneshot: list[str] = []
    for name in names:
        one = is_oneshot(name)
        try:
            res = call(name, args.retrain_epochs if one else 1)
        except Exception as err:
            skipped[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:150]}"
            continue
        if one:
            oneshot.append(name)
        else:
            iterative.append(name)
            epochs2[name] = 1 + max(1, math.ceil(args.min_delta_steps / max(1, res.counters.optimizer_steps)))
    if "ft" not in iterative:
        raise SystemExit(f"ft, the baseline, failed: {skipped.get('ft')}")

    results: dict[str, ul.UnlearnResult] = {}
    in_run: dict[str, list[float]] = {}

    def runner(key: str, method: str, epochs: int | None):
        def fn() -> float:
            stamps.times.clear()
            res = call(method, epochs)
            results[key] = res
            in_run.setdefault(key, []).append(stamps.mean_interval())
            return res.seconds
        return fn

    fns = {}
    for name in iterative:
        fns[f"{name}@1"] = runner(f"{name}@1", name, 1)
        fns[f"{name}@{epochs2[name]}"] = runner(f"{name}@{epochs2[name]}", name, epochs2[name])
    for name in oneshot:
        fns[f"{name}@once"] = runner(f"{name}@once", name, args.retrain_epochs)

    log = print if args.verbose else None
    t = common.interleaved_timings(fns, args.repeats, args.warmup, device, log)
    if handle is not None:
        handle.remove()
    for key in in_run:  # drop the warm-up rounds' entries
        in_run[key] = in_run[key][-args.repeats:]

    per_step: dict[str, list[float]] = {}
    setup: dict[str, list[float]] = {}
    cols: dict[str, dict[str, str]] = {"epochs": {}, "steps/epoch": {}, "fwd samples/step": {}}
    flat: list[str] = []
    for name in iterative:
        e2 = epochs2[name]
        r1, r2 = results[f"{name}@1"].counters, results[f"{name}@{e2}"].counters
        ds = r2.optimizer_steps - r1.optimizer_steps
        if ds <= 0:
            flat.append(name)
            continue
        per_step[name] = [(b - a) / ds for a, b in zip(t[f"{name}@1"], t[f"{name}@{e2}"])]
        setup[name] = [a - r1.optimizer_steps * s for a, s in zip(t[f"{name}@1"], per_step[name])]
        cols["epochs"][name] = f"1 vs {e2}"
        cols["steps/epoch"][name] = f"{r1.optimizer_steps}"
        cols["fwd samples/step"][name] = f"{(r2.forward_samples - r1.forward_samples) / ds:.0f}"
    cols["setup s"] = {n: f"{common.median(v):.3f}" for n, v in setup.items()}
    if in_run_ok:
        within = {n: in_run[f"{n}@{epochs2[n]}"] for n in per_step}
        cols["in-run s/step"] = {n: f"{common.median(v):.4f}" for n, v in within.items()}
        cols["in-run x ft"] = {n: f"{common.median(common.paired_ratios(within, n, 'ft')):.3f}" for n in within}
        cols["IQR"] = {n: f"{common.iqr(common.paired_ratios(within, n, 'ft')):.3f}" for n in within}
    print()
    common.print_ratios(
        per_step, "ft",
        title="Seconds per optimizer step, (t(E2) - t(E1)) / (steps(E2) - steps(E1)), relative to an FT step:",
        extra=cols,
    )
    if in_run_ok:
        print("(in-run: mean interval between optimizer steps within the E2 run; ratio and IQR per repeat vs ft)")
    once = [n for n in oneshot] + flat
    if once:
        table = {"ft (1 epoch)": t["ft@1"]}
        for name in oneshot:
            label = f"{name} ({args.retrain_epochs} epoch)" if "epochs" in get_method(name).defaults else name
            table[label] = t[f"{name}@once"]
        for name in flat:
            table[f"{name} (steps do not grow with epochs; 1 epoch)"] = t[f"{name}@1"]
        print()
        common.print_ratios(table, "ft (1 epoch)", title="One-shot methods: total time relative to one FT epoch:")
    if skipped:
        print("\nSkipped (failed in this setting):")
        for name, why in skipped.items():
            print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
