"""A command driven by rank 0 while the other ranks follow: how ``unlearnlab run`` works under ``torchrun``.

Rank 0 runs the command as in a single process — it alone opens the output folder, the results store, ``run.log``
and the model cache, and writes every row, checkpoint and certificate. Before each piece of work that needs every
rank (training an original or retrained model, unlearning a cell) it broadcasts a small picklable description of
it; the other ranks wait in :func:`serve`, run each description as it arrives (their collectives meet rank 0's)
and discard its result. A follower receives what it needs in the description (cached weights travel as bytes), so
it never reads the store or the cache (docs/scaling.md, "unlearnlab run under torchrun").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from unlearnlab.distributed.env import launched
from unlearnlab.distributed.runtime import Runtime
from unlearnlab.errors import UnlearnlabError

T = TypeVar("T")
_leading: Runtime | None = None
#: whether rank 0 is inside a piece of work the followers run too (see :func:`drive`)
_in_flight = False


class RankWork(Protocol):
    """A piece of work every follower runs alongside rank 0 (picklable)."""

    def __call__(self, rt: Runtime) -> Any:
        """Run this rank's part (its collectives meet rank 0's)."""
        ...


def leader() -> Runtime | None:
    """Rank 0's runtime while it drives followers (:func:`drive`), else None."""
    return _leading


def everywhere(work: RankWork, local: Callable[[], T]) -> T:
    """Run ``work`` on every follower and ``local()`` — rank 0's part of the same work — here (rank 0, driving)."""
    global _in_flight
    if _leading is None:
        raise UnlearnlabError("Only rank 0 driving a distributed command dispatches work (distributed.serve.drive).")
    _leading.broadcast_object(work)
    _in_flight = True
    result = local()
    _in_flight = False
    return result


def serve(rt: Runtime) -> None:
    """Run each piece of work rank 0 dispatches until it says stop (a follower's whole part of a command)."""
    while (work := rt.broadcast_object()) is not None:
        work(rt)


def drive(rt: Runtime | None, main: Callable[[], T]) -> T | None:
    """``main()`` on rank 0 (or in a single process) while the other ranks :func:`serve`; followers return None.

    They are released when ``main`` returns, or raises between two pieces of work (e.g. the exit status of a grid
    with failed cells). An exception raised inside a piece of work leaves them in its collectives: rank 0 then just
    exits with it, and the launcher (torchrun) stops the other ranks.
    """
    global _leading, _in_flight
    if rt is None:
        return main()
    if not rt.is_main:
        serve(rt)
        return None
    _leading, _in_flight = rt, False
    try:
        return main()
    finally:
        _leading = None
        if not _in_flight:
            rt.broadcast_object(None)


def single_process_only(what: str) -> None:
    """Refuse ``what`` in a process started as one of several ranks."""
    launch = launched()
    if launch is not None:
        raise UnlearnlabError(f"{what} runs in a single process, not under torchrun (WORLD_SIZE={launch.world_size}): "
                              "start it with `unlearnlab …` directly; `unlearnlab run` of a grid is what torchrun "
                              "shares across ranks.")
