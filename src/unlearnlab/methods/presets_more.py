"""Presets ``iu``, ``boundary-shrink``, ``boundary-expand``, ``sfron`` (docs/methods.md, "Baselines").

``defaults`` are the small-scale (digits / CPU) values; ``reference`` the CIFAR-10 / ResNet-18 values of the
reference code. IU's α has no reference value: the reference profile requires ``alpha``. Calibration:
docs/methods.md.
"""

from __future__ import annotations

from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.boundary import BoundaryExpand, NeighbourLabelCE, ShadowCE
from unlearnlab.methods.influence import InfluenceUnlearning
from unlearnlab.methods.method import Derived, compose
from unlearnlab.methods.modifiers.gradients import GradientClip
from unlearnlab.methods.modifiers.masking import FisherMask, SaliencyMask
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.presets import REF_BATCH, SGD_KEYS, sgd
from unlearnlab.methods.registry import OneShot, register, register_method
from unlearnlab.methods.rules.alternate import Interleave

BOUNDARY = "Boundary Unlearning (Chen et al., CVPR 2023)"
SFRON = "SFR-on (Huang et al., arXiv 2409.19732)"
L1 = "ℓ1-sparse (Jia et al., NeurIPS 2023), WoodFisher IU"


@register_method(
    "iu", composition="one-shot", paper=L1,
    summary="One step θ + α·F⁻¹v, v = n_f/n·(ḡ_f − ḡ_r), F⁻¹ by the reference WoodFisher surrogate recursion.",
    # digits: the small grid {0.03, …, 3} ties (a no-op at this scale); the largest step is pinned
    defaults={"alpha": 3.0, "n_const": 1000, "batch_size": 64, "mask_fraction": None},
    reference={"alpha": None, "batch_size": 256}, families=("classification", "generation", "language_model"),
)
def _iu(h: dict[str, Any], family) -> InfluenceUnlearning:
    if h["alpha"] is None:
        raise UnlearnlabError("IU's step α has no reference default (the benchmark searches {0.1, 0.3, 1, 3, 10} "
                              "by Avg.Gap on D_val): pass alpha=... .")
    return InfluenceUnlearning(alpha=h["alpha"], n_const=h["n_const"], batch_size=h["batch_size"],
                               mask_fraction=h["mask_fraction"])


def optional_mask() -> Derived:
    """A saliency mask when ``mask_fraction`` is set, else none (``mask_fraction=None``)."""
    return Derived(("mask_fraction",),
                   lambda h: None if h["mask_fraction"] is None else SaliencyMask(h["mask_fraction"]))


#: digits-calibrated lr: listed 1e-3 × {1/3, 1, 3}, 1/3 selected for both (docs/methods.md)
BOUNDARY_SMALL = {"epochs": 5, "lr": 1e-3 / 3}
BOUNDARY_REF = {"epochs": 10, "lr": 4e-5, **REF_BATCH}

register("boundary-shrink", compose(forget=NeighbourLabelCE(), modifiers=[optional_mask()],
                                    optimization=sgd(**BOUNDARY_SMALL), mask_fraction=None),
         composition="CE_f to the FGSM-neighbour label | — × joint", paper=BOUNDARY, reference=BOUNDARY_REF,
         summary="CE on clean D_f inputs towards the label the frozen original gives their FGSM neighbour (b = 0.1).")

_shadow = compose(forget=ShadowCE(), modifiers=[optional_mask()], optimization=sgd(**BOUNDARY_SMALL),
                  mask_fraction=None)
register("boundary-expand",
         OneShot(lambda h, family: BoundaryExpand(_shadow.build({k: v for k, v in h.items() if k != "prune_shadow"},
                                                                family), prune_shadow=h["prune_shadow"]),
                 {**_shadow.defaults, "prune_shadow": True}),
         composition="CE_f to a shadow class (+ head expand, prune) | — × joint", paper=BOUNDARY,
         reference=BOUNDARY_REF,
         summary="Add a shadow output C, train D_f towards it, then prune the shadow row (prune_shadow=True).")


def _sfron_rule(h: dict[str, Any]) -> Interleave:
    """``epochs`` (optional) replaces ``iterations`` by E retain passes, N_r = E·⌈n_r/b⌉ (set at run time)."""
    return Interleave(1, h["k"], iterations=h["iterations"] if h["epochs"] is None else None)


def _sfron_optimization(h: dict[str, Any]) -> Optimization:
    return Optimization(**{k: h[k] for k in SFRON_OPT}, epochs=h["epochs"] or 1)


SFRON_OPT = ("lr", "momentum", "weight_decay", "batch_size", "schedule", "optimizer", "optimizers", "forget_lr",
             "forget_batch_size", "betas", "forget_weight_decay", "forget_betas", "forget_schedule", "milestones")
SFRON_SMALL: dict[str, Any] = {
    **{k: v for k, v in Optimization(**SGD_KEYS).options().items() if k in SFRON_OPT},
    "iterations": 300, "epochs": None, "k": 5, "lr": 0.03, "schedule": "cosine",
}
SFRON_REF = {"iterations": 1500, "epochs": None, "lr": 0.01, **REF_BATCH}

SFRON_METHOD = compose(
    forget="weighted_ascent", retain="loss", rule=Derived(("k", "iterations", "epochs"), _sfron_rule),
    modifiers=[FisherMask(), GradientClip(7.0, clip_phases=("forget",))],
    optimization=Derived((*SFRON_OPT, "epochs"), _sfron_optimization), **SFRON_SMALL)
register("sfron", SFRON_METHOD,
         composition="−α_t·Σw_i·L_f | L_r × alternate[shared] Interleave(1,5) + Fisher-ratio mask + clip",
         paper=SFRON, reference=SFRON_REF,
         summary="Adaptive weighted gradient ascent on Fisher-salient weights, interleaved 1:5 with retain steps.")
