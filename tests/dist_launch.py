"""Starting the two-rank jobs of the distributed tests: a free port, a child's environment, and a ``torchrun``
job over a worker script that writes ``OUT/rank{k}.pt``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

import unlearnlab as ul

SRC = Path(ul.__file__).resolve().parents[1]
#: the variables a launcher sets for each process
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**extra: str) -> dict[str, str]:
    """This interpreter's environment for a child: this checkout's package first, one thread, no launch variables."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    env.update(PYTHONPATH=os.pathsep.join([str(SRC), str(Path(__file__).parent), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", **extra)
    return env


def two_rank_job(worker: str | Path, out: Path, *args: str, timeout: float = 300) -> list[dict]:
    """Run ``worker OUT ARGS…`` as ``torchrun --nproc-per-node 2`` and return what each rank saved in ``out``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(worker), str(out), *args]
    done = subprocess.run(cmd, env=environment(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
