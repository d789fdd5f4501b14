"""One prepared device check: every method under the precision policy, and the throughput ratios at paper scale.

Sections, each written to ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` as soon as it finishes (a run that is cut
off still reports what it measured):

a. ``methods``: every registered classification method on ``small_cnn`` with synthetic CIFAR-shaped data (class
   templates + noise, so a model learns and generalises), once in the device's default precision (bf16 autocast on
   CUDA; ``--precision`` overrides, e.g. bf16 on CPU) and once in fp32. Checks: no divergence, finite weights,
   parameters changed, masked methods keep at least their frozen share of entries bit-identical, and
   UA / RA / TA of the two runs within ``--tolerance`` points.
b. ``throughput``: images/s of ``unlearnlab.train`` vs a bare forward/backward/step loop on ResNet-18 (CIFAR stem)
   in fp32 and bf16 autocast (channels-last on CUDA, as the library trains image models there), and the speed-up
   of each over a plain fp32 NCHW bare loop.
c. ``steps``: seconds per optimizer step of EUPMU (both forward modes), UNGrad, DualOptim (vs its host), SCRUB and
   certified gradient clipping relative to an FT step on ResNet-18: (t(E=2) − t(E=1)) / (steps(2) − steps(1)).
d. ``projection``: MinNorm-OG's step with ``grad_sample_size`` 50 relative to the same loop without projection
   (``mnog/gd``) on ResNet-18.
e. ``families``: one unlearning run of each other modality at its dev size (diffusion: ``ddpm/salun`` on the
   Fashion-MNIST UNet with synthetic 14×14 images; language model: ``llm`` presets when that family exists).
f. peak GPU memory of every timed item (``peak_mb``; None on CPU).

Targets (issue: ratios side by side): training loop ≥ 0.9× bare; bf16 + channels-last ≥ 2× fp32; EUPMU ≤ 1.35× FT;
DualOptim ≤ 1.1× its host; MinNorm-OG projection step ≤ 3× a plain step. ``--size tiny`` shrinks everything for a
CPU run in CI (tests/test_gpu_check.py).

    python bench/gpu_check.py [--device cuda] [--size full|tiny] [--out runs/gpu-check] [--methods a,b]
                              [--precision auto|bf16|fp16|fp32] [--sections methods,throughput,...]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

import unlearnlab as ul
from unlearnlab.evaluation import evaluate
from unlearnlab.families import list_families
from unlearnlab.methods import get_method, list_methods
from unlearnlab.models.registry import create
from unlearnlab.training import Precision, Recipe, train
from unlearnlab.utils import atomic_write_bytes

SECTIONS = ("methods", "throughput", "steps", "projection", "families")
SIZES: dict[str, dict[str, Any]] = {
    "full": {"n": 5120, "forget": 512, "batch": 128, "original_epochs": 8, "big_model": "resnet18",
             "big_batch": 256, "big_n": 2048, "throughput_steps": 30, "repeats": 3},
    "tiny": {"n": 480, "forget": 48, "batch": 32, "original_epochs": 5, "big_model": "small_cnn",
             "big_batch": 32, "big_n": 256, "throughput_steps": 4, "repeats": 1},
}
STEP_METHODS = ("ft", "eupmu", "eupmu:joint_forward", "ungrad", "ungrad:joint_forward", "salun", "dualoptim/salun",
                "scrub", "certified-gradclip")
REQUIRED = {"eupmu-normalised": {"epsilon": -0.01, "lambda_lr": 0.01}}


class Report:
    """Results per section, rewritten (JSON + Markdown) after every item."""

    def __init__(self, out: Path, header: dict[str, Any]):
        self.out, self.data = out, {"header": header, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, name: str, row: dict[str, Any]) -> None:
        self.data["sections"].setdefault(section, {})[name] = row
        print(f"[{section}] {name}: {json.dumps(row, default=str)}", flush=True)
        atomic_write_bytes(self.out / "gpu_check.json", json.dumps(self.data, indent=1, default=str).encode())
        atomic_write_bytes(self.out / "gpu_check.md", self.markdown().encode())

    def markdown(self) -> str:
        h = self.data["header"]
        lines = [f"# gpu_check {h['date']} — {h['machine']}", "", f"size {h['size']}, precision {h['precision']}"]
        for section, rows in self.data["sections"].items():
            keys = sorted({k for r in rows.values() for k in r})
            lines += ["", f"## {section}", "", "| item | " + " | ".join(keys) + " |",
                      "|---|" + "---|" * len(keys)]
            lines += [f"| {n} | " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for n, r in rows.items()]
        return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v).replace("|", "/")[:160]


def synthetic(n: int, shape: tuple[int, ...], classes: int, device: torch.device, seed: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A colour per class (constant over the image, so even a model that pools globally can see it) plus pixel
    noise, in [0, 1]: learnable but not trivially (the noise hides part of it), so accuracies mean something."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(classes, shape[0], *([1] * (len(shape) - 1)), generator=g).expand(classes, *shape)
    y = torch.arange(n) % classes
    x = (0.6 * templates[y] + 0.4 * torch.rand(n, *shape, generator=g)).clamp(0, 1)
    return x.to(device), y.to(device)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def method_options(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:flag`` (a boolean option set to True)."""
    name, _, flag = spec.partition(":")
    return name, ({flag: True} if flag else {})


def task_data(size: dict[str, Any], device: torch.device) -> tuple[Any, Any, Any]:
    x, y = synthetic(size["n"] + size["n"] // 4, (3, 32, 32), 10, device)
    n, f = size["n"], size["forget"]
    return (x[:f], y[:f]), (x[f:n], y[f:n]), (x[n:], y[n:])


def check_methods(report: Report, args: argparse.Namespace, size: dict[str, Any], device: torch.device) -> None:
    forget, retain, test = task_data(size, device)
    model = create("small_cnn", input_shape=(3, 32, 32), num_classes=10, seed=1, device=device)
    xy = (torch.cat([forget[0], retain[0]]), torch.cat([forget[1], retain[1]]))
    ul.train(model, xy, Recipe(epochs=size["original_epochs"], batch_size=size["batch"], precision=args.precision))
    names = args.methods.split(",") if args.methods else [
        m for m in list_methods() if "classification" in get_method(m).families]
    for name in names:
        info = get_method(name)
        hp: dict[str, Any] = dict(REQUIRED.get(name, {}))
        if "noise_source" in info.defaults:
            hp["noise_source"] = "seeded"  # the fp32 twin must draw the same noise
        elif "epochs" in info.defaults:
            hp["epochs"] = 1  # certified methods keep their epochs: the noisy phase needs its budget
        if "batch_size" in info.defaults:
            hp["batch_size"] = size["batch"]
        row: dict[str, Any] = {}
        try:
            reset_peak(device)
            mixed = ul.unlearn(model, forget=forget, retain=retain, method=name, seed=1,
                               **({"precision": args.precision} if "precision" in info.defaults else {}), **hp)
            row["seconds"], row["peak_mb"] = mixed.seconds, peak_mb(device)
            fp32 = ul.unlearn(model, forget=forget, retain=retain, method=name, seed=1,
                              **({"precision": "fp32"} if "precision" in info.defaults else {}), **hp)
            params = [(p, q) for p, q in zip(model.parameters(), mixed.model.parameters())]
            row["finite"] = all(bool(torch.isfinite(q).all()) for _, q in params)
            same = sum(int((p == q).sum()) for p, q in params)
            total = sum(p.numel() for p, _ in params)
            row["changed"] = same < total
            fraction = mixed.hparams.get("mask_fraction")
            if fraction:
                row["frozen_identical"] = same >= math.floor((1 - fraction) * total)
            a = evaluate(mixed.model, forget=forget, retain=retain, test=test).metrics
            b = evaluate(fp32.model, forget=forget, retain=retain, test=test).metrics
            row["bit_identical_to_fp32"] = all(torch.equal(p, q) for p, q in
                                               zip(mixed.model.parameters(), fp32.model.parameters()))
            row.update({k: round(a[k], 2) for k in ("ua", "ra", "ta")})
            row["max_diff_vs_fp32"] = round(max(abs(a[k] - b[k]) for k in ("ua", "ra", "ta")), 2)
            row["ok"] = bool(row["finite"] and row["changed"] and row.get("frozen_identical", True)
                             and row["max_diff_vs_fp32"] <= args.tolerance)
        except Exception as err:  # a method failing is a finding, not the end of the check
            row.update({"ok": False, "error": f"{type(err).__name__}: {err}"[:300]})
        report.add("methods", name, row)


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
              precision: str, channels_last: bool) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    policy = Precision(precision, x.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    for i in range(steps):
        sl = slice((i * batch) % len(x), (i * batch) % len(x) + batch)
        with policy.autocast():
            loss = F.cross_entropy(model(x[sl]), y[sl])
        opt.zero_grad(set_to_none=True)
        policy.backward(loss)
        policy.step(opt)


def check_throughput(report: Report, args: argparse.Namespace, size: dict[str, Any], device: torch.device) -> None:
    """The library trains image models channels-last on CUDA, so each precision's bare loop does too; a plain
    fp32 NCHW bare loop is the reference of the mixed-precision speed-up."""
    batch, steps = size["big_batch"], size["throughput_steps"]
    n = batch * steps
    x, y = synthetic(n, (3, 32, 32), 10, device)
    model = create(size["big_model"], input_shape=(3, 32, 32), num_classes=10, seed=1, device=device)
    cl = device.type == "cuda"

    def bare(precision: str, channels_last: bool) -> Callable[[], None]:
        return lambda: bare_loop(copy.deepcopy(model).train(), x, y, batch, steps, precision, channels_last)

    def library(precision: str) -> Callable[[], None]:
        return lambda: train(copy.deepcopy(model), ul.TensorData.of(x, y),
                             Recipe(epochs=1, batch_size=batch, schedule="constant", precision=precision))

    fns = {"bare fp32 NCHW": bare("fp32", False)}
    for precision in ("fp32", "bf16"):
        fns[f"bare {precision}"] = bare(precision, cl)
        fns[f"train {precision}"] = library(precision)
    t = common.interleaved_timings(fns, size["repeats"], 1, device).clock("wall")
    rate = {k: n / common.median(v) for k, v in t.items()}
    for precision in ("fp32", "bf16"):
        report.add("throughput", precision + (" channels-last" if cl else ""), {
            "bare_img_s": round(rate[f"bare {precision}"]), "train_img_s": round(rate[f"train {precision}"]),
            "train_vs_bare": rate[f"train {precision}"] / rate[f"bare {precision}"],
            "train_vs_plain_fp32_bare": rate[f"train {precision}"] / rate["bare fp32 NCHW"]})


def per_step(name: str, opts: dict[str, Any], model: torch.nn.Module, forget: Any, retain: Any,
             batch: int, device: torch.device) -> tuple[float, float | None]:
    """(seconds per optimizer step from the difference of an E- and an (E+1)-epoch run, peak MB of the second);
    E = 1, or the preset's epochs for certified methods (their noisy phase needs its budget)."""
    info = get_method(name)
    hp = {**opts, "batch_size": batch} if "batch_size" in info.defaults else dict(opts)
    first = 1
    if "noise_source" in info.defaults:
        hp["noise_source"] = "seeded"
        first = info.defaults["epochs"]
    runs = []
    for epochs in (first, first + 1):
        reset_peak(device)
        res = ul.unlearn(model, forget=forget, retain=retain, method=name, seed=1, epochs=epochs, **hp)
        runs.append((res.seconds, res.counters.optimizer_steps))
    (t1, s1), (t2, s2) = runs
    return (t2 - t1) / max(1, s2 - s1), peak_mb(device)


def big_setting(size: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, Any, Any]:
    n, f = size["big_n"], size["big_n"] // 8
    x, y = synthetic(n, (3, 32, 32), 10, device)
    model = create(size["big_model"], input_shape=(3, 32, 32), num_classes=10, seed=1, device=device)
    return model, (x[:f], y[:f]), (x[f:], y[f:])


def check_steps(report: Report, args: argparse.Namespace, size: dict[str, Any], device: torch.device) -> None:
    model, forget, retain = big_setting(size, device)
    base: dict[str, float] = {}
    for spec in args.step_methods.split(","):
        name, opts = method_options(spec)
        try:
            seconds, peak = per_step(name, opts, model, forget, retain, size["big_batch"], device)
        except Exception as err:
            report.add("steps", spec, {"error": f"{type(err).__name__}: {err}"[:300]})
            continue
        base.setdefault(name, seconds)
        row = {"s_per_step": seconds, "peak_mb": peak}
        if "ft" in base:
            row["vs_ft"] = seconds / base["ft"]
        if name == "dualoptim/salun" and "salun" in base:
            row["vs_host_salun"] = seconds / base["salun"]
        report.add("steps", spec, row)


def check_projection(report: Report, args: argparse.Namespace, size: dict[str, Any], device: torch.device) -> None:
    model, forget, retain = big_setting(size, device)
    plain, _ = per_step("mnog/gd", {}, model, forget, retain, 32, device)
    proj, peak = per_step("minnorm-og", {"grad_sample_size": 50 if size is SIZES["full"] else 8}, model, forget,
                           retain, 32, device)
    report.add("projection", "minnorm-og vs mnog/gd", {"plain_s_per_step": plain, "projection_s_per_step": proj,
                                                       "ratio": proj / plain, "peak_mb": peak})


def check_families(report: Report, args: argparse.Namespace, size: dict[str, Any], device: torch.device) -> None:
    if "generation" in list_families():
        from unlearnlab.generation.tiers import build_model

        shape = (1, 14, 14)
        x, y = synthetic(size["n"], shape, 10, device, seed=3)
        tier = "fmnist" if size is SIZES["full"] else "digits"
        model = build_model(tier, shape if tier == "fmnist" else (1, 8, 8), 10, seed=1).to(device)
        if tier == "digits":
            x = x[..., :8, :8]
        forget_mask = y == 0
        reset_peak(device)
        start = time.perf_counter()
        res = ul.unlearn(model, forget=(x[forget_mask], y[forget_mask]), retain=(x[~forget_mask], y[~forget_mask]),
                         family="generation", method="ddpm/salun", seed=1,
                         **({} if size is SIZES["full"] else {"iterations": 4}))
        report.add("families", f"generation ddpm/salun ({tier} model)", {
            "seconds": res.seconds, "wall_s": time.perf_counter() - start,
            "steps": res.counters.optimizer_steps, "peak_mb": peak_mb(device)})
    if "language_model" not in list_families():
        report.add("families", "language_model", {"skipped": "the language-model family is not installed"})


CHECKS: dict[str, Callable[..., None]] = {"methods": check_methods, "throughput": check_throughput,
                                          "steps": check_steps, "projection": check_projection,
                                          "families": check_families}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", default="runs/gpu-check")
    ap.add_argument("--methods", default=None, help="comma-separated method names for section a (default: all)")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--step-methods", default=",".join(STEP_METHODS),
                    help="section c's methods (name or name:flag, e.g. eupmu:joint_forward); ft first")
    ap.add_argument("--precision", default="auto", help="the mixed arm's precision (auto: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--tolerance", type=float, default=5.0, help="max UA/RA/TA difference (points) vs fp32")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    common.limit_threads(args.threads)
    device = common.pick_device(args.device)
    size = SIZES[args.size]
    header = {"date": str(datetime.datetime.now().isoformat(timespec="seconds")), "size": args.size,
              "precision": args.precision, "machine": common.describe_machine(device), "argv": sys.argv[1:]}
    report = Report(Path(args.out), header)
    failed = 0
    for section in args.sections.split(","):
        start = time.perf_counter()
        try:
            CHECKS[section](report, args, size, device)
        except Exception as err:  # report and go on: one cut-off section must not hide the others
            failed += 1
            report.add(section, "section error", {"error": f"{type(err).__name__}: {err}",
                                                  "trace": traceback.format_exc(limit=3)[-600:]})
        print(f"# {section}: {time.perf_counter() - start:.1f} s", flush=True)
    bad = [n for n, r in report.data["sections"].get("methods", {}).items() if not r.get("ok", True)]
    if bad:
        print(f"# methods not ok: {', '.join(bad)}", flush=True)
    print(f"# summary: {Path(args.out) / 'gpu_check.md'}", flush=True)
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
