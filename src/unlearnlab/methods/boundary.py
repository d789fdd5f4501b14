"""Boundary Unlearning (Chen et al., CVPR 2023): Boundary Shrink and Boundary Expanding (docs/methods.md).

Both are iterative objectives on D_f only, composed with ``joint`` (not one-shot); classifiers only.

* :class:`NeighbourLabelCE` (BS): with a frozen eval copy f_0 of the original,
  ``x_adv = round(255·clip_[0,1](x + b·sign(∇_x CE(f_0(x), y))))/255`` in pixel space (normalisation is inside the
  model), ``y_nb = argmax f_0(x_adv)``; the loss is CE(f_θ(x), y_nb) on the clean x.
* :class:`ShadowCE` + :class:`BoundaryExpand` (BE): the last ``nn.Linear`` (C outputs) is replaced by one with C+1
  outputs (rows 0…C−1 copied, row C PyTorch's default init under a seed-derived RNG), all parameters are trained
  on D_f with target C, then the shadow row is pruned (``prune_shadow=True``; ``False`` reproduces the reference,
  whose model keeps C+1 outputs). The optimizer is built after the expansion (the wrapped iterative unlearner
  builds it in ``run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.objectives import Objective
from unlearnlab.utils import component_seed


def fgsm_pixel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float) -> torch.Tensor:
    """One FGSM step of size ``bound`` in [0, 1] pixel space, rounded to 8-bit levels (gradients w.r.t. x only)."""
    x_req = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    return torch.round(255 * torch.clamp(x.detach() + bound * grad.sign(), 0.0, 1.0)) / 255


@dataclass
class NeighbourLabelCE(Objective):
    """BS: CE(f_θ(x), argmax f_0(FGSM(x))) with f_0 the frozen original in eval mode (``teacher``)."""

    bound: float = 0.1
    needs_teacher: ClassVar[bool] = True

    def neighbour(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_adv, y_nb), both from the frozen copy."""
        x_adv = fgsm_pixel(self.teacher, x, y, self.bound)
        with torch.no_grad():
            y_nb = self.teacher(x_adv).argmax(1)
        return x_adv, y_nb

    def __call__(self, model, batch, ctx):
        x = batch["x"]
        _, y_nb = self.neighbour(x, batch["y"])
        return F.cross_entropy(model(x), y_nb)


@dataclass
class ShadowCE(Objective):
    """BE: CE(f_θ(x), C) — every forget sample labelled with the shadow class C (the last output)."""

    def __call__(self, model, batch, ctx):
        logits = model(batch["x"])
        return F.cross_entropy(logits, torch.full_like(batch["y"], logits.shape[1] - 1))


def _last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute name, layer) of the model's last ``nn.Linear``."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise UnlearnlabError("Boundary Expanding needs a model whose head is an nn.Linear layer.")
    return found


def expand_head(model: nn.Module, seed: int) -> int:
    """Replace the last Linear (C outputs) by C+1 outputs: rows copied, row C default-initialised (seeded).

    Returns C.
    """
    parent, name, old = _last_linear(model)
    c = old.out_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed(seed, "shadow-row"))
        new = nn.Linear(old.in_features, c + 1, bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight[:c].copy_(old.weight)
        if old.bias is not None:
            new.bias[:c].copy_(old.bias)
    new.train(old.training)
    setattr(parent, name, new)
    return c


def prune_head(model: nn.Module, classes: int) -> None:
    """Keep the first ``classes`` rows of the last Linear (drop the shadow row)."""
    parent, name, old = _last_linear(model)
    new = nn.Linear(old.in_features, classes, bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[:classes])
        if old.bias is not None:
            new.bias.copy_(old.bias[:classes])
    new.train(old.training)
    setattr(parent, name, new)


@dataclass
class BoundaryExpand(Unlearner):
    """BE: expand the head, run ``inner`` (ShadowCE × joint on D_f; optimizer built after expansion), prune."""

    inner: Unlearner
    prune_shadow: bool = True
    batch_size: int = field(default=64)

    def __post_init__(self) -> None:
        self.batch_size = self.inner.batch_size

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        classes = expand_head(model, ctx.seed)
        stats = self.inner.run(model, data, ctx)
        if self.prune_shadow:
            prune_head(model, classes)
        stats["prune_shadow"] = self.prune_shadow
        return stats
