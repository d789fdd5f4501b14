"""Throughput of ``unlearnlab.train`` relative to a bare loop and to a standard DataLoader loop.

Candidates, all on the same in-memory tensors, same model initialisation, SGD(lr 0.05, momentum 0.9,
weight decay 5e-4), batch 64, shuffled every epoch:

* ``bare``: ``randperm`` + index gather per batch, forward, cross-entropy, ``zero_grad``, backward, step —
  nothing else (no schedule, no counters, no loss bookkeeping);
* ``unlearnlab.train``: the library's training loop (:func:`unlearnlab.training.train` with
  ``Recipe(epochs=E, batch_size=64)``: the cosine schedule written into the optimizer when the multiplier changes,
  sample and step counters, loss accumulation, finiteness check per epoch) — the call is timed as a whole;
* ``DataLoader``: ``torch.utils.data.DataLoader(TensorDataset(x_cpu, y_cpu), batch_size=64, shuffle=True)``
  (``num_workers=0``), batches moved to the device (a no-op on CPU).

Workloads: ``mlp`` on digits-sized data (1302 × 1×8×8, 10 classes) and ``small_cnn`` on 2048 × 3×32×32
(10 classes); random inputs (speed does not depend on the values). Each timed call trains a fresh copy of the
same initial model for the workload's epochs; the copy is made outside the timed region. Calls are interleaved
round-robin (order rotated per repeat) and timed on both the process CPU clock and the wall clock; each ratio is
the geometric mean of per-repeat ratios with a 95 % t-interval (bench/common.py). ``--clock`` picks the clock the
verdict uses (default: cpu on a CPU device, wall on CUDA): ``unlearnlab.train`` throughput ≥ ``--target`` × bare,
i.e. time ratio ≤ 1 / target, is *met* when the whole interval is below, *missed* when it is above, else
*undecided*; a warning is printed when an interval is wider than ``--tolerance``.

    python bench/training_loop.py [--repeats 20] [--mlp-repeats 60] [--mlp-epochs 10] [--cnn-epochs 1]
                                  [--clock auto|cpu|wall] [--target 0.95] [--tolerance 0.05] [--only mlp|small_cnn]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from unlearnlab.data.tensors import TensorData
from unlearnlab.models.registry import create
from unlearnlab.training import Recipe, train

LR, MOMENTUM, WD = 0.05, 0.9, 5e-4


def candidates(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int,
               device: torch.device) -> dict:
    n = len(y)
    recipe = Recipe(lr=LR, momentum=MOMENTUM, weight_decay=WD, epochs=epochs, batch_size=batch_size)
    data = TensorData.of(x, y)
    dataset = TensorDataset(x.cpu(), y.cpu())

    def bare() -> dict[str, float]:
        net = copy.deepcopy(model).train()
        gen = torch.Generator().manual_seed(1)
        start = common.Stamp.now(device)
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return start.since(device)

    def library() -> dict[str, float]:
        net = copy.deepcopy(model)
        start = common.Stamp.now(device)
        train(net, data, recipe, seed=1)
        return start.since(device)

    def dataloader() -> dict[str, float]:
        net = copy.deepcopy(model).train()
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(1))
        start = common.Stamp.now(device)
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                loss = F.cross_entropy(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return start.since(device)

    return {"bare": bare, "unlearnlab.train": library, "DataLoader": dataloader}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="repeats for small_cnn (calls are ~2 s on a CPU)")
    ap.add_argument("--mlp-repeats", type=int, default=60, help="repeats for mlp (calls are ~0.1 s)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--mlp-epochs", type=int, default=10)
    ap.add_argument("--cnn-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--only", choices=("mlp", "small_cnn"), default=None)
    ap.add_argument("--target", type=float, default=0.95,
                    help="verdict: unlearnlab.train throughput >= TARGET x bare (time ratio <= 1/TARGET)")
    common.add_arguments(ap)
    args = ap.parse_args(argv)

    device, clock = common.setup(ap, args)
    print(f"# bench/training_loop.py  {datetime.datetime.now():%Y-%m-%d %H:%M}  {common.describe_machine(device)}")
    print(f"# batch_size={args.batch_size}, repeats: mlp {args.mlp_repeats}, small_cnn {args.repeats}; "
          f"warm-up rounds={args.warmup}; decision clock={clock}")
    workloads = [("mlp", (1, 8, 8), 1302, args.mlp_epochs, args.mlp_repeats),
                 ("small_cnn", (3, 32, 32), 2048, args.cnn_epochs, args.repeats)]
    for name, shape, n, epochs, repeats in workloads:
        if args.only and name != args.only:
            continue
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(n, *shape, generator=gen).to(device)
        y = torch.randint(0, 10, (n,), generator=gen).to(device)
        model = create(name, input_shape=shape, num_classes=10, seed=1, device=device)
        fns = candidates(model, x, y, epochs, args.batch_size, device)
        t = common.interleaved_timings(fns, repeats, args.warmup, device)
        print()
        intervals = common.print_ratios(
            t, "bare", clock=clock, work=n * epochs, work_unit="img/s", tolerance=args.tolerance,
            clocks=common.clocks_for(device),
            title=f"{name}: {n} x {'x'.join(map(str, shape))}, {epochs} epoch(s) per call "
                  f"({-(-n // args.batch_size) * epochs} steps):",
        )
        lib = intervals["unlearnlab.train"]
        print(f"unlearnlab.train throughput / bare = {1 / lib.ratio:.3f} [{1 / lib.high:.3f}, {1 / lib.low:.3f}] "
              f"({clock}); >= {args.target}: {common.verdict(lib, 1 / args.target)}")


if __name__ == "__main__":
    main()
