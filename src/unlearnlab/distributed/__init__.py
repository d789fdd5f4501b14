"""One large run across several processes (``torchrun``): DDP for a model that fits on one device, FSDP for one
that does not. docs/scaling.md says when to use which, and what the runs guarantee.

``ul.train`` and ``ul.unlearn`` take ``parallel="ddp" | "fsdp" | "none"`` and run distributed whenever the
process is one of several (:func:`runtime`); ``unlearnlab run`` under ``torchrun`` runs each cell on all ranks,
rank 0 alone writing (:mod:`unlearnlab.distributed.serve`).
"""

from unlearnlab.distributed.env import Launch, launched
from unlearnlab.distributed.runtime import PARALLEL, Runtime, is_main, runtime, shutdown, use

__all__ = ["PARALLEL", "Launch", "Runtime", "is_main", "launched", "runtime", "shutdown", "use"]
