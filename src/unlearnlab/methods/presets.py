"""Named presets: the baselines with their small-scale and reference defaults (docs/methods.md, "Baselines").

``defaults`` are the small-scale values (digits / CPU), calibrated once by ``scripts/calibrate_digits.py`` (listed
value × {1/3, 1, 3}, 3 seeds, Avg.Gap on D_val; docs/methods.md records the grid). ``reference`` holds the paper's
CIFAR-10 / ResNet-18 values (``profile="reference"``). Every iterative preset is a :func:`compose` of named
objectives (resolved by the task family), a rule, modifiers and SGD settings (:func:`sgd`).
"""

from __future__ import annotations

from typing import Any

from unlearnlab.methods.method import Derived, compose
from unlearnlab.methods.modifiers.masking import SaliencyMask
from unlearnlab.methods.modifiers.penalties import Penalty
from unlearnlab.methods.oneshot import Retrain
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import OneShot, register
from unlearnlab.methods.rules import Alternate, Joint
from unlearnlab.training import Recipe

SGD_KEYS: dict[str, Any] = {
    "epochs": 10, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64, "schedule": "constant",
}
REF_BATCH = {"batch_size": 256}

SALUN = "SalUn (Fan et al., ICLR 2024)"
L1 = "ℓ1-sparse (Jia et al., NeurIPS 2023)"
SCRUB = "SCRUB (Kurmanji et al., NeurIPS 2023)"


def sgd(**overrides: Any) -> Optimization:
    """SGD settings: :data:`SGD_KEYS` with ``overrides``."""
    return Optimization(**{**SGD_KEYS, **overrides})


register(
    "retrain", OneShot(lambda h, family: Retrain(Recipe.from_dict(h)),
                       {**Recipe().to_dict(), "milestones": (), "grad_clip": None}, ("classification", "generation")),
    composition="one-shot", paper="every protocol (gold standard)", forgets=False,
    summary="Fresh initialisation, then the original training recipe on D_r only.",
    reference={"lr": 0.1, "epochs": 160, "batch_size": 256, "schedule": "multistep", "milestones": (91, 136),
               "augment": True},
)

register("ft", compose(retain="loss", optimization=sgd(lr=0.03)), composition="— | L_r × joint", paper=L1,
         forgets=False, summary="Fine-tune on D_r with the family's loss.", reference={"lr": 0.01, **REF_BATCH})

register("ga", compose(forget="neg_loss", optimization=sgd(epochs=3, lr=1e-3)), composition="−L_f | — × joint",
         paper=L1, summary="Gradient ascent on D_f with the true labels.",
         reference={"epochs": 5, "lr": 1e-4, **REF_BATCH})

register("rl", compose(forget="random_labels", retain="loss", rule=Alternate(), optimization=sgd()),
         composition="RL_f | L_r × alternate[shared]", paper=SALUN,
         summary="Random labels on D_f (fresh per batch), then a D_r pass, one SGD.",
         reference={"lr": 0.013, **REF_BATCH})

register("neggrad-plus", compose(forget="neg_loss", retain="loss",
                                 rule=Derived(("beta",), lambda h: Joint(beta=h["beta"])),
                                 optimization=sgd(lr=0.03, momentum=0.0, weight_decay=0.0), beta=0.95),
         composition="−(1−β)·L_f | β·L_r × joint (paired batches)", paper=SCRUB, aliases=("neggrad+", "neggrad"),
         summary="β·L on a retain batch minus (1−β)·L on the next forget batch.",
         reference={"epochs": 5, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, **REF_BATCH})

register("l1-sparse", compose(retain="loss", modifiers=[
    Derived(("alpha", "no_l1_epochs"),
            lambda h: Penalty("l1", h["alpha"], "linear_epochs", off_epochs=h["no_l1_epochs"]))],
    optimization=sgd(), alpha=2e-3, no_l1_epochs=0),
    composition="— | L_r × joint + decaying ℓ1", paper=L1,
    summary="Fine-tuning plus α_e·‖θ‖₁, α_e decaying linearly per epoch.", reference={"alpha": 1e-4, **REF_BATCH})

register("salun", compose(forget="random_labels", retain="loss", rule=Alternate(), modifiers=[SaliencyMask(0.5)],
                          optimization=sgd(lr=0.01 / 3)),
         composition="RL_f | L_r × alternate[shared] + saliency mask", paper=SALUN,
         summary="RL restricted to the 50 % most forget-salient weights (exact mask, both phases).",
         reference={"lr": 0.013, **REF_BATCH})

register("scrub", compose(forget="teacher_kl", retain="scrub_retain", rule=Alternate(),
                          optimization=sgd(epochs=5, lr=1.5e-2)),
         composition="−KL_1 | CE_r + 0.5·KL_1 × alternate[shared]", paper=SCRUB + " as run by DualOptim code",
         aliases=("scrub-dualoptim",),
         summary="Max phase (away from the teacher on D_f) then min phase (CE + KL to the teacher on D_r).",
         reference={"epochs": 10, "lr": 0.01, **REF_BATCH})

register("scrub-original", compose(
    forget="teacher_kl", retain="scrub_retain", rule=Alternate(max_epochs=2),
    optimization=sgd(epochs=3, lr=5e-4, batch_size=128, forget_batch_size=32, schedule="multistep",
                     milestones=(3, 5, 9)), temperature=4.0, gamma=0.99, alpha=0.001),
    composition="−KL_4 | 0.99·CE_r + 0.001·KL_4 × alternate[shared]", paper=SCRUB,
    summary="SCRUB's own CIFAR-10 setting: max phase in epochs 0–1 of 3, T = 4.")
