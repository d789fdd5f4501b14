"""Cost of resumable training: ``unlearnlab.train`` with a per-epoch checkpoint relative to without one.

Candidates, same data, same initial weights (a fresh copy per call, made outside the timed region), the
default recipe shortened to ``--epochs`` (SGD 0.05, momentum 0.9, wd 5e-4, batch 64, cosine):

* ``train``: :func:`unlearnlab.training.train` without a checkpoint (the baseline);
* ``train + checkpoint``: the same call with ``checkpoint=TrainCheckpoint(path)``: after every epoch but the last
  the whole loop state (model, optimizer, scheduler, generator and RNG states, counters) is serialised,
  hashed (SHA-256), written atomically (temporary file, fsync, rename) with its ``.sha256`` file. The state is
  deleted before each call (outside the timed region), so no call resumes.

Workloads: ``mlp`` on the real digits training split (1,302 × 1×8×8; the benchmark's default setting) and,
with ``--model small_cnn``, ``small_cnn`` on 2,048 random 3×32×32 images. Printed: median seconds per call, the
ratio to ``train`` (geometric mean of per-repeat ratios with a 95 % t-interval, on the CPU and wall clocks:
bench/common.py), and the added milliseconds per checkpoint, (t_ckpt − t_train) / (epochs − 1), as a mean with
its 95 % t-interval on the decision clock, with the size of one checkpoint file. ``--dir`` chooses where the files go
(default: a temporary folder; use the model cache's disk to measure that disk).

    python bench/train_checkpoint.py [--epochs 10] [--repeats 20] [--model mlp|small_cnn] [--clock auto|cpu|wall]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from unlearnlab.data.forget import make_task
from unlearnlab.data.tensors import TensorData
from unlearnlab.models.registry import create
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import Recipe, train


def workload(name: str, device: torch.device) -> tuple[torch.nn.Module, TensorData]:
    """The model and training data of ``name``."""
    if name == "mlp":
        task = make_task("digits", "random:0.1", seed=1, device=device)
        return create("mlp", task, seed=1, device=device), task.train
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2048, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (2048,), generator=gen).to(device)
    return create("small_cnn", input_shape=(3, 32, 32), num_classes=10, seed=1, device=device), TensorData.of(x, y)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--model", choices=("mlp", "small_cnn"), default="mlp")
    ap.add_argument("--dir", default=None, help="folder for the checkpoint (default: a temporary folder)")
    common.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (no checkpoint is written after the last epoch)")

    device, clock = common.setup(ap, args)
    model, data = workload(args.model, device)
    recipe = Recipe(epochs=args.epochs)
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="train-checkpoint-"))
    checkpoint = TrainCheckpoint(folder / "bench.train-state")
    sizes: list[int] = []

    def plain() -> dict[str, float]:
        net = copy.deepcopy(model)
        start = common.Stamp.now(device)
        train(net, data, recipe, seed=1)
        return start.since(device)

    def checkpointed() -> dict[str, float]:
        checkpoint.clear()
        net = copy.deepcopy(model)
        start = common.Stamp.now(device)
        train(net, data, recipe, seed=1, checkpoint=checkpoint)
        seconds = start.since(device)
        sizes.append(checkpoint.path.stat().st_size)
        return seconds

    print(f"# bench/train_checkpoint.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# {args.model}, {len(data)} samples, {args.epochs} epochs per call "
          f"({-(-len(data) // recipe.batch_size) * args.epochs} steps), {args.epochs - 1} checkpoints per call; "
          f"repeats={args.repeats}, warm-up rounds={args.warmup}; decision clock={clock}; files in {folder}")
    timings = common.interleaved_timings({"train": plain, "train + checkpoint": checkpointed}, args.repeats,
                                         args.warmup, device)
    t = timings.clock(clock)
    extra = [(b - a) / (args.epochs - 1) * 1000 for a, b in zip(t["train"], t["train + checkpoint"])]
    mean, low, high = common.mean_interval(extra)
    epoch_ms = common.median(t["train"]) / args.epochs * 1000
    per_checkpoint = {"train + checkpoint": f"{mean:.2f} [{low:.2f}, {high:.2f}]"}
    common.print_ratios(timings, "train", clock=clock, tolerance=args.tolerance, clocks=common.clocks_for(device),
                        extra={f"ms per checkpoint ({clock}, 95% CI)": per_checkpoint})
    print(f"one epoch without a checkpoint: {epoch_ms:.1f} ms; one checkpoint file: {sizes[-1] / 1024:.0f} KiB "
          f"(+ its .sha256)")
    checkpoint.clear()


if __name__ == "__main__":
    main()
