"""Where the cells of a benchmark grid run: in this process, in a local process pool, or as Ray tasks.

A cell's work is :func:`run_cell`, a pure function of a small picklable :class:`CellSpec` (method, seed,
hyperparameters, the paths of the cached original and retrained checkpoints, the device): it rebuilds the task,
loads both models with ``weights_only=True``, unlearns, scores and returns a plain result dict. It never sees the
results store nor the output folder: the driver (:func:`unlearnlab.bench.runner.run_grid`) starts each row
before dispatch and finishes it when the result arrives, so SQLite has one writer whatever the executor, and an
interrupted run resumes exactly as a serial one.

Executors (``--executor``):

* ``serial`` runs each cell in the calling process when it is submitted (per-cell progress bars);
* ``local`` runs cells in a ``concurrent.futures.ProcessPoolExecutor`` (``spawn``), one torch thread per worker
  unless ``threads`` says otherwise;
* ``ray`` runs each cell as a Ray task with ``num_cpus=1`` and ``num_gpus=1`` on CUDA, on the cluster at
  ``ray_address`` / ``$RAY_ADDRESS`` or on a local instance. The checkpoints travel through Ray's object store,
  so remote nodes need the package and the dataset files (``root``), not the driver's model cache.

Same spec, same code, same thread count: CPU metrics are bit-identical whatever the executor.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from unlearnlab.errors import DivergenceError, UnlearnlabError

Progress = Callable[[str, float], None]
Result = dict[str, Any]

#: the retrain checkpoint's metadata carried into the ``retrain`` row's stats
RETRAIN_META_KEYS = ("seconds", "forward_samples", "backward_samples", "optimizer_steps", "device")


@dataclass(frozen=True)
class CellSpec:
    """Everything one grid cell needs, and nothing that lets it write results (no store, no output folder)."""

    run_key: str
    method: str
    seed: int
    hparams: dict[str, Any]
    dataset: str
    model: str
    forget: str
    root: str | None
    device: str
    primary_mia: str
    #: the split the driver planned for this seed; a worker whose data differ refuses to run
    split_hash: str
    #: cached checkpoints (paths on the driver; Ray ships their bytes)
    original: str
    retrain: str
    #: seconds, counters and device of the retrained model's training (the ``retrain`` row's RTE)
    retrain_meta: dict[str, Any] = field(default_factory=dict)
    #: metrics of the retrained model, the per-seed gap's reference (computed once by the driver)
    reference: dict[str, float] = field(default_factory=dict)
    reference_definitions: dict[str, str] = field(default_factory=dict)
    #: torch CPU threads in a worker process (not applied by the serial executor)
    threads: int = 1

    @property
    def label(self) -> str:
        return f"{self.method} (seed {self.seed})"


@lru_cache(maxsize=1)
def _task(dataset: str, forget: str, seed: int, device: str, root: str | None) -> Any:
    """The task of a seed, kept for the next cell of the same seed (cells never mutate a task)."""
    from unlearnlab.data.forget import make_task

    return make_task(dataset, forget, seed, device=device, root=root)


def _load(spec: CellSpec, task: Any, kind: str, checkpoints: Mapping[str, bytes] | None) -> torch.nn.Module:
    from unlearnlab.bench.cache import load_checkpoint
    from unlearnlab.models import create

    path = spec.original if kind == "original" else spec.retrain
    model = create(spec.model, task, seed=spec.seed, device=spec.device)
    source = io.BytesIO(checkpoints[path]) if checkpoints and path in checkpoints else path
    load_checkpoint(source, model)  # weights_only=True; refuses another architecture
    return model.to(spec.device).eval()


def run_cell(spec: CellSpec, checkpoints: Mapping[str, bytes] | None = None,
             progress: Progress | None = None, task: Any = None) -> Result:
    """Run one cell; returns ``{run_key, status, metrics, definitions, stats, error, message, artifact}``.

    ``status`` is ``done``, ``diverged`` or ``failed`` (a method error is the row's status, never an exception);
    ``artifact`` holds a certified model's weights and certificate, for the driver to save. ``checkpoints`` maps
    a checkpoint path of the spec to its bytes (Ray); missing paths are read from disk. ``task``: the driver's
    task of this seed (serial executor; saves building it twice), used only when its split hash matches.
    """
    from unlearnlab.api import unlearn
    from unlearnlab.evaluation import Evaluation, evaluate

    result: Result = {"run_key": spec.run_key, "status": "failed", "metrics": {}, "definitions": {}, "stats": {},
                      "error": None, "message": None, "artifact": None}
    if progress is not None:
        progress(spec.label, 0.0)
    try:
        if task is None or getattr(task, "split_hash", None) != spec.split_hash:
            task = _task(spec.dataset, spec.forget, spec.seed, spec.device, spec.root)
        if task.split_hash != spec.split_hash:
            raise UnlearnlabError(f"This worker's {spec.dataset} split ({task.split_hash}) differs from the "
                                  f"driver's ({spec.split_hash}): give every node the same dataset files.")
        if spec.method == "retrain":
            model = _load(spec, task, "retrain", checkpoints)
            meta = spec.retrain_meta
            seconds = meta["seconds"]
            counters = {k: meta.get(k) for k in ("forward_samples", "backward_samples", "optimizer_steps")}
            extra: dict[str, Any] = {"cached_retrain_device": meta.get("device")}
            reference = None
        else:
            original = _load(spec, task, "original", checkpoints)
            tick = None if progress is None else (lambda f: progress(spec.label, f))
            res = unlearn(original, task, method=spec.method, seed=spec.seed, progress=tick, **spec.hparams)
            model, seconds, counters, extra = res.model, res.seconds, res.counters.as_dict(), res.stats
            if res.certificate is not None:  # the driver saves the certified model next to its certificate
                result["artifact"] = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                      "certificate": res.certificate}
            reference = Evaluation(dict(spec.reference), dict(spec.reference_definitions))
        scores = evaluate(model, task, reference, spec.primary_mia)
        result.update(status="done", metrics=scores.metrics, definitions=scores.definitions,
                      stats={"rte_minutes": seconds / 60.0, "seconds": seconds, **counters, **extra})
    except DivergenceError as err:
        result.update(status="diverged", error=str(err), message=str(err))
    except Exception as err:  # a method error is the row's status; the grid goes on
        result.update(status="failed", error="".join(traceback.format_exception(err))[-4000:],
                      message=f"{type(err).__name__}: {err}")
    if progress is not None:
        progress(spec.label, 1.0)
    return result


def _crashed(spec: CellSpec, err: BaseException) -> Result:
    """The result of a cell whose worker died (killed, out of memory, lost node): a failed row, retried later."""
    return {"run_key": spec.run_key, "status": "failed", "metrics": {}, "definitions": {}, "stats": {},
            "error": "".join(traceback.format_exception(err))[-4000:],
            "message": f"worker lost — {type(err).__name__}: {err}", "artifact": None}


# ------------------------------------------------------------------------------------------------ executors


class Executor(ABC):
    """Submit cells, then collect ``(spec, result)`` pairs as they finish. A context manager: leaving it on an
    exception cancels queued cells and stops running ones (their rows stay ``running`` and are re-run)."""

    name = "executor"

    @abstractmethod
    def submit(self, spec: CellSpec, progress: Progress | None = None, task: Any = None) -> None:
        """Queue (or, serial, run) a cell; ``progress`` and ``task`` are used only in this process."""

    @abstractmethod
    def collect(self, block: bool) -> Iterator[tuple[CellSpec, Result]]:
        """Finished cells; with ``block``, every submitted cell (waiting for each), else those ready now."""

    def close(self, cancel: bool = False) -> None:  # noqa: B027  (default: nothing to release)
        """Release workers; ``cancel`` drops queued cells and stops running ones."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(cancel=exc_type is not None)


class SerialExecutor(Executor):
    """Each cell runs in this process when submitted (today's behaviour; no pickling, per-cell progress)."""

    name = "serial"

    def __init__(self) -> None:
        self._done: list[tuple[CellSpec, Result]] = []

    def submit(self, spec: CellSpec, progress: Progress | None = None, task: Any = None) -> None:
        self._done.append((spec, run_cell(spec, progress=progress, task=task)))

    def collect(self, block: bool) -> Iterator[tuple[CellSpec, Result]]:
        while self._done:
            yield self._done.pop(0)

    def close(self, cancel: bool = False) -> None:
        _task.cache_clear()


def _init_worker(threads: int) -> None:
    torch.set_num_threads(max(1, int(threads)))


class LocalExecutor(Executor):
    """A ``spawn`` process pool of ``workers`` processes, ``threads`` torch threads each."""

    name = "local"

    def __init__(self, workers: int, threads: int = 1) -> None:
        import multiprocessing

        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(threads,))
        self._pending: dict[Future, CellSpec] = {}

    def submit(self, spec: CellSpec, progress: Progress | None = None, task: Any = None) -> None:
        try:
            self._pending[self._pool.submit(run_cell, spec)] = spec
        except BrokenProcessPool as err:
            raise UnlearnlabError(f"The local process pool broke ({err}); cells left 'running' are re-run by the "
                                  "next `unlearnlab run`. Try --executor serial to see the error in-process.") \
                from err

    def collect(self, block: bool) -> Iterator[tuple[CellSpec, Result]]:
        while self._pending:
            ready = [f for f in self._pending if f.done()]
            if not ready:
                if not block:
                    return
                ready = list(wait_futures(list(self._pending), return_when=FIRST_COMPLETED).done)
            for future in sorted(ready, key=lambda f: list(self._pending).index(f)):  # submission order
                spec = self._pending.pop(future)
                try:
                    yield spec, future.result()
                except Exception as err:  # BrokenProcessPool: the worker died
                    yield spec, _crashed(spec, err)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # stop running cells now; their rows stay 'running' and are re-run
                if process.is_alive():
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def _ray_cell(spec: CellSpec, original: bytes, retrain: bytes) -> Result:
    """The Ray task: the checkpoints arrive as bytes from the object store (no shared file system needed)."""
    torch.set_num_threads(max(1, spec.threads))
    return run_cell(spec, {spec.original: original, spec.retrain: retrain})


class RayExecutor(Executor):
    """Each cell is a Ray task (``num_cpus=1``, ``num_gpus=1`` on CUDA) on a cluster or a local instance.

    Connects to ``address`` (else ``$RAY_ADDRESS``, else starts a local instance with ``workers`` CPUs, default
    all); a Ray already initialised by the caller is used as is and left running. ``workers`` caps the cells in
    flight.
    """

    name = "ray"

    def __init__(self, workers: int | None, device: str, address: str | None = None) -> None:
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
        self._blobs: dict[str, Any] = {}
        self._queue: list[CellSpec] = []
        self._running: dict[Any, CellSpec] = {}

    def _blob(self, path: str) -> Any:
        if path not in self._blobs:
            self._blobs[path] = self._ray.put(Path(path).read_bytes())
        return self._blobs[path]

    def _dispatch(self) -> None:
        while self._queue and (self._limit is None or len(self._running) < self._limit):
            spec = self._queue.pop(0)
            if spec.device != self._device:
                spec = dataclasses.replace(spec, device=self._device)
            ref = self._remote.remote(spec, self._blob(spec.original), self._blob(spec.retrain))
            self._running[ref] = spec

    def submit(self, spec: CellSpec, progress: Progress | None = None, task: Any = None) -> None:
        self._queue.append(spec)
        self._dispatch()

    def collect(self, block: bool) -> Iterator[tuple[CellSpec, Result]]:
        ray = self._ray
        while self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=None if block else 0)
            if not ready:
                return
            for ref in ready:
                spec = self._running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # a crashed worker or a lost node
                    result = _crashed(spec, err)
                self._dispatch()
                yield spec, result

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
    local pool defaults to ``min(2, CPUs)`` workers, Ray to the cluster's CPUs."""
    name = executor or ("serial" if workers in (None, 1) else "local")
    if name == "local" and workers is None:
        workers = min(2, os.cpu_count() or 1)
    if name == "serial":
        workers = 1
    return name, workers


def check(executor: str | None, workers: int | None) -> None:
    """Raise before anything is written when the executor cannot run (unknown name, Ray not installed)."""
    name, _ = resolve(executor, workers)
    if name not in ("serial", "local", "ray"):
        from unlearnlab.errors import unknown_name

        raise unknown_name("executor", name, ("serial", "local", "ray"))
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
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
    return RayExecutor(workers, device, ray_address)
