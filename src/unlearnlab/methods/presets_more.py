"""Presets of baselines.md §9–§12: ``iu``, ``boundary-shrink``, ``boundary-expand``, ``sfron``, ``sfron+dualoptim``.

``defaults`` are the small-scale (digits / CPU) values; ``reference`` the CIFAR-10 / ResNet-18 values of the
reference code. IU's α has no reference value (specs/README.md §2.4): the reference profile requires ``alpha``.
Calibration: docs/methods.md.
"""

from __future__ import annotations

from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.boundary import BoundaryExpand, NeighbourLabelCE, ShadowCE
from unlearnlab.methods.influence import InfluenceUnlearning
from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.objectives import CrossEntropy
from unlearnlab.methods.presets import REF_BATCH, SGD_KEYS, iterative
from unlearnlab.methods.presets_dualoptim import _register as register_dualoptim
from unlearnlab.methods.registry import register_method
from unlearnlab.methods.rules import Joint
from unlearnlab.methods.rules.alternate import Interleave
from unlearnlab.methods.sfron import SFRonUnlearner, WeightedAscent

BOUNDARY = "Boundary Unlearning (Chen et al., CVPR 2023)"
SFRON = "SFR-on (Huang et al., arXiv 2409.19732)"
L1 = "ℓ1-sparse (Jia et al., NeurIPS 2023), WoodFisher IU"


@register_method(
    "iu", family="one-shot", paper=L1,
    summary="One step θ + α·F⁻¹v, v = n_f/n·(ḡ_f − ḡ_r), F⁻¹ by the reference WoodFisher surrogate recursion.",
    # digits: the small grid {0.03, …, 3} ties (a no-op at this scale); the largest step is pinned
    defaults={"alpha": 3.0, "n_const": 1000, "batch_size": 64, "mask_fraction": None},
    reference={"alpha": None, "batch_size": 256},
)
def _iu(h: dict[str, Any], num_classes: int) -> InfluenceUnlearning:
    if h["alpha"] is None:
        raise UnlearnlabError("IU's step α has no reference default (the benchmark searches {0.1, 0.3, 1, 3, 10} "
                              "by Avg.Gap on D_val): pass alpha=... .")
    return InfluenceUnlearning(alpha=h["alpha"], n_const=h["n_const"], batch_size=h["batch_size"],
                               mask_fraction=h["mask_fraction"])


#: digits-calibrated lr: listed 1e-3 × {1/3, 1, 3}, 1/3 selected for both (docs/methods.md)
BOUNDARY_SMALL = {**SGD_KEYS, "epochs": 5, "lr": 1e-3 / 3, "mask_fraction": None}
BOUNDARY_REF = {"epochs": 10, "lr": 4e-5, **REF_BATCH}


@register_method(
    "boundary-shrink", family="CE_f to the FGSM-neighbour label | — × joint", paper=BOUNDARY,
    summary="CE on clean D_f inputs towards the label the frozen original gives their FGSM neighbour (b = 0.1).",
    defaults={**BOUNDARY_SMALL, "bound": 0.1}, reference=BOUNDARY_REF,
)
def _boundary_shrink(h: dict[str, Any], num_classes: int) -> IterativeUnlearner:
    return iterative(h, NeighbourLabelCE(bound=h["bound"]), None, Joint(), mask_fraction=h["mask_fraction"])


@register_method(
    "boundary-expand", family="CE_f to a shadow class (+ head expand, prune) | — × joint", paper=BOUNDARY,
    summary="Add a shadow output C, train D_f towards it, then prune the shadow row (prune_shadow=True).",
    defaults={**BOUNDARY_SMALL, "prune_shadow": True}, reference=BOUNDARY_REF,
)
def _boundary_expand(h: dict[str, Any], num_classes: int) -> BoundaryExpand:
    inner = iterative(h, ShadowCE(), None, Joint(), mask_fraction=h["mask_fraction"])
    return BoundaryExpand(inner, prune_shadow=h["prune_shadow"])


SFRON_SMALL: dict[str, Any] = {
    "iterations": 300, "epochs": None, "k": 5, "alpha0": 25.0, "lam": 0.5, "tau": 1.0, "clip": 7.0, "lr": 0.03,
    "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64, "schedule": "cosine", "fisher_batch_size": 256,
}
SFRON_REF = {"iterations": 1500, "epochs": None, "lr": 0.01, **REF_BATCH}


def _sfron(h: dict[str, Any], num_classes: int) -> SFRonUnlearner:
    """``epochs`` (optional) replaces ``iterations`` by E retain passes, N_r = E·⌈n_r/b⌉ (set at run time)."""
    iterations = h["iterations"] if h.get("epochs") is None else None
    return SFRonUnlearner(
        forget=WeightedAscent(alpha0=h["alpha0"], lam=h["lam"], total=iterations or 1, every=h["k"]),
        retain=CrossEntropy(), rule=Interleave(1, h["k"], iterations=iterations), epochs=h.get("epochs") or 1,
        lr=h["lr"],
        momentum=h["momentum"], weight_decay=h["weight_decay"], batch_size=h["batch_size"],
        schedule=h["schedule"], clip=h["clip"], tau=h["tau"], fisher_batch_size=h["fisher_batch_size"],
    )


register_method(
    "sfron", family="−α_t·Σw_i·CE_f | CE_r × alternate[shared] Interleave(1,5) + Fisher-ratio mask + clip",
    paper=SFRON, defaults=SFRON_SMALL, reference=SFRON_REF,
    summary="Adaptive weighted gradient ascent on Fisher-salient weights, interleaved 1:5 with retain CE steps.",
)(_sfron)

#: DualOptim host: AdamW forget, SGD retain, cosine on both on the iteration clock (dualoptim §8)
register_dualoptim("sfron", "sfron", _sfron, None,
                   "−α_t·Σw_i·CE_f | CE_r, Interleave(1, 5) + Fisher mask",
                   1e-3, {}, {"iterations": 1500, "epochs": None, "schedule": "cosine", "milestones": ()})
