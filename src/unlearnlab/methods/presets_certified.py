"""Certified unlearning presets (docs/methods.md, "Certified unlearning"): ``certified-gradclip``,
``certified-modelclip`` and the certified baseline ``output-perturbation``.

Both are ``— | L_r × noisy_clip``: a noisy clipped phase on D_r from the original model, an (ε, δ) certificate
(:class:`unlearnlab.certify.Certificate`, returned as ``stats["certificate"]`` in ``state_dict`` form), then
noise-free fine-tuning (SGD momentum 0, coupled wd 5e−4, linear one-cycle with peak ``lr``) for the rest of the
``epochs`` budget. Defaults are the scaled CPU variant (digits, batch 32, E = 10); ``reference`` is the
MNIST/CIFAR-10 batch 128.

``output-perturbation`` is one-shot: x = clip_{C0}(x̂) + N(0, σ²I) with σ calibrated for sensitivity 2C0
(classic Gaussian where valid, ε ≤ 1; analytic Gaussian above), then the same fine-tuning for the whole budget.
The certified "retrain with the same budget" baseline is the ``retrain`` preset run with
:func:`certified_retrain_recipe` (``retrain`` = fresh init + the protocol's retrain recipe:
docs/methods.md, "Retrain with the same budget").
"""

from __future__ import annotations

from typing import Any

from unlearnlab.methods.method import Derived, compose
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import register
from unlearnlab.methods.rules.noisy_clip import NoisyClip
from unlearnlab.training import Recipe

PAPER = "Certified unlearning for neural networks (Koloskova et al., ICML 2025)"

#: fine-tuning: plain SGD (momentum 0), coupled weight decay, the one-cycle shape is the rule's own
OPT_KEYS = ("epochs", "batch_size", "lr", "weight_decay")
COMMON: dict[str, Any] = {"epochs": 10, "batch_size": 32, "lr": 0.1, "weight_decay": 5e-4}
REFERENCE = {"batch_size": 128}


def _optimization() -> Derived:
    return Derived(OPT_KEYS, lambda h: Optimization(epochs=h["epochs"], batch_size=h["batch_size"], lr=h["lr"],
                                                    momentum=0.0, weight_decay=h["weight_decay"]))


def certified(variant: str, method: str, **rule: Any) -> Any:
    """``— | L_r × noisy_clip[variant]`` with the shared fine-tuning settings."""
    return compose(retain="loss", rule=NoisyClip(variant=variant, method=method, **rule),
                   optimization=_optimization(), **COMMON)


register(
    "certified-gradclip", certified("gradient_clip", "certified-gradclip", C1=1.0, lam=500.0),
    composition="— | L_r × noisy_clip[gradient clip C1] + fine-tuning", paper=PAPER, forgets=False,
    summary="(ε, δ)-certified: clip model to C0, T noisy steps x ← x − γ(clip_C1(g) + λx) + N(0, σ²I), "
            "then noise-free fine-tuning on D_r (pabi-rdp accountant, tight conversion).",
    reference=REFERENCE,
)
register(
    "certified-modelclip", certified("model_clip", "certified-modelclip", C2=0.5, sigma=0.5, lam=10.0),
    composition="— | L_r × noisy_clip[model clip C2] + fine-tuning", paper=PAPER, forgets=False,
    summary="(ε, δ)-certified: x ← clip_C2(x − γ(g + λx)) + N(0, σ²I) until δ_t ≤ δ, then noise-free "
            "fine-tuning on D_r (hockey-stick contraction accountant).",
    reference=REFERENCE,
)
register(
    "output-perturbation", certified("output_perturbation", "output-perturbation", C0=0.01, T=0),
    composition="one-shot clip to C0 + Gaussian noise, then fine-tuning on D_r", paper=PAPER, forgets=False,
    summary="(ε, δ)-certified baseline: x = clip_C0(x̂) + N(0, σ²I), σ calibrated for sensitivity 2·C0 "
            "(classic Gaussian for ε ≤ 1, analytic Gaussian above), then noise-free fine-tuning on D_r.",
    reference=REFERENCE,
)

def certified_retrain_recipe(epochs: int = 10, batch_size: int = 32, lr: float = 0.1, weight_decay: float = 5e-4,
                             augment: bool = False) -> Recipe:
    """The certified "retrain with the same budget" recipe: budget E epochs over D_r.

    Plain SGD (momentum 0), coupled weight decay 5e−4, linear one-cycle with peak ``lr`` over
    N = E·⌈|D_r|/b⌉ steps: the same optimizer, batch, data and step count as the certified presets' budget.
    Use it with the ``retrain`` preset (fresh init + this recipe on D_r)::

        ul.unlearn(model, task, method="retrain", **certified_retrain_recipe(epochs=10).to_dict())

    ``batch_size`` is 32 on digits and 128 on MNIST/CIFAR-10; ``augment`` must match the task's
    training transforms. The lr shape is :mod:`unlearnlab.training`'s ``onecycle``, the optax
    ``linear_onecycle_schedule``, the same function the certified presets' fine-tuning uses (docs/certificates.md,
    "Noise-free fine-tuning").
    """
    return Recipe(optimizer="sgd", lr=lr, momentum=0.0, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, schedule="onecycle", augment=augment)
