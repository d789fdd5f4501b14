"""Certified unlearning presets (spec certified.md §3–§6, §8, §9.6): ``certified-gradclip``,
``certified-modelclip`` and the certified baseline ``output-perturbation``.

Both are ``— | CE_r × noisy_clip``: a noisy clipped phase on D_r from the original model, an (ε, δ) certificate
(:class:`unlearnlab.certify.Certificate`, returned as ``stats["certificate"]`` in ``state_dict`` form), then
noise-free fine-tuning (SGD momentum 0, coupled wd 5e−4, linear one-cycle with peak ``lr``) for the rest of the
``epochs`` budget. Defaults are the scaled CPU variant (§9.6, digits, batch 32, E = 10); ``reference`` is the
MNIST/CIFAR-10 batch 128.

``output-perturbation`` (§8) is one-shot: x = clip_{C0}(x̂) + N(0, σ²I) with σ calibrated for sensitivity 2C0
(classic Gaussian where valid, ε ≤ 1; analytic Gaussian above), then the same fine-tuning for the whole budget.
The certified "retrain with the same budget" baseline is the ``retrain`` preset run with
:func:`certified_retrain_recipe` (README: ``retrain`` = fresh init + the protocol's retrain recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.objectives import CrossEntropy
from unlearnlab.methods.registry import register_method
from unlearnlab.methods.rules.noisy_clip import NoisyClip
from unlearnlab.training import Recipe

PAPER = "Certified unlearning for neural networks (Koloskova et al., ICML 2025)"

COMMON: dict[str, Any] = {
    "epochs": 10, "batch_size": 32, "lr": 0.1, "weight_decay": 5e-4,
    "epsilon": 1.0, "delta": 1e-5, "gamma": 1e-3, "C0": 1.0,
    "sigma": None, "T": None, "frozen_params": "none", "buffers": "reject",
}
REFERENCE = {"batch_size": 128}


@dataclass
class CertifiedUnlearner(IterativeUnlearner):
    """:class:`IterativeUnlearner` whose rule is :class:`NoisyClip`; adds the rule's stats and certificate."""

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        stats = super().run(model, data, ctx)
        stats.update(self.rule.stats)  # type: ignore[attr-defined]
        return stats


def _build(h: dict[str, Any], rule: NoisyClip) -> CertifiedUnlearner:
    return CertifiedUnlearner(forget=None, retain=CrossEntropy(), rule=rule, epochs=h["epochs"], lr=h["lr"],
                              optimizer="sgd", momentum=0.0, weight_decay=h["weight_decay"],
                              batch_size=h["batch_size"], schedule="constant")


@register_method(
    "certified-gradclip", family="— | CE_r × noisy_clip[gradient clip C1] + fine-tuning", paper=PAPER,
    forgets=False,
    summary="(ε, δ)-certified: clip model to C0, T noisy steps x ← x − γ(clip_C1(g) + λx) + N(0, σ²I), "
            "then noise-free fine-tuning on D_r (pabi-rdp accountant, tight conversion).",
    defaults={**COMMON, "C1": 1.0, "lam": 500.0, "accounting": "certified"},
    reference={**REFERENCE},
)
def _certified_gradclip(h: dict[str, Any], num_classes: int) -> CertifiedUnlearner:
    rule = NoisyClip(variant="gradient_clip", epsilon=h["epsilon"], delta=h["delta"], C0=h["C0"], C1=h["C1"],
                     gamma=h["gamma"], lam=h["lam"], sigma=h["sigma"], T=h["T"], accounting=h["accounting"],
                     frozen_params=h["frozen_params"], buffers=h["buffers"], method="certified-gradclip")
    return _build(h, rule)


@register_method(
    "certified-modelclip", family="— | CE_r × noisy_clip[model clip C2] + fine-tuning", paper=PAPER,
    forgets=False,
    summary="(ε, δ)-certified: x ← clip_C2(x − γ(g + λx)) + N(0, σ²I) until δ_t ≤ δ, then noise-free "
            "fine-tuning on D_r (hockey-stick contraction accountant).",
    defaults={**COMMON, "C2": 0.5, "sigma": 0.5, "sigma0": 0.0, "lam": 10.0},
    reference={**REFERENCE},
)
def _certified_modelclip(h: dict[str, Any], num_classes: int) -> CertifiedUnlearner:
    rule = NoisyClip(variant="model_clip", epsilon=h["epsilon"], delta=h["delta"], C0=h["C0"], C2=h["C2"],
                     gamma=h["gamma"], lam=h["lam"], sigma=h["sigma"], sigma0=h["sigma0"], T=h["T"],
                     frozen_params=h["frozen_params"], buffers=h["buffers"], method="certified-modelclip")
    return _build(h, rule)


@register_method(
    "output-perturbation", family="one-shot clip to C0 + Gaussian noise, then fine-tuning on D_r", paper=PAPER,
    forgets=False,
    summary="(ε, δ)-certified baseline: x = clip_C0(x̂) + N(0, σ²I), σ calibrated for sensitivity 2·C0 "
            "(classic Gaussian for ε ≤ 1, analytic Gaussian above), then noise-free fine-tuning on D_r.",
    defaults={"epochs": 10, "batch_size": 32, "lr": 0.1, "weight_decay": 5e-4, "epsilon": 1.0, "delta": 1e-5,
              "C0": 0.01, "sigma": None, "calibration": "auto", "frozen_params": "none", "buffers": "reject"},
    reference={**REFERENCE},
)
def _output_perturbation(h: dict[str, Any], num_classes: int) -> CertifiedUnlearner:
    rule = NoisyClip(variant="output_perturbation", epsilon=h["epsilon"], delta=h["delta"], C0=h["C0"],
                     sigma=h["sigma"], calibration=h["calibration"], T=0, frozen_params=h["frozen_params"],
                     buffers=h["buffers"], method="output-perturbation")
    return _build(h, rule)


def certified_retrain_recipe(epochs: int = 10, batch_size: int = 32, lr: float = 0.1, weight_decay: float = 5e-4,
                             augment: bool = False) -> Recipe:
    """The certified "retrain with the same budget" recipe (certified.md §8, §6): budget E epochs over D_r.

    Plain SGD (momentum 0), coupled weight decay 5e−4, linear one-cycle with peak ``lr`` over
    N = E·⌈|D_r|/b⌉ steps: the same optimizer, batch, data and step count as the certified presets' budget.
    Use it with the ``retrain`` preset (fresh init + this recipe on D_r)::

        ul.unlearn(model, task, method="retrain", **certified_retrain_recipe(epochs=10).to_dict())

    ``batch_size`` is 32 on digits (§9.6) and 128 on MNIST/CIFAR-10; ``augment`` must match the task's
    training transforms. The lr shape is :mod:`unlearnlab.training`'s ``onecycle``, the optax
    ``linear_onecycle_schedule`` of §6, the same function the certified presets' fine-tuning uses.
    """
    return Recipe(optimizer="sgd", lr=lr, momentum=0.0, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, schedule="onecycle", augment=augment)
