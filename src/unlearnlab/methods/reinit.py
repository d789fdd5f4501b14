"""Re-initialisation of a model to its default initial weights (retrain, budget-matched retrain).

Every module that has ``reset_parameters()`` is reset under a fixed seed (CPU and the model's CUDA generator
forked, so the caller's random state is untouched). A model that follows the Hugging Face convention (a root
``_init_weights(module)``) is initialised by applying it to every module. A trainable parameter that no such
method covers would keep its trained value, so it is refused by name: a "retrain" must never keep trained weights.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh default initialisation of ``model`` in place, seeded by ``seed``; raises if a parameter is uncovered."""
    covered: set[int] = set()
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    hf_init = getattr(model, "_init_weights", None)
    with torch.random.fork_rng(devices=devices[:1]):
        torch.manual_seed(seed)
        for module in model.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                covered.update(id(p) for p in module.parameters(recurse=False))
            elif callable(hf_init):
                hf_init(module)
                covered.update(id(p) for p in module.parameters(recurse=False))
    missing = [name for name, p in model.named_parameters() if id(p) not in covered]
    if missing:
        owners = sorted({name.rsplit(".", 1)[0] if "." in name else "(root)" for name in missing})
        raise UnlearnlabError(
            f"Cannot re-initialise parameter(s) {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}: their "
            f"module(s) {', '.join(owners[:5])} have no reset_parameters(). A retrain must not keep trained weights: "
            "give those modules a reset_parameters() method (or build the model anew and train it on D_r)."
        )
