"""Whether this process is one rank of a multi-process run, read from the standard launcher variables.

``torchrun`` (and any launcher that follows its convention: SLURM scripts, Kubernetes operators, ``mpirun``
wrappers) starts one process per rank and tells each, through its environment, ``RANK`` (0 … N−1 over all nodes),
``WORLD_SIZE`` (N), ``LOCAL_RANK`` (its index on its node) and where rank 0 listens (``MASTER_ADDR``,
``MASTER_PORT``). A process without ``WORLD_SIZE``, or with ``WORLD_SIZE=1``, is a single-device run
(docs/scaling.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from unlearnlab.errors import UnlearnlabError

#: the variables a launcher sets for every rank
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """This process's place in a multi-process run."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Launch | None:
        """The launch described by ``environ`` (default ``os.environ``); None for a single process.

        Raises :class:`UnlearnlabError` naming the variable when a launch is half described (e.g. ``WORLD_SIZE``
        without ``MASTER_PORT``) or inconsistent (a rank outside 0 … N−1).
        """
        env = os.environ if environ is None else environ
        if env.get("WORLD_SIZE") in (None, "", "1"):
            return None
        missing = [name for name in LAUNCH_VARIABLES if not env.get(name) and name != "LOCAL_RANK"]
        if missing:
            raise UnlearnlabError(f"WORLD_SIZE={env['WORLD_SIZE']} says this is one rank of a multi-process run, but "
                                  f"{', '.join(missing)} is not set: start it with `torchrun --nproc-per-node N …` "
                                  "(or a launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
                                  "MASTER_PORT), or unset WORLD_SIZE for a single-process run.")
        values = {}
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            raw = env.get(name, env["RANK"] if name == "LOCAL_RANK" else "")
            try:
                values[name] = int(raw)
            except ValueError:
                raise UnlearnlabError(f"{name}={raw!r} is not an integer: the launcher's variables are broken.") \
                    from None
        launch = cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
        if not 0 <= launch.rank < launch.world_size or launch.local_rank < 0:
            raise UnlearnlabError(f"RANK={launch.rank}, LOCAL_RANK={launch.local_rank} do not fit WORLD_SIZE="
                                  f"{launch.world_size}: every rank must lie in 0 … WORLD_SIZE−1.")
        return launch

    @property
    def device(self) -> torch.device:
        """This rank's device: CUDA device ``LOCAL_RANK`` when CUDA is present, else the CPU."""
        if torch.cuda.is_available():
            if self.local_rank >= torch.cuda.device_count():
                raise UnlearnlabError(f"LOCAL_RANK={self.local_rank} but this node has {torch.cuda.device_count()} "
                                      "CUDA device(s): start at most one process per GPU (--nproc-per-node).")
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def launched() -> Launch | None:
    """This process's launch (None when it runs alone)."""
    return Launch.from_environ()
