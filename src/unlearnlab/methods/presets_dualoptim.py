"""DualOptim presets: ``<host>+dualoptim`` (the generic wrapper with a calibrated forget lr) and the DualOptim
paper's own settings ``dualoptim/<host>`` (docs/methods.md, "DualOptim").

``<host>+dualoptim`` keeps the host's optimizer as the retain optimizer (lr, momentum, decay unchanged) and adds an
AdamW forget optimizer (decay 0.05): a row differs from its host in the optimizer split alone. Its forget lr η_f is
calibrated on digits (docs/methods.md); at reference scale it has none (the paper searches it): pass ``forget_lr``.

``dualoptim/<host>`` is the paper's code: retain optimizer SGD(η_r = 0.01, momentum 0.9, wd 5e-4) whatever the
host, forget AdamW(η_f, wd 0.05); keys left ``None`` take the value of the side's optimizer kind
(:data:`KIND_LR`, :data:`KIND_DECAY`), e.g. ``optimizers="adamw+adamw"`` gets η_r = 1e-4, wd 0.05.
``dualoptim/<host>-shared`` is the paper code's ablation of that pair: the same AdamW-style forget and SGD-style
retain updates on one shared state (``optimizers="shared-hybrid"``), so it differs from ``dualoptim/<host>`` in the
sharing alone. ``dualoptim/<host>-shared-adamw`` is a different ablation — one AdamW for both streams — that also
changes the retain optimizer's kind, lr and decay; it is kept under a name that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unlearnlab.components import Component
from unlearnlab.methods.method import Derived, Method, part_keys
from unlearnlab.methods.optimization import parse_optimizers
from unlearnlab.methods.registry import get_method, register
from unlearnlab.methods.wrappers import DUALOPTIM, dualoptim

#: learning rate η_r of a retain optimizer kind in the paper's code (Lion: AdamW's ÷ 3)
KIND_LR = {"sgd": 0.01, "adam": 1e-4, "adamw": 1e-4, "lion": 1e-4 / 3}
#: weight decay of an optimizer kind in the paper's code (SGD coupled; AdamW, Lion decoupled)
KIND_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05, "lion": 1e-2}

PAPER_KEYS: dict[str, Any] = {
    "optimizers": "adamw+sgd", "lr": None, "momentum": 0.9, "weight_decay": None, "forget_weight_decay": None,
    "betas": None, "forget_betas": None, "forget_schedule": None, "milestones": (),
}
#: reference profile: CIFAR-10 / ResNet-18, E = 10, batch 256, MultiStepLR(91, 136) on both optimizers
REFERENCE: dict[str, Any] = {"epochs": 10, "forget_lr": None, "schedule": "multistep", "milestones": (91, 136),
                             "batch_size": 256}


def with_kind_defaults(h: Mapping[str, Any]) -> dict[str, Any]:
    """``h`` with every ``None`` lr/decay filled from the value of its side's optimizer kind."""
    forget_kind, retain_kind, _ = parse_optimizers(h["optimizers"])
    out = dict(h)
    for key, kind, table in (("lr", retain_kind, KIND_LR), ("weight_decay", retain_kind, KIND_DECAY),
                             ("forget_weight_decay", forget_kind, KIND_DECAY)):
        if out[key] is None:
            out[key] = table[kind]
    return out


def kind_filled(optimization: Any) -> Derived:
    """The host's optimisation part, built from parameters whose ``None`` lrs/decays take their kind's value."""
    keys = tuple(sorted(part_keys(optimization, None) | set(PAPER_KEYS) | {"forget_lr"}))

    def make(h: Mapping[str, Any]) -> Any:
        filled = with_kind_defaults(h)
        return optimization.configured(filled) if isinstance(optimization, Component) else optimization(filled)

    return Derived(keys, make)


def paper_method(host: Method, forget_lr: float, **extra: Any) -> Method:
    return host.replace(optimization=kind_filled(host.optimization), phased=True,
                        defaults={**host.defaults, **PAPER_KEYS, "forget_lr": forget_lr, **extra})


#: host, η_f (digits-calibrated), extra defaults, extra reference
#: (host, η_f of dualoptim/<host>, η_f of <host>+dualoptim, extra defaults, extra reference values); the two η_f
#: are calibrated separately on digits because <host>+dualoptim keeps the host's own retain lr (docs/methods.md)
HOSTS: list[tuple[str, float, float, dict[str, Any], dict[str, Any]]] = [
    ("rl", 3e-3, 3e-3, {}, {}),
    ("salun", 1e-2, 3e-3, {}, {}),
    ("scrub", 1e-3, 1e-3, {"forget_schedule": "constant"}, {}),
    ("neggrad-plus", 1e-4, 1e-4, {}, {"epochs": 5, "schedule": "constant", "milestones": ()}),
    ("ga", 3e-4, 3e-4, {}, {"epochs": 5, "schedule": "constant", "milestones": ()}),
    ("sfron", 1e-3, 1e-3, {}, {"iterations": 1500, "epochs": None, "schedule": "cosine", "milestones": ()}),
]


def register_host(host: str, eta_f: float, eta_f_generic: float, extra: dict[str, Any],
                  extra_ref: dict[str, Any]) -> None:
    info = get_method(host)
    generic = dualoptim(info, f"{host}+dualoptim", forget_lr=eta_f_generic, **extra)
    aliases = tuple(f"{a}+dualoptim" for a in info.aliases if "+" not in a)
    register(generic.name, generic.method, composition=generic.composition, paper=DUALOPTIM,
             summary=generic.summary, reference={**generic.reference, "forget_lr": None}, aliases=aliases)
    paper = paper_method(info.method, eta_f, **extra)
    composition = f"{info.composition} × alternate[dual] (paper's AdamW forget, SGD η_r = 0.01 retain)"
    register(f"dualoptim/{host}", paper, composition=composition, paper=DUALOPTIM,
             summary=f"{host} as the DualOptim code runs it: AdamW forget optimizer, SGD(0.01, 0.9, 5e-4) retain "
                     "optimizer over the same parameters.", reference={**REFERENCE, **extra_ref})
    if host == "ga":  # forget steps only: a shared ablation would be the same run
        return
    register(f"dualoptim/{host}-shared", paper.replace(defaults={**paper.defaults, "optimizers": "shared-hybrid"}),
             composition=f"{info.composition} × alternate[shared-hybrid] (one state, AdamW forget / SGD retain steps)",
             paper=DUALOPTIM, reference={**REFERENCE, **extra_ref},
             summary=f"Like-for-like ablation of dualoptim/{host}: the same two update rules on one shared state.")
    register(f"dualoptim/{host}-shared-adamw", paper.replace(defaults={**paper.defaults, "optimizers": "shared-adamw"}),
             composition=f"{info.composition} × alternate[shared] (one AdamW, phase lrs)", paper=DUALOPTIM,
             summary=f"Ablation of dualoptim/{host}: one AdamW state fed by forget and retain gradients.",
             reference={**REFERENCE, **extra_ref})


for _host in HOSTS:
    register_host(*_host)
