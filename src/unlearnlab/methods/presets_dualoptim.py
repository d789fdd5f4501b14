"""DualOptim presets (dualoptim.md §7–§8): a host's objectives, mask and schedule × ``alternate[dual|shared]``.

``<host>+dualoptim`` swaps only the host's optimizer (specs/README.md §2.10): a forget optimizer (AdamW by
default) stepped only by forget gradients and a retain optimizer (SGD-momentum) stepped only by retain
gradients, over the same parameters. ``<host>+dualoptim-shared`` is the ablation: the same keys and schedule
with one optimizer state fed by both streams (``optimizers="shared-adamw"``; compare with
``optimizers="adamw+adamw"``). Hosts: RL and SalUn (epoch alternation), SCRUB (epoch alternation, retain
scheduler only), NegGrad+ (``Interleave(1, 1)``: forget step on −(1−β)·CE_f, retain step on β·CE_r) and GA
(forget steps only, so no shared ablation: it would be the same run).

Keys left ``None`` take the §7 value of the side's optimizer kind (:data:`KIND_LR`, :data:`KIND_DECAY`, the
optimizer's own betas). The forget lr η_f is searched in the paper (grid 1e-5 … 1e-3, no published value): the
small default is calibrated on digits (docs/methods.md), the reference profile has none — pass
``forget_lr`` (specs/README.md §2.4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.iterative import IterativeUnlearner, parse_optimizers
from unlearnlab.methods.presets import REF_BATCH, _ga, _neggrad_plus, _rl, _salun, _scrub
from unlearnlab.methods.registry import Builder, get_method, register_method
from unlearnlab.methods.rules import Alternate, Rule
from unlearnlab.methods.rules.alternate import Interleave

PAPER = "DualOptim (Zhong et al., NeurIPS 2025)"

#: §7 learning rate η_r of a retain optimizer kind (Lion: AdamW's ÷ 3)
KIND_LR = {"sgd": 0.01, "adam": 1e-4, "adamw": 1e-4, "lion": 1e-4 / 3}
#: §7 weight decay of an optimizer kind (SGD coupled; AdamW, Lion decoupled)
KIND_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05, "lion": 1e-2}

DUAL_KEYS: dict[str, Any] = {
    "optimizers": "adamw+sgd", "forget_lr": 1e-3, "lr": None, "momentum": 0.9, "weight_decay": None,
    "forget_weight_decay": None, "betas": None, "forget_betas": None, "forget_schedule": None, "milestones": (),
}
#: reference profile: CIFAR-10 / ResNet-18, E = 10, batch 256, MultiStepLR(91, 136) on both optimizers
REFERENCE: dict[str, Any] = {
    "epochs": 10, "forget_lr": None, "schedule": "multistep", "milestones": (91, 136), **REF_BATCH,
}


def with_kind_defaults(h: dict[str, Any]) -> dict[str, Any]:
    """``h`` with every ``None`` lr/decay filled from the §7 value of its side's optimizer kind."""
    if h["forget_lr"] is None:
        raise UnlearnlabError(
            "DualOptim's forget lr η_f has no default at reference scale (the paper searches 1e-5 … 1e-3, "
            "Lion ÷ 3): pass forget_lr=... ."
        )
    forget_kind, retain_kind, _ = parse_optimizers(h["optimizers"])
    out = dict(h)
    for key, kind, table in (("lr", retain_kind, KIND_LR), ("weight_decay", retain_kind, KIND_DECAY),
                             ("forget_weight_decay", forget_kind, KIND_DECAY)):
        if out[key] is None:
            out[key] = table[kind]
    return out


def dual(host: Builder, rule: Callable[[IterativeUnlearner], Rule] | None = None) -> Builder:
    """A builder running ``host``'s objectives and mask with the optimizers of ``h`` (and ``rule`` if given)."""

    def build(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
        h = with_kind_defaults(h)
        base = host(h, num_classes)
        return dataclasses.replace(
            base, rule=rule(base) if rule is not None else base.rule, optimizers=h["optimizers"],
            forget_lr=h["forget_lr"], forget_weight_decay=h["forget_weight_decay"], betas=h["betas"],
            forget_betas=h["forget_betas"], forget_schedule=h["forget_schedule"], milestones=tuple(h["milestones"]),
        )

    return build


def interleave_1_1(base: IterativeUnlearner) -> Rule:
    """NegGrad+'s weights on ``Interleave(1, 1)``: forget step −(1−β)·CE_f, then retain step β·CE_r."""
    return Interleave(1, 1, forget_weight=base.rule.forget_weight, retain_weight=base.rule.retain_weight)


def forget_only(base: IterativeUnlearner) -> Rule:
    """GA's forget passes as forget steps (``ForgetOnly``: epoch alternation without a retain objective)."""
    return Alternate()


#: name, host preset, host builder, rule, family, η_f (digits-calibrated, shared by the ablation), extra defaults,
#: extra reference
HOSTS: list[tuple[str, str, Builder, Callable | None, str, float, dict, dict]] = [
    ("rl", "rl", _rl, None, "RL_f | CE_r", 3e-3, {}, {}),
    ("salun", "salun", _salun, None, "RL_f | CE_r + saliency mask (both phases)", 1e-2, {}, {}),
    ("scrub", "scrub", _scrub, None, "−KL_1 | CE_r + 0.5·KL_1 (retain scheduler only)", 1e-3,
     {"forget_schedule": "constant"}, {}),
    ("neggrad-plus", "neggrad-plus", _neggrad_plus, interleave_1_1, "−(1−β)·CE_f | β·CE_r, Interleave(1, 1)",
     1e-4, {}, {"epochs": 5, "schedule": "constant", "milestones": ()}),
    ("ga", "ga", _ga, forget_only, "−CE_f | — (forget optimizer only)", 3e-4, {},
     {"epochs": 5, "schedule": "constant", "milestones": ()}),
]


def _register(name: str, host: str, builder: Builder, rule: Callable | None, family: str, eta_f: float,
              extra: dict, extra_ref: dict) -> None:
    info = get_method(host)
    defaults = {**info.defaults, **DUAL_KEYS, "forget_lr": eta_f, **extra}
    reference = {**REFERENCE, **extra_ref}
    aliases = tuple(f"{a}+dualoptim" for a in info.aliases if "+" not in a)
    build = dual(builder, rule)
    register_method(
        f"{name}+dualoptim", family=f"{family} × alternate[dual] (AdamW forget, SGD retain)", paper=PAPER,
        aliases=aliases, defaults=defaults, reference=reference,
        summary=f"{host} with two optimizers over the same parameters: forget steps only feed the forget "
                "optimizer, retain steps only the retain optimizer.",
    )(build)
    if rule is forget_only:
        return
    register_method(
        f"{name}+dualoptim-shared", family=f"{family} × alternate[shared] (one AdamW, phase lrs)", paper=PAPER,
        aliases=tuple(f"{a}-shared" for a in aliases), defaults={**defaults, "optimizers": "shared-adamw"},
        reference=reference,
        summary=f"Ablation of {name}+dualoptim: one optimizer state fed by forget and retain gradients.",
    )(build)


for _host in HOSTS:
    _register(*_host)
