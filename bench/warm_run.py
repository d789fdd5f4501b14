"""Cost of the default ``unlearnlab run`` with a warm model cache relative to a cold one.

Candidates, each a fresh process running ``python -m unlearnlab.cli run --out DIR --threads N`` (the default
grid: digits, mlp, ten methods, seeds 1–3) into a fresh output folder:

* ``cold``: ``$UNLEARNLAB_CACHE`` points at an empty folder, so the original and the three retrained models are
  trained (and cached);
* ``warm``: ``$UNLEARNLAB_CACHE`` points at a folder filled once by an untimed priming run, so no model is trained.

Each call is timed on the child's CPU clock (user + system seconds from ``resource.getrusage(RUSAGE_CHILDREN)``)
and on the wall clock; the calls alternate (cold, warm; warm, cold; …) and the ratio warm/cold is the geometric
mean of per-repeat ratios with a 95 % t-interval (bench/common.py). The verdict is warm ≤ ``--target`` × cold.
Every run's ``table.md`` must equal the priming run's in every column but the timing column (RTE): a difference
is an error.

    python bench/warm_run.py [--repeats 3] [--clock cpu|wall] [--target 0.5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import torch

ROOT = Path(__file__).resolve().parents[1]


def child_cpu() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(out: Path, cache: Path, threads: int) -> dict[str, float]:
    """One default run into ``out`` with the model cache ``cache``; seconds on both clocks."""
    env = {**os.environ, "UNLEARNLAB_CACHE": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    cpu, wall = child_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "unlearnlab.cli", "run", "--out", str(out), "--threads",
                           str(threads)], env=env, cwd=out.parent, capture_output=True, text=True)
    seconds = {"cpu": child_cpu() - cpu, "wall": time.perf_counter() - wall}
    if done.returncode != 0:
        raise SystemExit(f"unlearnlab run --out {out} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def table_without_timing(out: Path) -> list[list[str]]:
    """``table.md``'s rows with the RTE column removed (the only column that measures time)."""
    lines = [line for line in (out / "table.md").read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    timing = [i for i, title in enumerate(cells[0]) if re.match(r"RTE\b", title)]
    return [[c for i, c in enumerate(row) if i not in timing] for row in cells]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clock", choices=sorted(common.CLOCKS), default="cpu",
                    help="clock of the verdict (both are measured): 'cpu' = the child's user+system time")
    ap.add_argument("--threads", type=int, default=1, help="--threads of every run (default 1)")
    ap.add_argument("--target", type=float, default=0.5, help="verdict: warm <= TARGET x cold")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--keep", default=None, help="folder for the runs (default: a temporary folder, deleted)")
    args = ap.parse_args(argv)
    common.limit_threads(args.threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="warm-run-"))
    work.mkdir(parents=True, exist_ok=True)
    warm_cache = work / "warm-cache"
    count = {"cold": 0, "warm": 0}

    def candidate(kind: str):
        def call() -> dict[str, float]:
            count[kind] += 1
            out = work / f"{kind}-{count[kind]}"
            cache = warm_cache if kind == "warm" else work / f"cold-cache-{count[kind]}"
            seconds = run_cli(out, cache, args.threads)
            if table_without_timing(out) != reference:
                raise SystemExit(f"{out / 'table.md'} differs from the priming run's beyond the RTE column")
            return seconds
        return call

    print(f"# bench/warm_run.py  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
          f"{common.describe_machine(torch.device('cpu'))}")
    print(f"# default `unlearnlab run --threads {args.threads}`, repeats={args.repeats}, decision clock={args.clock}; "
          f"runs in {work}")
    prime = run_cli(work / "prime", warm_cache, args.threads)
    reference = table_without_timing(work / "prime")
    print(f"priming run (cold, untimed in the ratio): cpu {prime['cpu']:.2f} s, wall {prime['wall']:.2f} s", flush=True)
    t = common.interleaved_timings({"cold": candidate("cold"), "warm": candidate("warm")}, args.repeats,
                                   warmup=0, device=torch.device("cpu"))
    print()
    intervals = common.print_ratios(t, "cold", clock=args.clock, tolerance=args.tolerance,
                                    title="Default run, warm cache vs cold (seconds per run):")
    warm = intervals["warm"]
    print(f"warm / cold = {warm.text()} ({args.clock}); <= {args.target}: {common.verdict(warm, args.target)}; "
          f"tables equal beyond RTE: yes")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
