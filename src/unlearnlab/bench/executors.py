"""Where the cells of a benchmark grid run: in this process, in a local process pool, or as Ray tasks.

An executor receives a cell as its result :class:`~unlearnlab.bench.cells.Row` (kept by the driver) and its
*work*: a small picklable callable (:class:`CellWork`, e.g. :class:`~unlearnlab.bench.classification.
ClassificationCell`) returning :class:`~unlearnlab.bench.cells.Scores`. A worker runs :func:`execute`, which
classifies the outcome with :func:`unlearnlab.bench.cells.attempt`; the driver
(:func:`unlearnlab.bench.runner.run_grid`) starts each row before dispatch and finishes it when the outcome
arrives, so SQLite has one writer whatever the executor, and an interrupted run resumes exactly as a serial one.
Executors know nothing about the task family: what a cell computes is its work's business.

Executors (``--executor``):

* ``serial`` runs each cell in the calling process when it is submitted (per-cell progress bars);
* ``local`` runs cells in a ``concurrent.futures.ProcessPoolExecutor`` (``spawn``), one torch thread per worker
  unless ``threads`` says otherwise. Each worker watches its parent and exits when the driver is gone (killed
  with SIGKILL or SIGTERM), so no worker outlives its run;
* ``ray`` runs each cell as a Ray task with ``num_cpus=1`` and ``num_gpus=1`` on CUDA, on the cluster at
  ``ray_address`` / ``$RAY_ADDRESS`` or on a local instance. The files a work reads (``work.files()``, e.g.
  cached checkpoints) travel through Ray's object store, so remote nodes need the package and the dataset files
  (``root``), not the driver's model cache;
* ``torchrun`` (the only one under ``torchrun``, chosen by itself there) runs each cell once, as one distributed
  run over every rank: rank 0 is the driver and sends the work and its files' bytes to the other ranks, which run
  it alongside (:mod:`unlearnlab.distributed.serve`, docs/scaling.md).

Same work, same code, same thread count: CPU metrics are bit-identical whatever the executor.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import multiprocessing
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import torch

from unlearnlab.bench.cells import Outcome, Row, Scores, attempt, failure
from unlearnlab.bench.config import EXECUTORS
from unlearnlab.distributed.env import launched
from unlearnlab.distributed.runtime import Runtime
from unlearnlab.distributed.serve import everywhere, leader
from unlearnlab.errors import UnlearnlabError, unknown_name

Progress = Callable[[str, float], None]
Tick = Callable[[float], None]
#: seconds between a pool worker's checks that its driver is still alive
PARENT_CHECK_SECONDS = 1.0


class CellWork(Protocol):
    """The picklable work of one cell. ``device`` is where it computes (Ray may move it to its GPU)."""

    device: str

    def files(self) -> tuple[str, ...]:
        """Paths of the files the work reads (shipped as bytes by executors without a shared disk)."""
        ...

    def __call__(self, files: Mapping[str, bytes] | None = None, progress: Tick | None = None,
                 shared: Any = None) -> Scores:
        """Compute the cell; ``files`` maps a path of :meth:`files` to its bytes (else read from disk);
        ``shared`` is an in-process object of the driver the work may reuse (serial executor only)."""
        ...


def execute(work: CellWork, files: Mapping[str, bytes] | None = None, progress: Tick | None = None,
            shared: Any = None) -> Outcome:
    """Run ``work`` and classify its outcome (what every executor runs, in whatever process)."""
    if progress is not None:
        progress(0.0)
    outcome = attempt(lambda: work(files, progress, shared))
    if progress is not None:
        progress(1.0)
    return outcome


def _crashed(err: BaseException) -> Outcome:
    """The outcome of a cell whose worker died (killed, out of memory, lost node): failed, retried later."""
    return failure(err, prefix="worker lost — ")


# ------------------------------------------------------------------------------------------------ executors


class Executor(ABC):
    """Submit cells, then collect ``(row, outcome)`` pairs as they finish. A context manager: leaving it on an
    exception cancels queued cells and stops running ones (their rows stay ``running`` and are re-run)."""

    name = "executor"

    @abstractmethod
    def submit(self, row: Row, work: CellWork, progress: Progress | None = None, shared: Any = None) -> None:
        """Queue (or, serial, run) a cell; ``progress`` and ``shared`` are used only in this process."""

    @abstractmethod
    def collect(self, block: bool) -> Iterator[tuple[Row, Outcome]]:
        """Finished cells; with ``block``, every submitted cell (waiting for each), else those ready now."""

    def close(self, cancel: bool = False) -> None:  # noqa: B027  (default: nothing to release)
        """Release workers; ``cancel`` drops queued cells and stops running ones."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(cancel=exc_type is not None)


class SerialExecutor(Executor):
    """Each cell runs in this process when submitted (no pickling, per-cell progress)."""

    name = "serial"

    def __init__(self) -> None:
        self._done: list[tuple[Row, Outcome]] = []

    def submit(self, row: Row, work: CellWork, progress: Progress | None = None, shared: Any = None) -> None:
        tick = None if progress is None else (lambda fraction: progress(row.label, fraction))
        self._done.append((row, execute(work, progress=tick, shared=shared)))

    def collect(self, block: bool) -> Iterator[tuple[Row, Outcome]]:
        while self._done:
            yield self._done.pop(0)


@dataclasses.dataclass(frozen=True)
class CellOnRank:
    """A follower rank's part of a cell: the work (on the rank's own device) and the bytes of the files it reads."""

    work: CellWork
    files: dict[str, bytes]

    def __call__(self, rt: Runtime) -> Outcome:
        return execute(dataclasses.replace(self.work, device=str(rt.device)), self.files)  # type: ignore[type-var]


class TorchrunExecutor(SerialExecutor):
    """Each cell is one distributed run over every rank of the ``torchrun`` job; this process is rank 0, the
    driver, which runs the cell itself once the other ranks have it (:class:`CellOnRank`)."""

    name = "torchrun"

    def submit(self, row: Row, work: CellWork, progress: Progress | None = None, shared: Any = None) -> None:
        files = {path: Path(path).read_bytes() for path in work.files()}
        everywhere(CellOnRank(work, files), lambda: SerialExecutor.submit(self, row, work, progress, shared))


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as its parent (the driver) is gone, whatever killed it."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    torch.set_num_threads(max(1, int(threads)))
    threading.Thread(target=_watch_parent, args=(parent,), name="unlearnlab-parent-watch", daemon=True).start()


class LocalExecutor(Executor):
    """A ``spawn`` process pool of ``workers`` processes, ``threads`` torch threads each."""

    name = "local"

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(threads, os.getpid()))
        self._pending: dict[Future, Row] = {}

    def submit(self, row: Row, work: CellWork, progress: Progress | None = None, shared: Any = None) -> None:
        try:
            self._pending[self._pool.submit(execute, work)] = row
        except BrokenProcessPool as err:
            raise UnlearnlabError(f"The local process pool broke ({err}); cells left 'running' are re-run by the "
                                  "next `unlearnlab run`. Try --executor serial to see the error in-process.") \
                from err

    def collect(self, block: bool) -> Iterator[tuple[Row, Outcome]]:
        while self._pending:
            ready = [f for f in self._pending if f.done()]
            if not ready:
                if not block:
                    return
                ready = list(wait_futures(list(self._pending), return_when=FIRST_COMPLETED).done)
            for future in sorted(ready, key=lambda f: list(self._pending).index(f)):  # submission order
                row = self._pending.pop(future)
                try:
                    yield row, future.result()
                except Exception as err:  # BrokenProcessPool: the worker died
                    yield row, _crashed(err)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # stop running cells now; their rows stay 'running' and are re-run
                if process.is_alive():
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def _ray_cell(work: CellWork, threads: int, paths: tuple[str, ...], *blobs: bytes) -> Outcome:
    """The Ray task: the work's files arrive as bytes from the object store (no shared file system needed)."""
    torch.set_num_threads(max(1, threads))
    return execute(work, dict(zip(paths, blobs, strict=True)))


class RayExecutor(Executor):
    """Each cell is a Ray task (``num_cpus=1``, ``num_gpus=1`` on CUDA) on a cluster or a local instance.

    Connects to ``address`` (else ``$RAY_ADDRESS``, else starts a local instance with ``workers`` CPUs, default
    all); a Ray already initialised by the caller is used as is and left running. ``workers`` caps the cells in
    flight; each task uses ``threads`` torch threads.
    """

    name = "ray"

    def __init__(self, workers: int | None, device: str, address: str | None = None, threads: int = 1) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owner = not ray.is_initialized()
        if self._owner:
            address = address or os.environ.get("RAY_ADDRESS") or None
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": logging.WARNING}
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, **options)  # None: every CPU of this machine
        gpus = 1 if torch.device(device).type == "cuda" else 0
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(_ray_cell)
        self._device = "cuda" if gpus else device  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
        self._limit = workers
        self._threads = threads
        self._blobs: dict[str, Any] = {}
        self._queue: list[tuple[Row, CellWork]] = []
        self._running: dict[Any, Row] = {}

    def _blob(self, path: str) -> Any:
        if path not in self._blobs:
            self._blobs[path] = self._ray.put(Path(path).read_bytes())
        return self._blobs[path]

    def _dispatch(self) -> None:
        while self._queue and (self._limit is None or len(self._running) < self._limit):
            row, work = self._queue.pop(0)
            if work.device != self._device:
                work = dataclasses.replace(work, device=self._device)  # type: ignore[type-var]
            paths = tuple(work.files())
            ref = self._remote.remote(work, self._threads, paths, *(self._blob(p) for p in paths))
            self._running[ref] = row

    def submit(self, row: Row, work: CellWork, progress: Progress | None = None, shared: Any = None) -> None:
        self._queue.append((row, work))
        self._dispatch()

    def collect(self, block: bool) -> Iterator[tuple[Row, Outcome]]:
        ray = self._ray
        while self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=None if block else 0)
            if not ready:
                return
            for ref in ready:
                row = self._running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # a crashed worker or a lost node
                    outcome = _crashed(err)
                self._dispatch()
                yield row, outcome

    def close(self, cancel: bool = False) -> None:
        if cancel:
            self._queue.clear()
            for ref in list(self._running):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # already finished
                    pass
            self._running.clear()
        self._blobs.clear()
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


# ------------------------------------------------------------------------------------------------ choice


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UnlearnlabError("--executor ray needs Ray: pip install 'unlearnlab[ray]' (or pip install ray).") \
            from None
    return ray


def resolve(executor: str | None, workers: int | None) -> tuple[str, int | None]:
    """(executor name, workers): no executor → ``serial`` for one worker (the default), else ``local``; the
    local pool defaults to ``min(2, CPUs)`` workers, Ray to the cluster's CPUs. Under ``torchrun`` the executor is
    ``torchrun`` (workers = ranks) and no other can be chosen."""
    launch = launched()
    if launch is not None or executor == "torchrun":
        if launch is None:
            raise UnlearnlabError("--executor torchrun runs the cells across the ranks of a torchrun job: start the "
                                  "run with `torchrun --nproc-per-node N -m unlearnlab.cli run …`.")
        if executor not in (None, "torchrun"):
            raise UnlearnlabError(f"--executor {executor}: under torchrun each cell runs on every rank (executor "
                                  "torchrun); drop --executor, or run without torchrun to spread cells over workers.")
        return "torchrun", launch.world_size
    name = executor or ("serial" if workers in (None, 1) else "local")
    if name == "local" and workers is None:
        workers = min(2, os.cpu_count() or 1)
    if name == "serial":
        workers = 1
    return name, workers


def check(executor: str | None, workers: int | None) -> None:
    """Raise before anything is written when the executor cannot run (unknown name, Ray not installed)."""
    name, _ = resolve(executor, workers)
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    if name == "ray" and importlib.util.find_spec("ray") is None:
        _import_ray()


def make_executor(executor: str | None, workers: int | None, device: str, threads: int | None = None,
                  ray_address: str | None = None) -> Executor:
    """The executor of a run (see :func:`resolve`); ``threads`` torch threads per worker (default 1)."""
    check(executor, workers)
    name, workers = resolve(executor, workers)
    if name == "serial":
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(int(workers or 1), threads or 1)
    if name == "torchrun":
        if leader() is None:
            raise UnlearnlabError("The torchrun executor needs rank 0 driving the other ranks: run the grid with "
                                  "`torchrun … -m unlearnlab.cli run`.")
        return TorchrunExecutor()
    return RayExecutor(workers, device, ray_address, threads or 1)
