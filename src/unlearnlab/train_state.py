"""The resumable state of a training run: what :func:`unlearnlab.training.train` saves after every epoch.

After epoch k (0 < k < E) the loop saves, atomically and checksummed (:mod:`unlearnlab.checksums`):
the model's state dict (parameters and buffers), the optimizer's state (momentum / Adam moments, per-group lr),
the lr scheduler's position (its step count), the GradScaler's state (fp16), the batch-order generator's state
(it also draws the augmentation), torch's global CPU RNG state (and the CUDA one on a GPU: dropout and other
layers that draw from it), the states of any further generators the loss draws from (``streams``, e.g. a
diffusion model's noise), the epoch count, the cost counters and the seconds trained so far. Restoring all of
it before epoch k + 1 makes the remaining epochs the same computation as in an uninterrupted run, so on the CPU
the resumed model is bit-identical to it (tested). A *fingerprint* — recipe, seed, sample count, the model's
parameter names, shapes and dtypes — ties a state to its training: a state made for another one is ignored,
and a damaged one (checksum) is reported and training starts from epoch 0. See docs/architecture.md,
"Resumable training".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.checksums import DamagedFileError, checksum_path, load_torch, remove_checked, save_torch

FORMAT = "unlearnlab.train-state/1"


@dataclass(frozen=True)
class TrainCheckpoint:
    """Where a training run keeps its state between epochs (``path`` and its ``.sha256``).

    ``log(text)`` hears about a resumed or a discarded state. :func:`~unlearnlab.training.train` writes the file
    after every epoch but the last (at most once per ``min_interval`` seconds) and never deletes it: the caller
    does (:meth:`clear`) once the finished model is saved, as the model cache does.
    """

    path: Path
    log: Callable[[str], None] | None = None
    #: save at most once per this many seconds of training (0: after every epoch); a resumed run repeats only the
    #: epochs since the last save, so short epochs need not each write the whole state
    min_interval: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically with its checksum, without fsync: it is rewritten every epoch, and one
        lost or torn by a power failure fails its checksum and only costs the epochs trained so far."""
        save_torch(self.path, state, durable=False)

    def load(self, fingerprint: str) -> dict[str, Any] | None:
        """The saved state of the training with ``fingerprint``; ``None`` (training starts afresh) when there is
        none, when it is damaged (reported and deleted) or when it belongs to another training."""
        if not self.path.exists() and not checksum_path(self.path).exists():
            return None
        try:
            state, _ = load_torch(self.path)
        except DamagedFileError as err:
            self.note(f"training checkpoint {self.path.name} is damaged ({err.reason}): training from the start")
            self.clear()
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("fingerprint") != fingerprint:
            self.note(f"training checkpoint {self.path.name} belongs to another training: training from the start")
            return None
        return state

    def clear(self) -> None:
        """Delete the state (and its checksum file)."""
        remove_checked(self.path)

    def note(self, text: str) -> None:
        """Tell ``log`` (when given) about ``text``."""
        if self.log is not None:
            self.log(text)


def fingerprint(model: nn.Module, recipe: dict[str, Any], seed: int, samples: int,
                streams: tuple[str, ...] = ()) -> str:
    """A digest of what a training run is: its recipe, seed, number of samples, the model's state layout and the
    names of the further random ``streams`` its loss draws from (left out when there are none)."""
    layout = [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    what: dict[str, Any] = {"recipe": recipe, "seed": seed, "samples": samples, "layout": layout}
    if streams:
        what["streams"] = sorted(streams)
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def capture(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
            generator: torch.Generator, epoch: int, counters: dict[str, int], seconds: float,
            fingerprint: str, streams: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Everything the next epochs depend on, as tensors and plain values (``torch.load(weights_only=True)``
    reads it back); ``streams`` are further named generators the loss draws from."""
    device = next(model.parameters()).device
    return {
        "format": FORMAT, "fingerprint": fingerprint, "epoch": epoch, "counters": dict(counters),
        "seconds": float(seconds),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "streams": {name: g.get_state() for name, g in (streams or {}).items()},
    }


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: Any, generator: torch.Generator, streams: Mapping[str, torch.Generator] | None = None) -> None:
    """Put a state made by :func:`capture` back: the model, optimizer, scheduler, scaler and every random state
    (``streams`` by name)."""
    device = next(model.parameters()).device
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state["cuda_rng"] is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    for name, g in (streams or {}).items():  # the fingerprint names the streams, so the state holds each
        g.set_state(state["streams"][name])
