"""EUPMU, EUPMU-fast and UNGrad presets (eupmu.md §5; specs/README §1, §2.10): host objectives × surgery rules.

A ``host+eupmu`` / ``host+ungrad`` preset keeps the host's objectives (CE_r if it has none) and swaps its rule:
RL hosts relabel D_f once per epoch (the forget objective is CE on those labels); hosts whose forget objective
can be negative (GA's −CE, SCRUB's −KL) use the identity objective transform. ``defaults`` are the digits values
(``scripts/calibrate_digits.py``, docs/methods.md); ``reference`` holds the paper's CIFAR-10 / ResNet-18
values (SGD 0.9, wd 5e-4, batch 256, 5 epochs, lr 1e-3 for random 10 %).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.objectives import CrossEntropy, NegativeCrossEntropy, Objective, ScrubRetain, TeacherKL
from unlearnlab.methods.presets import REF_BATCH, SGD_KEYS, iterative
from unlearnlab.methods.registry import Builder, register_method
from unlearnlab.methods.rules import ImplicitSurgery, Surgery

EUPMU = "EUPMU (NeurIPS 2025, arXiv 2510.22124)"

#: the ``implicit_surgery`` options a preset exposes (rule defaults of eupmu.md §5, ε and λ0 per preset)
RULE_KEYS: dict[str, Any] = {
    "epsilon": -0.01, "eu_error": None, "lambda_lr": 1.0, "lambda_weight_decay": 0.01, "lambda_init": 0.0,
    "lambda_max": None, "lambda_optimizer": "adam", "lambda_projection": "hard", "forget_scale": 1.0,
    "retain_scale": 1.0, "objective_transform": "log", "signal_transform": "log", "log_offset": 0.0,
    "weighting": "additive", "lr_normalised": False, "lr_floor": 1e-8, "signal_mode": "frozen_bn", "fast": False,
}
REFERENCE = {"epochs": 5, "lr": 1e-3, **REF_BATCH}
FAST = {"fast": True, "weighting": "convex", "objective_transform": "identity", "epsilon": -0.06,
        "lambda_lr": 0.5, "lambda_init": 1.0}
#: forget objectives that can be negative need the identity objective transform
IDENTITY = {"objective_transform": "identity"}


def _rule(h: dict[str, Any], relabel: bool) -> ImplicitSurgery:
    return ImplicitSurgery(**{k: h[k] for k in RULE_KEYS}, relabel=relabel)


def _eupmu(forget: Callable[[], Objective], retain: Callable[[], Objective], relabel: bool,
           mask: bool = False) -> Builder:
    """Builder of an ``implicit_surgery`` preset over fresh host objectives (``forget()``, ``retain()``)."""

    def build(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
        extra = {"mask_fraction": h["mask_fraction"], "mask_scope": "both"} if mask else {}
        return iterative(h, forget(), retain(), _rule(h, relabel), **extra)

    return build


def _eupmu_preset(name: str, family: str, summary: str, build: Builder, lr: float, aliases: tuple[str, ...] = (),
                  **keys: Any) -> None:
    register_method(name, family=family, paper=EUPMU, summary=summary, aliases=aliases,
                    defaults={**SGD_KEYS, **RULE_KEYS, "lr": lr, **keys}, reference=REFERENCE)(build)


_eupmu_preset(
    "eupmu", "RL_f (per epoch) | CE_r × implicit_surgery (log, additive, ε = −0.01)",
    "Random-label CE on D_f (labels per epoch) + λ·CE_r, one backward per step; λ learned from the retain-loss "
    "change.", _eupmu(CrossEntropy, CrossEntropy, relabel=True), lr=0.01 / 3,
    aliases=("rl+eupmu",))
_eupmu_preset(
    "salun+eupmu", "RL_f (per epoch) | CE_r × implicit_surgery + saliency mask",
    "EUPMU restricted to the 50 % most forget-salient weights (exact mask).",
    _eupmu(CrossEntropy, CrossEntropy, relabel=True, mask=True), lr=0.01 / 3,
    mask_fraction=0.5)
_eupmu_preset(
    "ga+eupmu", "−CE_f | CE_r × implicit_surgery (identity objective)",
    "Gradient ascent on D_f + λ·CE_r, identity objective transform (−CE can be negative).",
    _eupmu(NegativeCrossEntropy, CrossEntropy, relabel=False), lr=1e-3, **IDENTITY)
_eupmu_preset(
    "scrub+eupmu", "−KL_1 | CE_r + 0.5·KL_1 × implicit_surgery (identity objective)",
    "Away from the teacher on D_f + λ·(CE + KL to the teacher) on D_r, identity objective transform.",
    _eupmu(lambda: TeacherKL(temperature=1.0, sign=-1.0), ScrubRetain, relabel=False), lr=0.01 / 3,
    **IDENTITY)
_eupmu_preset(
    "eupmu-fast", "RL_f (per epoch) | CE_r × implicit_surgery[fast] (convex, ε = −0.06)",
    "EUPMU without the post-step forward: λ from consecutive training losses.",
    _eupmu(CrossEntropy, CrossEntropy, relabel=True), lr=0.01 / 3, **FAST)


@register_method(
    "ungrad", family="RL_f (per epoch) | CE_r × surgery (ε = 0)", paper=EUPMU, aliases=("rl+ungrad",),
    summary="Explicit unilateral surgery: d = g_u + λ*·g_r with the closed-form λ* (two backward passes).",
    defaults={**SGD_KEYS, "lr": 1e-3 / 3, "epsilon": 0.0, "mask_before_surgery": True}, reference=REFERENCE,
)
def _ungrad(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    rule = Surgery(epsilon=h["epsilon"], mask_before_surgery=h["mask_before_surgery"], relabel=True)
    return iterative(h, CrossEntropy(), CrossEntropy(), rule)
