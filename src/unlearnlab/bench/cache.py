"""Content-addressed cache of trained originals and retrains.

Key = SHA-256 of (kind, dataset, model name, model options, recipe, data/split hash, seed, cache version). A
checkpoint embeds that identity, the recipe, the training time and the package version, and is loaded with
``torch.load(weights_only=True)``; a checkpoint whose architecture does not match the model is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import atomic_write_bytes
from unlearnlab.version import __version__

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$UNLEARNLAB_CACHE`` or ``~/.cache/unlearnlab/models``."""
    env = os.environ.get("UNLEARNLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "unlearnlab" / "models"


def cache_key(identity: dict[str, Any]) -> str:
    blob = json.dumps({**identity, "cache_version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically; ``meta`` must be JSON-serialisable."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta_json": json.dumps({**meta, "unlearnlab": __version__})}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` (``weights_only=True``) and return the checkpoint's metadata.

    Refuses, with a message naming the mismatch, a checkpoint of another architecture.
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise UnlearnlabError(f"{path} is not an unlearnlab checkpoint (no 'state_dict' entry).")
    meta = json.loads(blob.get("meta_json", "{}"))
    check_state_dict(model, blob["state_dict"], str(path), meta.get("model"))
    model.load_state_dict(blob["state_dict"])
    return meta


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str | None) -> None:
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
        if wrong:
            k = wrong[0]
            details.append(f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        made = f" (saved from model {arch!r})" if arch else ""
        raise UnlearnlabError(
            f"Checkpoint {source}{made} does not match this model: {'; '.join(details)}. Build the model with "
            "the architecture and class count the checkpoint was trained with, or retrain it (--no-cache)."
        )


@dataclass
class ModelCache:
    """Get a trained model from the cache, or train it once and store it."""

    root: Path
    enabled: bool = True

    def path(self, identity: dict[str, Any]) -> Path:
        return self.root / f"{identity['kind']}-{cache_key(identity)}.pt"

    def get_or_train(self, identity: dict[str, Any], model: nn.Module,
                     train_fn: Callable[[nn.Module], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Fill ``model`` from the cache or by ``train_fn(model) -> meta``; returns (meta, was_cached)."""
        path = self.path(identity)
        if self.enabled and path.exists():
            return load_checkpoint(path, model), True
        meta = {**identity, **train_fn(model)}
        save_checkpoint(path, model, meta)
        return meta, False
