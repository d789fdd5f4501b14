"""Certified unlearning presets (spec certified.md §3–§6, §9.6): ``certified-gradclip``, ``certified-modelclip``.

Both are ``— | CE_r × noisy_clip``: a noisy clipped phase on D_r from the original model, an (ε, δ) certificate
(:class:`unlearnlab.certify.Certificate`, returned as ``stats["certificate"]`` in ``state_dict`` form), then
noise-free fine-tuning (SGD momentum 0, coupled wd 5e−4, linear one-cycle with peak ``lr``) for the rest of the
``epochs`` budget. Defaults are the scaled CPU variant (§9.6, digits, batch 32, E = 10); ``reference`` is the
MNIST/CIFAR-10 batch 128.
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
