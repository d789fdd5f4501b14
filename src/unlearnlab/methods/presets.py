"""Named presets: the baselines of baselines.md with their small-scale and reference defaults.

``defaults`` are the small-scale values (digits / CPU; baselines.md "Small"), calibrated once by
``scripts/calibrate_digits.py`` (listed value × {1/3, 1, 3}, 3 seeds, Avg.Gap on D_val; docs/methods.md
records the grid). ``reference`` holds the paper's CIFAR-10 / ResNet-18 values
(``profile="reference"``). Every iterative preset shares the optimisation keys of :data:`SGD_KEYS`.
"""

from __future__ import annotations

from typing import Any

from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.objectives import (
    CrossEntropy,
    NegativeCrossEntropy,
    Objective,
    RandomLabelCE,
    ScrubRetain,
    TeacherKL,
)
from unlearnlab.methods.oneshot import Retrain
from unlearnlab.methods.registry import register_method
from unlearnlab.methods.rules import Alternate, Joint, Rule
from unlearnlab.training import Recipe

SGD_KEYS: dict[str, Any] = {
    "epochs": 10, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64, "schedule": "constant",
}
REF_BATCH = {"batch_size": 256}

SALUN = "SalUn (Fan et al., ICLR 2024)"
L1 = "ℓ1-sparse (Jia et al., NeurIPS 2023)"
SCRUB = "SCRUB (Kurmanji et al., NeurIPS 2023)"


def iterative(h: dict[str, Any], forget: Objective | None, retain: Objective | None, rule: Rule,
              **extra: Any) -> IterativeUnlearner:
    """An :class:`IterativeUnlearner` from the shared SGD keys of ``h`` plus method-specific ``extra``."""
    return IterativeUnlearner(
        forget=forget, retain=retain, rule=rule, epochs=h["epochs"], lr=h["lr"], momentum=h["momentum"],
        weight_decay=h["weight_decay"], batch_size=h["batch_size"], schedule=h["schedule"], **extra,
    )


@register_method(
    "retrain", family="one-shot", paper="every protocol (gold standard)", forgets=False,
    summary="Fresh initialisation, then the original training recipe on D_r only.",
    defaults={**Recipe().to_dict(), "milestones": ()},
    reference={"lr": 0.1, "epochs": 160, "batch_size": 256, "schedule": "multistep", "milestones": (91, 136),
               "augment": True},
)
def _retrain(h: dict[str, Any], num_classes: int) -> Retrain:
    return Retrain(Recipe.from_dict(h))


@register_method("ft", family="— | CE_r × joint", paper=L1, forgets=False,
                 summary="Fine-tune on D_r with cross-entropy.", defaults={**SGD_KEYS, "lr": 0.03},
                 reference={"lr": 0.01, **REF_BATCH})
def _ft(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, None, CrossEntropy(), Joint())


@register_method("ga", family="−CE_f | — × joint", paper=L1,
                 summary="Gradient ascent on D_f with the true labels.",
                 defaults={**SGD_KEYS, "epochs": 3, "lr": 1e-3},
                 reference={"epochs": 5, "lr": 1e-4, **REF_BATCH})
def _ga(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, NegativeCrossEntropy(), None, Joint())


@register_method("rl", family="RL_f | CE_r × alternate[shared]", paper=SALUN,
                 summary="Random labels on D_f (fresh per batch), then a D_r pass, one SGD.",
                 defaults=SGD_KEYS, reference={"lr": 0.013, **REF_BATCH})
def _rl(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, RandomLabelCE(num_classes), CrossEntropy(), Alternate())


@register_method("neggrad-plus", family="−(1−β)·CE_f | β·CE_r × joint (paired batches)", paper=SCRUB,
                 aliases=("neggrad+", "neggrad"),
                 summary="β·CE on a retain batch minus (1−β)·CE on the next forget batch.",
                 defaults={**SGD_KEYS, "lr": 0.03, "momentum": 0.0, "weight_decay": 0.0, "beta": 0.95},
                 reference={"epochs": 5, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, **REF_BATCH})
def _neggrad_plus(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    beta = h["beta"]
    return iterative(h, NegativeCrossEntropy(), CrossEntropy(), Joint(retain_weight=beta, forget_weight=1 - beta))


@register_method("l1-sparse", family="— | CE_r × joint + decaying ℓ1", paper=L1,
                 summary="Fine-tuning plus α_e·‖θ‖₁, α_e decaying linearly per epoch.",
                 defaults={**SGD_KEYS, "alpha": 2e-3, "no_l1_epochs": 0},
                 reference={"alpha": 1e-4, **REF_BATCH})
def _l1_sparse(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, None, CrossEntropy(), Joint(), l1=h["alpha"], no_l1_epochs=h["no_l1_epochs"])


@register_method("salun", family="RL_f | CE_r × alternate[shared] + saliency mask", paper=SALUN,
                 summary="RL restricted to the 50 % most forget-salient weights (exact mask, both phases).",
                 defaults={**SGD_KEYS, "lr": 0.01 / 3, "mask_fraction": 0.5},
                 reference={"lr": 0.013, **REF_BATCH})
def _salun(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, RandomLabelCE(num_classes), CrossEntropy(), Alternate(),
                     mask_fraction=h["mask_fraction"], mask_scope="both")


def _scrub(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    t = h["temperature"]
    return iterative(
        h, TeacherKL(temperature=t, sign=-1.0), ScrubRetain(gamma=h["gamma"], alpha=h["alpha"], temperature=t),
        Alternate(max_forget_epochs=h["max_epochs"]),
        forget_batch_size=h["forget_batch_size"], forget_lr=h["forget_lr"], milestones=tuple(h["milestones"]),
    )


SCRUB_KEYS = {"max_epochs": None, "gamma": 1.0, "alpha": 0.5, "temperature": 1.0, "forget_batch_size": None,
              "forget_lr": None, "milestones": ()}

register_method(
    "scrub", family="−KL_1 | CE_r + 0.5·KL_1 × alternate[shared]", paper=SCRUB + " as run by DualOptim code",
    aliases=("scrub-dualoptim",),
    summary="Max phase (away from the teacher on D_f) then min phase (CE + KL to the teacher on D_r).",
    defaults={**SGD_KEYS, "epochs": 5, "lr": 1.5e-2, **SCRUB_KEYS},
    reference={"epochs": 10, "lr": 0.01, **REF_BATCH},
)(_scrub)

register_method(
    "scrub-original", family="−KL_4 | 0.99·CE_r + 0.001·KL_4 × alternate[shared]", paper=SCRUB,
    summary="SCRUB's own CIFAR-10 setting: max phase in epochs 0–1 of 3, T = 4.",
    defaults={**SGD_KEYS, **SCRUB_KEYS, "epochs": 3, "lr": 5e-4, "max_epochs": 2, "gamma": 0.99,
              "alpha": 0.001, "temperature": 4.0, "batch_size": 128, "forget_batch_size": 32,
              "schedule": "multistep", "milestones": (3, 5, 9)},
)(_scrub)
