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

One-shot methods (registered as a ``OneShot`` builder, or no ``epochs`` hyperparameter; retrain) are reported as
their total time relative to one FT epoch (FT with epochs=1 in the same repeat); retrain runs
``--retrain-epochs`` epochs (the default recipe trains 60, so multiply).

All timed calls are interleaved round-robin (order rotated per repeat), and the timed region is read on both the
process CPU clock (``time.process_time``; on a shared CPU machine it drops time spent waiting for a core) and the
wall clock: this script stands in for ``unlearnlab.api``'s ``time`` module with :class:`RegionClock`, whose
``perf_counter`` is the wall clock and also notes the CPU clock (in this benchmark process only; the library is
unchanged). Each ratio is the geometric mean of per-repeat ratios with a 95 % t-interval (bench/common.py);
``--clock`` picks the clock of the warnings (default cpu on a CPU device, wall on CUDA). Methods that fail to run
in this setting are listed as skipped, with the error.

    python bench/method_steps.py [--methods ft,scrub,'salun*',...] [--repeats 10] [--clock auto|cpu|wall]
                                 [--set minnorm-og.grad_sample_size=50] [--set eupmu.joint_forward=true]
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
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
from unlearnlab.methods.registry import OneShot
from unlearnlab.models.registry import create


class RegionClock:
    """Stands in for ``unlearnlab.api.time``: ``perf_counter()`` returns the wall clock and notes both clocks, so the
    library's timed region (its first to its last reading in one call) is known on the CPU and the wall clock."""

    def __init__(self) -> None:
        self.reads: list[common.Stamp] = []

    def perf_counter(self) -> float:
        self.reads.append(common.Stamp.now())
        return self.reads[-1].wall

    def region(self) -> dict[str, float]:
        first, last = self.reads[0], self.reads[-1]
        return {"cpu": last.cpu - first.cpu, "wall": last.wall - first.wall}


class StepStamps:
    """Both clocks after every optimizer step (optimizers over more than one element only)."""

    def __init__(self) -> None:
        self.times: list[common.Stamp] = []

    def __call__(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if sum(p.numel() for g in optimizer.param_groups for p in g["params"]) > 1:
            self.times.append(common.Stamp.now())

    def mean_interval(self) -> dict[str, float]:
        t = self.times
        if len(t) < 2:
            return {"cpu": math.nan, "wall": math.nan}
        return {"cpu": (t[-1].cpu - t[0].cpu) / (len(t) - 1), "wall": (t[-1].wall - t[0].wall) / (len(t) - 1)}


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
    return isinstance(info.method, OneShot) or "epochs" not in info.defaults


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=None,
                    help="comma-separated names or patterns (default: every registered method); ft is always added")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=0,
                    help="discarded rounds (a first call of every method already runs, to count its steps)")
    ap.add_argument("--n-forget", type=int, default=256)
    ap.add_argument("--n-retain", type=int, default=2304)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--min-delta-steps", type=int, default=32)
    ap.add_argument("--retrain-epochs", type=int, default=1)
    common.add_arguments(ap)
    ap.add_argument("--verbose", action="store_true", help="print every timed call")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=VALUE",
                    help="hyperparameter override, e.g. --set minnorm-og.grad_sample_size=50 (repeatable)")
    args = ap.parse_args(argv)
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.overrides:
        method, key, value = parse_assignment(item)
        overrides.setdefault(get_method(method).name, {})[key] = value

    device, clock = common.setup(ap, args)
    region = RegionClock()
    unlearnlab.api.time = region  # the library's timed region, read on both clocks (this process only)
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

    stamps = StepStamps()
    in_run_ok = device.type == "cpu"  # on CUDA the stamps would need a synchronise per step
    handle = register_optimizer_step_post_hook(stamps) if in_run_ok else None

    print(f"# bench/method_steps.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# small_cnn, x ~ U[0,1) of shape [n, 3, 32, 32], 10 classes, |D_f|={n_f}, |D_r|={n_r}, "
          f"batch_size={args.batch_size}, repeats={args.repeats}, decision clock={clock}")
    if overrides:
        print(f"# overrides: {overrides}")

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
    in_run = common.Timings()

    def runner(key: str, method: str, epochs: int | None):
        def fn() -> dict[str, float]:
            stamps.times.clear()
            region.reads.clear()
            results[key] = call(method, epochs)
            in_run.add(key, stamps.mean_interval())
            return region.region()
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
    for table in in_run.by_clock.values():  # drop the warm-up rounds' entries
        for key in table:
            table[key] = table[key][-args.repeats:]

    per_step, setup = common.Timings(), common.Timings()
    cols: dict[str, dict[str, str]] = {"epochs": {}, "steps/epoch": {}, "fwd samples/step": {}}
    flat: list[str] = []
    for name in iterative:
        e2 = epochs2[name]
        r1, r2 = results[f"{name}@1"].counters, results[f"{name}@{e2}"].counters
        ds = r2.optimizer_steps - r1.optimizer_steps
        if ds <= 0:
            flat.append(name)
            continue
        for kind, table in t.by_clock.items():
            steps = [(b - a) / ds for a, b in zip(table[f"{name}@1"], table[f"{name}@{e2}"])]
            per_step.by_clock[kind][name] = steps
            setup.by_clock[kind][name] = [a - r1.optimizer_steps * s for a, s in zip(table[f"{name}@1"], steps)]
        cols["epochs"][name] = f"1 vs {e2}"
        cols["steps/epoch"][name] = f"{r1.optimizer_steps}"
        cols["fwd samples/step"][name] = f"{(r2.forward_samples - r1.forward_samples) / ds:.0f}"
    cols[f"setup s ({clock})"] = {n: f"{common.median(v):.3f}" for n, v in setup.clock(clock).items()}
    shown = common.clocks_for(device)
    print()
    common.print_ratios(
        per_step, "ft", clock=clock, tolerance=args.tolerance, clocks=shown, extra=cols,
        title="Seconds per optimizer step, (t(E2) - t(E1)) / (steps(E2) - steps(E1)), relative to an FT step:",
    )
    if in_run_ok:
        within = in_run.derive(lambda table: {n: table[f"{n}@{epochs2[n]}"] for n in per_step.clock(clock)})
        print()
        common.print_ratios(
            within, "ft", clock=clock, tolerance=args.tolerance, clocks=shown,
            title="In-run: mean interval between optimizer steps within the E2 run, relative to FT's:",
        )
    once = [*oneshot, *flat]
    if once:
        table = common.Timings()
        for kind, src in t.by_clock.items():
            table.by_clock[kind]["ft (1 epoch)"] = src["ft@1"]
            for name in oneshot:
                label = f"{name} ({args.retrain_epochs} epoch)" if "epochs" in get_method(name).defaults else name
                table.by_clock[kind][label] = src[f"{name}@once"]
            for name in flat:
                table.by_clock[kind][f"{name} (steps do not grow with epochs; 1 epoch)"] = src[f"{name}@1"]
        print()
        common.print_ratios(table, "ft (1 epoch)", clock=clock, tolerance=args.tolerance, clocks=shown,
                            title="One-shot methods: total time relative to one FT epoch:")
    if skipped:
        print("\nSkipped (failed in this setting):")
        for name, why in skipped.items():
            print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
