"""The real-data protocols: the Fashion-MNIST headline (``fmnist-random10``, ``fmnist-class<c>``) and the NeurIPS
2023 unlearning-challenge protocols at a CPU size on Fashion-MNIST (``neurips23-kit``,
``neurips23-official-N<N>``); docs/protocols.md.

All of them train :func:`~unlearnlab.models.zoo.fmnist_cnn` on the full Fashion-MNIST (60,000 training images,
of which 10 % per class are D_val, and the official 10,000 test images; Debian's ``dataset-fashion-mnist``
package or ``--root``) with :data:`FMNIST_RECIPE`, one original model per seed. Every iterative method gets the
unlearning budget :data:`FMNIST_BUDGETS` (2 epochs, a quarter of retraining; GA 1) and the values selected on D_val by
``unlearnlab tune --protocol fmnist-random10 --all-methods`` (:func:`tuned_hparams`, read from
``protocol_data/fmnist_tuned.yaml``; class-wise values were selected on class 0 and serve every class).

The SVC MIA is not computed here: libsvm on |D_test| + |D_test| = 20,000 points takes 10–15 s per fit, more than
most methods' whole unlearning, and its attack spread would take K such fits. The primary MIA is the NeurIPS 2023
kit's loss attack (``mia_loss_lr_cv``), with its spread over subsamples; the entropy attack is reported beside it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from unlearnlab.bench.config import DEFAULT_METHODS, parse_yaml
from unlearnlab.errors import UnlearnlabError
from unlearnlab.protocol_spec import DUALOPTIM_MIA, KIT_MIA, Protocol, QuickSize
from unlearnlab.training import Recipe

#: 8 epochs of SGD (lr 0.05, momentum 0.9, wd 5e-4), batch 128, cosine: 91 % test accuracy, ~50 s on one core
FMNIST_RECIPE = Recipe(lr=0.05, epochs=8, batch_size=128)
#: the digits quick sizes' recipe
QUICK_RECIPE = Recipe(epochs=30)
FMNIST_MIAS = (KIT_MIA, DUALOPTIM_MIA)
#: resampled subsamples of the loss MIA per cell: 10 logistic-regression fits each, so K = 10 (docs/metrics.md)
FMNIST_ATTACK_DRAWS = 10
#: U-LiRA shadow models (each trained on half of the 60,000-image pool)
FMNIST_SHADOWS = 16
FMNIST_QUICK_SHADOWS = 8
QUICK_METHODS = ("retrain", "ft", "rl", "salun")
#: the default methods with DualOptim as the generic wrapper on SalUn (``salun+dualoptim``: SalUn's own retain
#: optimizer, a separate AdamW for the forget loss), the form whose η_f was selected on D_val for these protocols
FMNIST_METHODS = tuple("salun+dualoptim" if m == "dualoptim/salun" else m for m in DEFAULT_METHODS)
#: unlearning budget of each method: 2 epochs over its data; GA, whose ascent on 5,400 forget images diverges
#: within its preset's 3 epochs, 1 epoch
FMNIST_BUDGETS: dict[str, dict[str, Any]] = {m: {"epochs": 1 if m == "ga" else 2} for m in FMNIST_METHODS
                                             if m != "retrain"}
#: where the selected values live (written by `unlearnlab tune --protocol … --all-methods`)
TUNED_FILE = "protocol_data/fmnist_tuned.yaml"
_DATA = ("Fashion-MNIST (60k train incl. 10 % D_val, 10k test) / fmnist_cnn (8 ep, one original per seed)")
_PAPER = "unlearnlab real-data headline"


def tuned_hparams(protocol: str) -> dict[str, dict[str, Any]]:
    """Method → values selected on D_val for ``protocol`` (``fmnist-random10`` or ``fmnist-class<c>``), as
    committed in ``protocol_data/fmnist_tuned.yaml``; empty when none were committed."""
    text = resources.files("unlearnlab").joinpath(TUNED_FILE).read_text(encoding="utf-8")
    data = parse_yaml(text, TUNED_FILE) or {}
    chosen = (data.get("protocols") or {}).get(protocol) or {}
    if not isinstance(chosen, dict) or not all(isinstance(v, dict) for v in chosen.values()):
        raise UnlearnlabError(f"{TUNED_FILE}: protocols.{protocol} must map methods to {{key: value}} mappings.")
    return {str(m): dict(v) for m, v in chosen.items()}


def protocol_hparams(protocol: str) -> dict[str, dict[str, Any]]:
    """The budgets joined by the selected values of ``protocol`` (selected values win)."""
    tuned = tuned_hparams(protocol)
    methods = dict.fromkeys([*FMNIST_BUDGETS, *tuned])
    return {m: {**FMNIST_BUDGETS.get(m, {}), **tuned.get(m, {})} for m in methods}


def _fmnist(name: str, forget: str, description: str, hparams_from: str, shadows: int | None,
            quick_shadows: int | None, version: int) -> Protocol:
    return Protocol(
        name=name, version=version, paper=_PAPER, description=description, dataset="fashion-mnist", model="fmnist_cnn",
        forget=forget, recipe=FMNIST_RECIPE, methods=FMNIST_METHODS, profile="default",
        hparams=protocol_hparams(hparams_from), primary_mia=KIT_MIA, mias=FMNIST_MIAS, seeds=(1, 2, 3, 4, 5),
        attack_draws=FMNIST_ATTACK_DRAWS, original_per_seed=True, ulira_shadows=shadows,
        family_param="c" if "<c>" in name else None,
        quick=QuickSize(methods=QUICK_METHODS, seeds=(1,), ulira_shadows=quick_shadows,
                        hparams={m: v for m, v in protocol_hparams(hparams_from).items() if m in QUICK_METHODS}),
    )


def fmnist_random() -> Protocol:
    """``fmnist-random10``: the headline table."""
    return _fmnist(
        "fmnist-random10", "random:0.1",
        f"Headline: {_DATA}, random 10 % of D (5,400), every default method with values selected on D_val, MIA = "
        f"the kit's loss attack ({FMNIST_ATTACK_DRAWS} subsamples) + entropy attack, U-LiRA ({FMNIST_SHADOWS} "
        f"shadows), noise-floor row, seeds 1-5. --quick: seed 1, retrain/ft/rl/salun, {FMNIST_QUICK_SHADOWS} "
        "shadows. v2: salun+dualoptim's forget_lr selected over seeds 1-3 (v1: seed 1 alone).",
        "fmnist-random10", FMNIST_SHADOWS, FMNIST_QUICK_SHADOWS, version=2)


def fmnist_class() -> Protocol:
    """``fmnist-class<c>``: class-wise forgetting of class c (U-LiRA does not apply to a class)."""
    return _fmnist(
        "fmnist-class<c>", "class:<c>",
        f"Class-wise headline: {_DATA}, D_f = all 5,400 train images of class c, the test set drops class c, "
        f"values selected on D_val for class 0, MIA = the kit's loss attack ({FMNIST_ATTACK_DRAWS} subsamples) + "
        "entropy attack, "
        "noise-floor row, seeds 1-5 (no U-LiRA: it attacks random forget sets). --quick: seed 1, "
        "retrain/ft/rl/salun.", "fmnist-class<c>", None, None, version=1)


def _digits_quick(**extra: Any) -> QuickSize:
    return QuickSize(dataset="digits", model="mlp", recipe=QUICK_RECIPE, methods=QUICK_METHODS, seeds=(1,),
                     hparams={}, **extra)


def neurips23_kit() -> Protocol:
    """``neurips23-kit``: the starting kit's evaluation (loss attack, test half) at a CPU size."""
    return Protocol(
        name="neurips23-kit", version=2, paper="NeurIPS 2023 Machine Unlearning Challenge (starting kit)",
        description=("The starting kit's evaluation at a CPU size: Fashion-MNIST / fmnist_cnn instead of CIFAR-10 / "
                     "ResNet-18 (the kit's forget index file and pretrained weights are not shipped), random 10 % "
                     "forgetting, TA and MIAs on the kit's test half of D_test (random_split 0.5/0.5, generator "
                     "seed 42), primary MIA = the kit's simple loss MIA (cross-validated accuracy, ideal 50 %), 10 "
                     "subsamples, seeds 1-3, values of fmnist-random10. --quick: digits / mlp, seed 1."),
        dataset="fashion-mnist", model="fmnist_cnn", forget="random:0.1", recipe=FMNIST_RECIPE,
        methods=FMNIST_METHODS, hparams=protocol_hparams("fmnist-random10"), primary_mia=KIT_MIA, mias=FMNIST_MIAS,
        seeds=(1, 2, 3), attack_draws=FMNIST_ATTACK_DRAWS, original_per_seed=True, test_half=True,
        quick=_digits_quick(),
    )


def neurips23_official() -> Protocol:
    """``neurips23-official-N<N>``: the official forget score with N models per family."""
    return Protocol(
        name="neurips23-official-N<N>", version=2,
        paper="NeurIPS 2023 Machine Unlearning Challenge (official scoring)",
        description=("The challenge's official score at a CPU size: forget_score_eps and final_score from N unlearned "
                     "vs N retrained models on one forget set (seed 1; resolution eps_bar = ceil(ln(N-1)); the "
                     "challenge used N = 512), Fashion-MNIST / fmnist_cnn, random 10 %, values of fmnist-random10, "
                     "plus the usual table with the kit's loss MIA. Name N: neurips23-official-N8. --quick: digits / "
                     "mlp."),
        dataset="fashion-mnist", model="fmnist_cnn", forget="random:0.1", recipe=FMNIST_RECIPE,
        methods=FMNIST_METHODS, hparams=protocol_hparams("fmnist-random10"), primary_mia=KIT_MIA, mias=FMNIST_MIAS,
        seeds=(1,), attack_draws=FMNIST_ATTACK_DRAWS, family_param="N", quick=_digits_quick(),
    )
