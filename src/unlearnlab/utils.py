"""Small shared utilities: device choice, seeded generators, atomic writes, environment record."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearnlab.version import __version__


def default_device() -> torch.device:
    """CUDA when present, else CPU (overridable with ``UNLEARNLAB_DEVICE``)."""
    name = os.environ.get("UNLEARNLAB_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def component_seed(seed: int, component: str) -> int:
    """A 63-bit seed derived from (run seed, component name), so each stochastic part has its own stream."""
    digest = hashlib.sha256(f"{int(seed)}:{component}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(seed: int, component: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from (seed, component)."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(component_seed(seed, component))
    return gen


def numpy_rng(seed: int, component: str) -> np.random.Generator:
    """A NumPy generator seeded from (seed, component)."""
    return np.random.default_rng(component_seed(seed, component))


def tensors_sha256(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over named tensors in name order: each name, dtype, shape and raw bytes (content identity)."""
    h = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@contextlib.contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Every buffer (BatchNorm running statistics, counters, ...) is bit-identical after the block."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


@contextlib.contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """The whole model in training (or eval) mode for the block; each module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    return module_mode(model, False)


def train_mode(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    return module_mode(model, True)


def umask() -> int:
    """The process's file-creation mask (read from /proc on Linux; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 minus the umask), not the
    private 0600 of a temporary file: tables, configs and the shared model cache are meant to be read by others.
    ``durable=False`` skips the fsync (milliseconds per file): the rename is still atomic for a killed process,
    but after a power loss the file may be lost or torn — for state whose loss costs only recomputation (a
    checksummed per-epoch training state).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~umask())
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def environment() -> dict[str, str]:
    """What a result row records about where it was produced."""
    dev = default_device()
    info = {
        "unlearnlab": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
    return info
