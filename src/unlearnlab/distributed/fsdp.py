"""FSDP2 sharding of a model for a distributed run (docs/scaling.md; the DDP side is in
:mod:`unlearnlab.distributed.models`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from unlearnlab.counting import CountingHooks
from unlearnlab.distributed.models import Replica


def fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The submodules sharded as units of their own: the classes a Hugging Face model names in
    ``_no_split_modules`` (its blocks), else every module that holds parameters itself."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    if names:
        return [m for m in model.modules() if type(m).__name__ in names]
    return [m for m in model.modules() if m is not model and next(m.parameters(recurse=False), None) is not None]


def shard_in_place(module: nn.Module, world: int, device: torch.device) -> nn.Module:
    """Apply FSDP2 to ``module`` over all ``world`` ranks (its shards move to ``device``); returns it."""
    mesh = init_device_mesh(device.type, (world,))
    for unit in fsdp_units(module):
        fully_shard(unit, mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


def shard(model: nn.Module, world: int, device: torch.device, average: Callable[[Iterable[torch.Tensor]], None]
          ) -> Replica:
    """A sharded copy of ``model`` (which stays as it is, wherever it lives).

    unlearnlab's cost-counting hooks would count into copies of their counters: the copy's are removed and
    ``model``'s own counting hooks are registered on the copy too, so its forwards count where ``model``'s do (the
    user's own hooks stay as copied). The random generators ``model``'s modules hold (a denoiser's noise stream)
    are shared, not copied: the run's draws advance ``model``'s own streams, as they do on one device.
    """
    generators = {id(g): g for m in model.modules() for g in vars(m).values() if isinstance(g, torch.Generator)}
    clone = copy.deepcopy(model, memo=dict(generators))
    for module in clone.modules():
        for hook_id, hook in list(module._forward_hooks.items()):
            if isinstance(getattr(hook, "__self__", None), CountingHooks):
                del module._forward_hooks[hook_id]
    for hook in list(model._forward_hooks.values()):
        if isinstance(getattr(hook, "__self__", None), CountingHooks):
            clone.register_forward_hook(hook)
    shard_in_place(clone, world, device)
    return Replica(model, clone, clone, average, full_state)


def full_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict of a sharded module, gathered on every rank."""
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in module.state_dict().items()}
