"""Language-model presets (docs/llm.md, "Methods"): forget objective × retain objective × rule, AdamW settings.

Names: ``llm/<forget>[-<retain>]`` for the single-optimizer methods of the LLM-unlearning literature (GA, GA+GD,
GA+KL, NPO, NPO+GD, NPO+KL, SimNPO, ME+GD, IDK+GD, IDK+AP, RMU), ``dualoptim/llm/<host>`` for the DualOptim
paper's own LLM runs (ME+GD and IDK+AP), and ``<preset>+<wrapper>`` only for the generic wrappers:
``llm/…+dualoptim`` (registered with the forget optimizer a copy of the retain optimizer's settings) and
``llm/ga-gd+eupmu``, ``llm/npo-gd+eupmu`` (new combinations, not in either paper).

An epoch is one pass over the forget set, as in TOFU, OpenUnlearning and DualOptim. Single-optimizer presets use
the ``joint`` rule driven by D_f: each step is w_f·F(B_f) + R(B_r) on a forget batch and the next retain batch
(OpenUnlearning's γ·forget + α·retain with α = 1; ``forget_weight`` = γ). ``dualoptim/llm/*`` follow DualOptim's
TOFU script: AdamW for both sides with separate states, forget lr = retain lr (``forget_lr=None`` means "equal to
``lr``"), weight decay 0.01 on both, one forget step for every five retain steps (``interleave(1, 5)``, an epoch
being a pass over D_f in forget steps), ME's forget weight 0.1. ``+eupmu`` keeps EUPMU's own clock (an epoch is a
pass over D_r with forget samples in proportion in every batch). The small-scale defaults are documented in
docs/llm.md with how they were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unlearnlab.methods.method import Derived, Method, compose
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import get_method, register
from unlearnlab.methods.rules import Interleave, Joint
from unlearnlab.methods.wrappers import DUALOPTIM, EUPMU, dualoptim, eupmu

FAMILY = "language_model"
#: the small-scale (tofu-mini-xs, 0.47 M parameters) AdamW settings every preset starts from; the lr of each preset
#: is calibrated on a validation forget set by scripts/calibrate_llm.py (docs/llm.md, "Methods")
SMALL: dict[str, Any] = {"epochs": 10, "lr": 1e-3, "batch_size": 16, "weight_decay": 0.01}
#: DualOptim / OpenUnlearning at Phi-1.5 / Llama-2 scale (TOFU): 5 epochs, lr 1e-5, effective batch 32
REFERENCE: dict[str, Any] = {"epochs": 5, "lr": 1e-5, "batch_size": 32, "weight_decay": 0.01}

OPEN_UNLEARNING = "OpenUnlearning (Dorna et al., arXiv 2506.12618)"
NPO_PAPER = "NPO (Zhang et al., COLM 2024)"
SIMNPO_PAPER = "SimNPO (Fan et al., arXiv 2410.07163)"
CLOSER_LOOK = "A Closer Look at Machine Unlearning for LLMs (Yuan et al., ICLR 2025)"
RMU_PAPER = "RMU (Li et al., WMDP, ICML 2024)"


def adamw(**overrides: Any) -> Optimization:
    return Optimization(**{**SMALL, "optimizer": "adamw", "momentum": 0.0, **overrides})


def joint() -> Derived:
    """``joint`` over forget-set epochs with the forget weight γ as the hyperparameter ``forget_weight``."""
    return Derived(("forget_weight",), lambda h: Joint(forget_weight=h["forget_weight"], epoch_over="forget"))


def lm(forget: str, retain: str | None, forget_weight: float = 1.0, **overrides: Any) -> Method:
    """A single-optimizer LM method; ``overrides`` change :data:`SMALL` or set objective options."""
    opt_keys = set(SMALL) | set(Optimization().options())
    opt = {k: v for k, v in overrides.items() if k in opt_keys}
    extra = {k: v for k, v in overrides.items() if k not in opt_keys}
    if retain is None:
        return compose(forget=forget, optimization=adamw(**opt), family=FAMILY, **extra)
    return compose(forget=forget, retain=retain, rule=joint(), optimization=adamw(**opt), family=FAMILY,
                   forget_weight=forget_weight, **extra)


#: name, forget, retain, forget weight, overrides (the calibrated lr where it is not SMALL's), paper, summary
PRESETS: list[tuple[str, str, str | None, float, dict[str, Any], str, str]] = [
    ("llm/ga", "ga", None, 1.0, {"lr": 3e-5}, OPEN_UNLEARNING,
     "Gradient ascent on the forget answers' NLL."),
    ("llm/ga-gd", "ga", "gd", 1.0, {"lr": 3e-4}, OPEN_UNLEARNING, "GA on D_f plus the NLL on D_r (GradDiff)."),
    ("llm/ga-kl", "ga", "kl", 1.0, {"lr": 1e-4}, OPEN_UNLEARNING, "GA on D_f plus KL to the reference model on D_r."),
    ("llm/npo", "npo", None, 1.0, {"lr": 3e-5}, NPO_PAPER,
     "NPO against the model before unlearning (β = 0.1)."),
    ("llm/npo-gd", "npo", "gd", 1.0, {}, NPO_PAPER, "NPO on D_f plus the NLL on D_r."),
    ("llm/npo-kl", "npo", "kl", 1.0, {"lr": 3e-5}, NPO_PAPER, "NPO on D_f plus KL to the reference model on D_r."),
    ("llm/simnpo", "simnpo", "gd", 1.0, {}, SIMNPO_PAPER,
     "SimNPO (length-normalised, no reference model) on D_f plus the NLL on D_r."),
    ("llm/me-gd", "max_entropy", "gd", 0.1, {}, CLOSER_LOOK,
     "Maximum entropy on forget answers (weight 0.1) plus the NLL on D_r."),
    ("llm/idk-gd", "idk", "gd", 1.0, {}, CLOSER_LOOK, "NLL of refusals on forget questions plus the NLL on D_r."),
    ("llm/idk-ap", "idk", "ap", 1.0, {"lr": 3e-4}, CLOSER_LOOK,
     "NLL of refusals on forget questions plus answer preservation (true answer over refusal) on D_r."),
    ("llm/rmu", "rmu", "rmu_retain", 1.0, {"lr": 3e-4}, RMU_PAPER,
     "Steer layer-ℓ activations on forget answers to c·u; keep them equal to the reference on retain answers."),
]


#: epochs of the +eupmu presets: passes over D_r (EUPMU's clock), ~50 steps at tofu-mini-xs like the hosts' 10
#: forget passes with their paired retain batches
EUPMU_EPOCHS = 2
#: DualOptim's LLM rows: host, forget objective, retain objective, forget weight, calibrated lr
DUALOPTIM_HOSTS = (("me-gd", "max_entropy", "gd", 0.1, 1e-3), ("idk-ap", "idk", "ap", 1.0, 1e-4))


def _paper_optimization(h: Mapping[str, Any]) -> Optimization:
    """AdamW on both sides, separate states; ``forget_lr`` None = ``lr``; one decay for both."""
    forget_lr = h["lr"] if h["forget_lr"] is None else h["forget_lr"]
    return Optimization(epochs=h["epochs"], lr=h["lr"], batch_size=h["batch_size"], weight_decay=h["weight_decay"],
                        optimizer="adamw", momentum=0.0, optimizers="adamw+adamw", forget_lr=forget_lr,
                        forget_weight_decay=h["weight_decay"])


def dualoptim_paper(forget: str, retain: str, forget_weight: float, lr: float) -> Method:
    """DualOptim's TOFU schedule for an LM host (see module docstring)."""
    return compose(forget=forget, retain=retain,
                   rule=Derived(("forget_weight",), lambda h: Interleave(1, 5, forget_weight=h["forget_weight"],
                                                                         epoch_over="forget")),
                   optimization=Derived(("epochs", "lr", "batch_size", "weight_decay", "forget_lr"),
                                        _paper_optimization),
                   family=FAMILY, forget_weight=forget_weight, forget_lr=None, **{**SMALL, "lr": lr})


def _register_all() -> None:
    for name, forget, retain, weight, overrides, paper, summary in PRESETS:
        retain_part = f" | {retain}" if retain else " | —"
        weight_part = f"{weight}·" if weight != 1.0 else ""
        register(name, lm(forget, retain, weight, **overrides),
                 composition=f"{weight_part}{forget}{retain_part} × joint[adamw, epoch = D_f pass]", paper=paper,
                 summary=summary,
                 reference=REFERENCE)
    for host, forget, retain, weight, lr in DUALOPTIM_HOSTS:
        register(f"dualoptim/llm/{host}", dualoptim_paper(forget, retain, weight, lr),
                 composition=f"{forget} | {retain} × interleave(1, 5)[adamw+adamw, forget lr = lr]",
                 paper=DUALOPTIM + ", TOFU script",
                 summary=f"llm/{host} as DualOptim's TOFU runs: two AdamW states over the same parameters, one "
                         "forget step per five retain steps, equal learning rates.", reference=REFERENCE)
    for name, *_ in PRESETS:
        info = get_method(name)
        wrapped = dualoptim(info, f"{name}+dualoptim", forget_lr=info.defaults["lr"],
                            forget_weight_decay=info.defaults["weight_decay"])
        register(wrapped.name, wrapped.method, composition=wrapped.composition, paper=DUALOPTIM,
                 summary=wrapped.summary + " Forget AdamW with the retain side's lr and decay (DualOptim's LLM "
                 "setting).", reference={**REFERENCE, "forget_lr": REFERENCE["lr"]})
    for host in ("llm/ga-gd", "llm/npo-gd"):
        wrapped = eupmu(get_method(host), f"{host}+eupmu", epochs=EUPMU_EPOCHS)
        register(wrapped.name, wrapped.method, composition=wrapped.composition, paper=EUPMU,
                 summary=wrapped.summary + " A new combination: neither paper runs EUPMU on language models.",
                 reference=REFERENCE)


_register_all()
