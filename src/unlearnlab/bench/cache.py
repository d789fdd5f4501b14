"""Content-addressed cache of trained originals and retrains, with checksummed checkpoints.

Key = SHA-256 of (kind, dataset, model name, model options, recipe, data/split hash, seed, cache version). A
checkpoint embeds that identity, the recipe, the training time and the package version; it is written with the
SHA-256 of its bytes next to it (:mod:`unlearnlab.checksums`), verified before ``torch.load(weights_only=True)``
ever sees it, and a checkpoint whose architecture does not match the model is refused. A cache entry that is
empty, truncated, bit-flipped, unloadable or missing its checksum is reported in one line and retrained, never
loaded. While a model trains, its state after every epoch is kept next to the entry (``<entry>.train-state``,
also checksummed; :class:`~unlearnlab.training.TrainCheckpoint`), so a killed run resumes mid-training; that
file is deleted once the finished model is cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.checksums import (
    DamagedFileError,
    checksum_path,
    read_checked,
    sha256_hex,
    torch_object,
    write_checked,
)
from unlearnlab.checksums import torch_bytes as serialise
from unlearnlab.errors import UnlearnlabError
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.version import __version__

CACHE_VERSION = 1
#: suffix of the per-epoch training state kept next to a cache entry while it trains
PARTIAL_SUFFIX = ".train-state"


def default_cache_dir() -> Path:
    """``$UNLEARNLAB_CACHE`` or ``~/.cache/unlearnlab/models``."""
    env = os.environ.get("UNLEARNLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "unlearnlab" / "models"


def check_cache_dir(root: str | Path) -> None:
    """Refuse, before anything is written, a cache folder that is a file, lies under one, or cannot be read and
    written (a folder that does not exist yet is checked through its nearest existing parent)."""
    root = Path(root)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    fix = "set $UNLEARNLAB_CACHE (or cache_dir in the config) to a folder you can write."
    if not probe.is_dir():
        raise UnlearnlabError(f"The model cache {root} cannot be used: {probe} is not a folder; {fix}")
    if not os.access(probe, os.R_OK | os.W_OK | os.X_OK):
        raise UnlearnlabError(f"The model cache {root} cannot be used: {probe} is not readable and writable by "
                              f"this user; {fix}")


def cache_key(identity: dict[str, Any]) -> str:
    blob = json.dumps({**identity, "cache_version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_checkpoint(path: str | Path, model: nn.Module | Mapping[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Write ``{"state_dict", "meta_json"}`` of a model (or of a state dict) atomically with its checksum file;
    ``meta`` must be JSON-serialisable. Returns the file's SHA-256."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    blob = {"state_dict": {k: v.detach().cpu() for k, v in state.items()},
            "meta_json": json.dumps({**meta, "unlearnlab": __version__})}
    return write_checked(path, serialise(blob))


def load_checkpoint(source: str | Path | bytes, model: nn.Module, digest: str | None = None,
                    checksum_required: bool = True) -> dict[str, Any]:
    """Load weights into ``model`` and return the checkpoint's metadata, with the file's SHA-256 as ``"sha256"``.

    ``source`` is a path or the file's bytes. The bytes are verified against ``digest`` (else the checksum file
    next to the path; bytes need ``digest``) before ``torch.load(weights_only=True)``; a damaged or unloadable
    file raises :class:`~unlearnlab.checksums.DamagedFileError`. ``checksum_required=False`` accepts a file
    without a checksum (a user's own ``torch.save(model.state_dict(), path)``). Both an unlearnlab checkpoint and
    a plain state dict are read; another architecture is refused with a message naming the mismatching keys and
    shapes, and ``model`` is left untouched.
    """
    if isinstance(source, bytes):
        name = "checkpoint bytes"
        if digest is None and checksum_required:
            raise DamagedFileError(name, "checksum missing")
        if digest is not None and sha256_hex(source) != digest:
            raise DamagedFileError(name, "checksum mismatch" if source else "empty file")
        data = source
    else:
        name = str(source)
        data = read_checked(source, digest, checksum_required)
    blob = torch_object(data, name)
    state, meta = state_and_meta(blob, name)
    check_state_dict(model, state, name, meta.get("model"))
    model.load_state_dict(state)
    return {**meta, "sha256": sha256_hex(data)}


def state_and_meta(blob: Any, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of an unlearnlab checkpoint, or of a plain ``{name: tensor}`` state dict."""
    if isinstance(blob, dict) and "state_dict" in blob:
        state, meta = blob["state_dict"], json.loads(blob.get("meta_json", "{}"))
    else:
        state, meta = blob, {}
    if not (isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in state.items())):
        raise UnlearnlabError(f"{name} is not an unlearnlab checkpoint nor a state dict (a mapping of parameter "
                              "names to tensors): save one with torch.save(model.state_dict(), PATH).")
    return state, meta


class ArchitectureError(UnlearnlabError):
    """Weights that do not fit the model; :attr:`details` names the missing and unexpected keys and the shapes."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str | None) -> None:
    """Raise :class:`ArchitectureError`, naming the missing and unexpected keys and the first mismatching
    shapes, unless ``state`` fits ``model`` exactly."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}")
        if extra:
            details.append(f"unexpected {extra[:3]}")
        details += [f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in wrong[:3]]
        made = f" (saved from model {arch!r})" if arch else ""
        raise ArchitectureError(
            f"Checkpoint {source}{made} does not match this model: {'; '.join(details)}. Build the model with "
            "the architecture and class count the checkpoint was trained with, or retrain it (--no-cache).",
            "; ".join(details))


@dataclass
class ModelCache:
    """Get a trained model from the cache, or train it once (resumably) and store it."""

    root: Path
    enabled: bool = True
    #: where a damaged entry or a resumed training is reported (default: a Python warning)
    log: Callable[[str], None] | None = None

    def path(self, identity: dict[str, Any]) -> Path:
        return self.root / f"{identity['kind']}-{cache_key(identity)}.pt"

    def partial(self, identity: dict[str, Any]) -> TrainCheckpoint | None:
        """Where the training of ``identity`` keeps its per-epoch state (``None`` when the cache is off: a
        retrain that ignores cached models does not resume an earlier training either)."""
        if not self.enabled:
            return None
        path = self.path(identity)
        return TrainCheckpoint(path.with_name(path.name + PARTIAL_SUFFIX), self._say)

    def is_cached(self, identity: dict[str, Any]) -> bool:
        """Whether ``identity`` has an intact entry (its bytes match its checksum) that the cache would use."""
        path = self.path(identity)
        if not self.enabled or not path.exists():
            return False
        try:
            read_checked(path)
        except DamagedFileError:
            return False
        return True

    def get_or_train(self, identity: dict[str, Any], model: nn.Module,
                     train_fn: Callable[[nn.Module], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Fill ``model`` from the cache or by ``train_fn(model) -> meta``; returns (meta, was_cached). The meta
        carries the checkpoint's SHA-256 as ``"sha256"``. A damaged entry is reported and retrained."""
        path = self.path(identity)
        if self.enabled and (path.exists() or checksum_path(path).exists()):
            try:
                return load_checkpoint(path, model), True
            except DamagedFileError as err:
                self._say(f"cache entry {path.name} is damaged ({err.reason}): retraining it")
        meta = {**identity, **train_fn(model)}
        digest = save_checkpoint(path, model, meta)
        partial = self.partial(identity)
        if partial is not None:
            partial.clear()
        return {**meta, "sha256": digest}, False

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)
        else:
            warnings.warn(text, UserWarning, stacklevel=3)
