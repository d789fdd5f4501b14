"""Named protocols: everything a reported number depends on, pinned under one name and version.

A *grid* protocol pins the dataset and its split rule (``val_seed`` = 1, docs/protocols.md), the model, the
forget spec, the original and retrain recipes, the methods and their hyperparameter profile, the seeds, the
primary MIA and the aggregation (std ddof, which gap variants are shown). ``unlearnlab run --protocol NAME``
turns it into a :class:`~unlearnlab.bench.config.RunConfig`; every result row stores ``"<name> v<version>"``
(``"<name> v<version> quick"`` for the quick size) in its ``protocol`` column, so reports never mix protocols.

An *experiment* protocol (MinNorm-OG studies, certified budget curves) instead names a function
``"module:function"`` under :mod:`unlearnlab.experiments`, resolved with :mod:`importlib` from a fixed
allow-list of modules (never ``eval``), implementing ``run(ctx: ExperimentContext) -> str``.

Each protocol has a ``quick`` size (small data, model, epochs and seeds; minutes on 2 CPU cores) next to its
full size (the paper's settings; GPUs and the real datasets). Any change of a pinned field is a new name or a
new version. The :class:`Protocol` object is defined in :mod:`unlearnlab.protocol_spec`; the Fashion-MNIST and
NeurIPS 2023 protocols in :mod:`unlearnlab.protocols_fmnist`. See docs/protocols.md.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from unlearnlab.bench.config import DEFAULT_METHODS
from unlearnlab.data import list_datasets
from unlearnlab.data.forget import ForgetSpec
from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.evaluation import DEFAULT_MIAS
from unlearnlab.generation.tiers import PROTOCOL_METHODS
from unlearnlab.methods import get_method
from unlearnlab.models import list_models
from unlearnlab.protocol_spec import (
    COMPAT_FLAGS,
    DUALOPTIM_MIA,
    GAP_VARIANTS,
    GRID_COMPAT,
    KIT_MIA,
    SALUN_MIA,
    Protocol,
    QuickSize,
)
from unlearnlab.protocols_fmnist import fmnist_class, fmnist_random, neurips23_kit, neurips23_official
from unlearnlab.training import Recipe

__all__ = ["COMPAT_FLAGS", "DUALOPTIM_MIA", "GAP_VARIANTS", "GRID_COMPAT", "KIT_MIA", "SALUN_MIA", "Protocol",
           "QuickSize", "aliases_of", "get_protocol", "known_names", "list_protocols", "protocol_of_label",
           "register_protocol", "resolve_experiment", "validate"]

#: the only modules an experiment protocol may point to
EXPERIMENT_MODULES = frozenset({"unlearnlab.experiments.minnorm", "unlearnlab.experiments.certified_budget",
                                "unlearnlab.experiments.ddpm", "unlearnlab.experiments.tofu"})


# --------------------------------------------------------------------------------------------- recipes

#: SalUn/OPTML original: SGD 0.1, momentum 0.9, wd 5e-4, batch 256, 182 epochs, MultiStep(91, 136), crop + flip
CIFAR_ORIGINAL = Recipe(lr=0.1, epochs=182, batch_size=256, schedule="multistep", milestones=(91, 136), augment=True)
#: Unlearn-Sparse README ``--unlearn retrain``: 160 epochs, lr 0.1, MultiStep(91, 136) (docs/methods.md)
CIFAR_RETRAIN = CIFAR_ORIGINAL.replace(epochs=160)
#: the small-scale recipe (docs/methods.md): what a plain ``unlearnlab run`` trains digits with
DIGITS_RECIPE = Recipe()
#: quick sizes: the small recipe, fewer epochs
QUICK_RECIPE = Recipe(epochs=30)

SALUN_METHODS = ("retrain", "ft", "rl", "ga", "iu", "boundary-shrink", "boundary-expand", "l1-sparse", "salun",
                 "eupmu-reference", "salun+eupmu")
SALUN_QUICK_METHODS = ("retrain", "ft", "rl", "ga", "l1-sparse", "salun", "salun+eupmu")
DUALOPTIM_METHODS = ("retrain", "ft", "ga", "rl", "salun", "sfron", "dualoptim/rl", "dualoptim/salun",
                     "dualoptim/sfron", "dualoptim/salun-shared")
DUALOPTIM_QUICK_METHODS = ("retrain", "rl", "salun", "dualoptim/rl", "dualoptim/salun", "dualoptim/salun-shared")
#: the paper searches η_f (forget lr) per host and publishes no value (docs/protocols.md)
DUALOPTIM_SEARCHED = {m: ("forget_lr",) for m in DUALOPTIM_METHODS if m.startswith("dualoptim/")}

#: EUPMU's per-setting values in its code's README (CIFAR-10, ResNet-18); where the scripts differ,
#: docs/protocols.md says how. 1 % and 5 % have none: they use the 10 % values.
EUPMU_VALUES: dict[str, dict[str, Any]] = {
    "random10": {"lr": 1e-3, "epsilon": -0.01},
    "random30": {"lr": 1e-2, "epsilon": -0.01},
    "random50": {"lr": 3e-2, "epsilon": -0.05, "lambda_init": 0.3},
    "class": {"lr": 5e-3, "epsilon": -0.05},
    "cifar100-random10": {"lr": 3e-3, "epsilon": -0.25, "lambda_lr": 5.0},
}
#: the EUPMU code's behaviour (mixed batches, batch-share losses, buffers updated by the signal forward, λ unprojected)
EUPMU_REFERENCE_OPTIONS = {"joint_forward": True, "loss_scale": "batch_share", "signal_mode": "reference",
                           "lambda_projection": "use_only"}
#: IU's step in the EUPMU code's README for CIFAR-10 (random and class-wise)
IU_ALPHA_CIFAR10 = 2.0
#: Boundary Shrink/Expanding lrs where the EUPMU code's baseline scripts differ from the profile's 4e-5 (random 10 %)
BOUNDARY_VALUES: dict[str, dict[str, dict[str, Any]]] = {
    "random30": {"boundary-expand": {"lr": 1e-4}},
    "class": {"boundary-expand": {"lr": 1e-4}, "boundary-shrink": {"lr": 8e-5}},
}
DUALOPTIM_GAPS = GAP_VARIANTS

_QUICK_NOTE = "--quick: digits (8x8, 1,302 train) / mlp, small recipe 30 epochs, seeds 1-2, fewer methods."
_SALUN_PAPER = "SalUn (Fan et al., ICLR 2024); EUPMU"


def _salun_settings(setting: str) -> dict[str, Any]:
    """What every SalUn-family CIFAR protocol shares: model, recipes, methods, MIA, seeds, the quick size; and the
    per-setting EUPMU values (``setting``: a key of :data:`EUPMU_VALUES`)."""
    eupmu = EUPMU_VALUES[setting]
    hparams = {"eupmu-reference": dict(eupmu), "salun+eupmu": {**EUPMU_REFERENCE_OPTIONS, **eupmu}}
    searched: dict[str, tuple[str, ...]] = {}
    if setting.startswith("cifar100"):
        searched["iu"] = ("alpha",)  # the EUPMU code gives α for CIFAR-10 only
    else:
        hparams["iu"] = {"alpha": IU_ALPHA_CIFAR10}
    hparams.update(BOUNDARY_VALUES.get(setting, {}))
    return dict(model="resnet18", recipe=CIFAR_ORIGINAL, retrain_recipe=CIFAR_RETRAIN, methods=SALUN_METHODS,
                hparams=hparams, searched=searched,
                profile="reference", primary_mia=SALUN_MIA, seeds=(1, 2, 3, 4, 5),
                quick=QuickSize(dataset="digits", model="mlp", methods=SALUN_QUICK_METHODS, seeds=(1, 2),
                                recipe=QUICK_RECIPE, retrain_recipe=QUICK_RECIPE, profile="default", hparams={},
                                searched={}))


def _salun_random(percent: int, dataset: str = "cifar10") -> Protocol:
    fraction = percent / 100
    return Protocol(
        name=f"salun-{dataset}-random{percent}", version=1, paper=_SALUN_PAPER,
        description=(f"SalUn/OPTML random forgetting of {percent}% of the 45k {dataset.upper()} train split "
                     f"(val_seed 1), ResNet-18, original 182 ep / retrain 160 ep, MIA-Efficacy (docs/metrics.md), "
                     "seeds 1-5, "
                     f"reference hyperparameters. {_QUICK_NOTE}"),
        dataset=dataset, forget=f"random:{fraction:g}",
        **_salun_settings("cifar100-random10" if dataset == "cifar100" else f"random{max(percent, 10)}"),
    )


def _salun_class() -> Protocol:
    return Protocol(
        name="salun-cifar10-class<c>", version=1, paper=_SALUN_PAPER, family_param="c",
        description=("SalUn/OPTML class-wise forgetting: D_f = all 4,500 train images of class c, the test set "
                     "drops class c; CIFAR-10 ResNet-18, original 182 ep / retrain 160 ep, MIA-Efficacy "
                     "(docs/metrics.md), "
                     f"seeds 1-5. `classwise` = class 0. {_QUICK_NOTE.replace('mlp', 'mlp, class c')}"),
        dataset="cifar10", forget="class:<c>", **_salun_settings("class"),
    )


def _dualoptim() -> Protocol:
    return Protocol(
        name="dualoptim-cifar10-random10", version=1, paper="DualOptim (CityU-MLO)",
        description=("DualOptim protocol: the SalUn CIFAR-10 split and random 10% forgetting, ResNet-18, primary "
                     "MIA = entropy logistic regression member rate (docs/metrics.md), seeds 1-5; shows Avg.Gap "
                     "(matched) and "
                     "a second table with avg_gap_means, gap_means_ua_ra_ta (DualOptim 'ToW') and "
                     "mean_metric_std (DualOptim 'Avg std'), std ddof = 1 (std_ddof=0 would reproduce "
                     f"parse_result.py). {_QUICK_NOTE}"),
        dataset="cifar10", model="resnet18", forget="random:0.1", recipe=CIFAR_ORIGINAL,
        retrain_recipe=CIFAR_RETRAIN, methods=DUALOPTIM_METHODS, profile="reference", primary_mia=DUALOPTIM_MIA,
        seeds=(1, 2, 3, 4, 5), gap_variants=DUALOPTIM_GAPS, searched=DUALOPTIM_SEARCHED,
        quick=QuickSize(dataset="digits", model="mlp", methods=DUALOPTIM_QUICK_METHODS, seeds=(1, 2),
                        recipe=QUICK_RECIPE, retrain_recipe=QUICK_RECIPE, profile="default", searched={}),
    )


#: U-LiRA shadow models of the digits protocols (the issue's prototype count: ~30 s on 2 CPU cores)
DIGITS_SHADOWS = 16


def _digits(forget: str, name: str) -> Protocol:
    random = forget.startswith("random")
    what = "random 10% (130 of 1,302)" if random else "class c (test drops class c)"
    ulira = f", U-LiRA with {DIGITS_SHADOWS} shadows" if random else ""
    return Protocol(
        name=name, version=2, paper="unlearnlab embedded default",
        description=(f"Embedded digits protocol: scikit-learn digits, {what}, mlp, small recipe (60 ep), every "
                     "default method, MIA-Efficacy (docs/metrics.md) with its spread over 20 attack draws (plus the "
                     "entropy "
                     f"and loss attacks), the noise-floor row{ulira}, seeds 1-5, one original model per seed. v1 "
                     "was the 3-seed plain `unlearnlab run` (still its defaults). --quick: 30 epochs, seed 1, "
                     "retrain/ft/rl/salun."),
        dataset="digits", model="mlp", forget=forget, recipe=None, methods=DEFAULT_METHODS, profile="default",
        primary_mia=SALUN_MIA, seeds=(1, 2, 3, 4, 5), family_param="c" if "<c>" in name else None,
        original_per_seed=True, ulira_shadows=DIGITS_SHADOWS if random else None, mias=DEFAULT_MIAS,
        quick=QuickSize(methods=("retrain", "ft", "rl", "salun"), seeds=(1,), recipe=QUICK_RECIPE, ulira_shadows=0),
    )


def _experiment(name: str, target: str, paper: str, description: str, seeds: tuple[int, ...],
                quick_seeds: tuple[int, ...], aliases: tuple[str, ...] = (), version: int = 1) -> Protocol:
    return Protocol(name=name, version=version, paper=paper, description=description, experiment=target,
                    seeds=seeds, quick=QuickSize(seeds=quick_seeds), aliases=aliases,
                    quick_description="--quick: the scaled CPU version (see the experiment's docs page).")


_MNOG = "MinNorm-OG (minimum-norm unlearning, overparameterised)"

#: class-wise forgetting in a class-conditional DDPM (docs/generation.md, "Running the protocols"): every row of
#: the tier's method table; --quick keeps the SalUn/EUPMU/DualOptim comparison on one seed
DDPM_METHODS = ("retrain", *PROTOCOL_METHODS.values())
DDPM_QUICK_METHODS = ("retrain", "ddpm/rl", "ddpm/salun", "ddpm/salun+eupmu", "ddpm/rl+dualoptim",
                      "ddpm/salun+dualoptim")
_DDPM_TIERS = {
    "digits": "CI tier: scikit-learn digits 8x8, residual-MLP noise predictor, 300-epoch original/retrain, DDIM 50 "
              "steps, 200 + 9 x 100 samples, gates 80 % / 90 % / 8 x floor",
    "fmnist": "dev tier: Fashion-MNIST pooled to 14x14 (/usr/share/datasets/fashion-mnist or --root), UNet (16, 32, "
              "32), 12-epoch original/retrain, DDIM 50 steps, 500 + 9 x 200 samples, gates 70 % / 90 % / 2 x floor",
    "cifar10": "paper tier (GPU): the user's CIFAR-10 files (--root), the papers' UNet and budgets (profile "
               "reference), DDIM 1000 steps, 500 + 9 x 5,000 samples; --original takes your trained model",
}


def _ddpm(tier: str) -> Protocol:
    return Protocol(
        name=f"ddpm-{tier}-class<c>", version=1, family_param="c", forget="class:<c>",
        paper="SalUn (Fan et al., ICLR 2024); EUPMU; DualOptim: DDPM class-wise forgetting",
        description=(f"Forget class c of a class-conditional DDPM with classifier-free guidance, {_DDPM_TIERS[tier]}; "
                     "methods ddpm/* at the tier's budgets, seeds 1-3; UA, fidelity, fd_clf/kid_clf in the "
                     "evaluation classifier's features, gaps to Retrain, validity gates, sample grids. --quick: "
                     f"seed 1, {', '.join(m.removeprefix('ddpm/') for m in DDPM_QUICK_METHODS)}."),
        experiment=f"unlearnlab.experiments.ddpm:{tier}", methods=DDPM_METHODS, seeds=(1, 2, 3),
        accepts=("methods", "hparams", "original"),
        quick=QuickSize(methods=DDPM_QUICK_METHODS, seeds=(1,)),
        quick_description="--quick: seed 1 and the SalUn/EUPMU/DualOptim rows (see docs/generation.md).")


#: TOFU-format unlearning (docs/llm.md, "Running the protocols"): every llm/* host, DualOptim's own LLM runs, the
#: generic +dualoptim wrapper on the hosts the DualOptim paper runs (GA+GD, NPO+GD, ME+GD, IDK+AP), +eupmu on
#: GA+GD and NPO+GD (new combinations) and certified-gradclip as an exploratory row
TOFU_HOSTS = ("llm/ga", "llm/ga-gd", "llm/ga-kl", "llm/npo", "llm/npo-gd", "llm/npo-kl", "llm/simnpo", "llm/me-gd",
              "llm/idk-gd", "llm/idk-ap", "llm/rmu")
TOFU_DUALOPTIM = ("dualoptim/llm/me-gd", "dualoptim/llm/idk-ap", "llm/ga-gd+dualoptim", "llm/npo-gd+dualoptim",
                  "llm/me-gd+dualoptim", "llm/idk-ap+dualoptim")
TOFU_METHODS = (*TOFU_HOSTS, *TOFU_DUALOPTIM, "llm/ga-gd+eupmu", "llm/npo-gd+eupmu", "certified-gradclip")
TOFU_QUICK_METHODS = ("llm/ga-gd", "llm/npo-gd", "llm/me-gd", "dualoptim/llm/me-gd", "llm/npo-gd+dualoptim",
                      "llm/npo-gd+eupmu")
#: the paper tier: the DualOptim paper's TOFU rows (ME+GD, IDK+AP, GA+GD, NPO+GD, each with and without dual
#: optimizers)
TOFU_PAPER_METHODS = ("llm/me-gd", "dualoptim/llm/me-gd", "llm/idk-ap", "dualoptim/llm/idk-ap", "llm/ga-gd",
                      "llm/ga-gd+dualoptim", "llm/npo-gd", "llm/npo-gd+dualoptim")
_TOFU_PAPER = "TOFU (Maini et al., 2024); OpenUnlearning's metrics; DualOptim (LLM rows); EUPMU (new combination)"


def _tofu_mini(split: str) -> Protocol:
    return Protocol(
        name=f"tofu-mini-{split}", version=1, paper=_TOFU_PAPER,
        description=(f"TOFU-format {split} on the synthetic tofu-mini benchmark (200 authors x 20 QA, data seed 0), "
                     "a 4.8 M-parameter Llama-style LM trained from scratch (stage 1 world facts, stage 2 full / "
                     "retain), every llm/* method with DualOptim, EUPMU and certified-gradclip rows, seeds 1-5; "
                     "forget quality (KS), model utility, forget ROUGE-L, truth ratio, privleak, RTE; noise floor "
                     "and validity gates. --quick: tofu-mini-xs (40 x 10) and its 0.47 M model, seed 1 (+ the retain "
                     f"model of seed 2), {len(TOFU_QUICK_METHODS)} methods."),
        experiment=f"unlearnlab.experiments.tofu:mini_{split}", methods=TOFU_METHODS, seeds=(1, 2, 3, 4, 5),
        accepts=("methods", "hparams"), quick=QuickSize(methods=TOFU_QUICK_METHODS, seeds=(1,)),
        quick_description="--quick: tofu-mini-xs, seed 1, the GA/NPO/ME/DualOptim/EUPMU rows (docs/llm.md).")


def _tofu_paper() -> Protocol:
    return Protocol(
        name="tofu-forget10", version=1, paper=_TOFU_PAPER,
        description=("Paper tier (GPU): TOFU forget10 from your local TOFU folder (--root) and your target checkpoint "
                     "fine-tuned on full (--original, a Hugging Face folder); retain reference --set retain.model=DIR "
                     "or retain.eval=TOFU_EVAL.json; DualOptim's recipe (profile reference: 5 epochs, lr 1e-5, "
                     "batch 32) for ME+GD, IDK+AP, GA+GD, NPO+GD with and without dual optimizers; seeds 1-5."),
        experiment="unlearnlab.experiments.tofu:paper_forget10", methods=TOFU_PAPER_METHODS, seeds=(1, 2, 3, 4, 5),
        accepts=("methods", "hparams", "original", "parallel"))

_PROTOCOLS: dict[str, Protocol] = {}
_ALIASES: dict[str, str] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add ``protocol`` (and its aliases) to the registry; a taken name is an error."""
    for name in (protocol.name, *protocol.aliases):
        if name in _PROTOCOLS or name in _ALIASES:
            raise UnlearnlabError(f"Protocol name {name!r} is already registered.")
    _PROTOCOLS[protocol.name] = protocol
    for alias in protocol.aliases:
        _ALIASES[alias] = protocol.name
    return protocol


def _register_defaults() -> None:
    for percent in (1, 5, 10, 30, 50):
        register_protocol(_salun_random(percent))
    register_protocol(_salun_random(10, "cifar100"))
    register_protocol(_salun_class())
    register_protocol(_dualoptim())
    register_protocol(_digits("random:0.1", "digits-random10"))
    register_protocol(_digits("class:<c>", "digits-class<c>"))
    for tier in _DDPM_TIERS:
        register_protocol(_ddpm(tier))
    for protocol in (fmnist_random(), fmnist_class(), neurips23_kit(), neurips23_official()):
        register_protocol(protocol)
    register_protocol(_experiment(
        "certified-budget", "unlearnlab.experiments.certified_budget:run",
        "Certified unlearning for neural networks (ICML 2025)",
        "Certified unlearning budget curves: accuracy vs epochs over D_r for each (method, epsilon), split seeds "
        "142, 230 (global seeds inside the experiment).", seeds=(142, 230), quick_seeds=(142,)))
    register_protocol(_experiment(
        "minnorm-poisoning", "unlearnlab.experiments.minnorm:poisoning", _MNOG,
        "MinNorm-OG data poisoning (sine regression): median sup-norm error, trials 1-10; "
        "--quick = S1 poisoning-small.", seeds=tuple(range(1, 11)), quick_seeds=(1, 2, 3), aliases=("mnog-sine",),
        version=2))
    register_protocol(_experiment(
        "minnorm-label-erasure", "unlearnlab.experiments.minnorm:label_erasure", _MNOG,
        "MinNorm-OG multi-class label erasure (CIFAR-10), seeds 1-5; --quick = S2 erase-digits.",
        seeds=(1, 2, 3, 4, 5), quick_seeds=(1,), aliases=("mnog-erase-cifar10",), version=2))
    register_protocol(_experiment(
        "minnorm-collapse", "unlearnlab.experiments.minnorm:collapse", _MNOG,
        "MinNorm-OG representation collapse (CIFAR-10), seeds 1-5; --quick = S3 collapse-digits.",
        seeds=(1, 2, 3, 4, 5), quick_seeds=(1,), aliases=("mnog-collapse-cifar10",), version=2))
    for split in ("forget01", "forget05", "forget10"):
        register_protocol(_tofu_mini(split))
    register_protocol(_tofu_paper())
    # the short names
    for alias, target in {"salun-random": "salun-cifar10-random10", "salun-random1": "salun-cifar10-random1",
                          "salun-random5": "salun-cifar10-random5", "salun-random10": "salun-cifar10-random10",
                          "salun-random30": "salun-cifar10-random30", "salun-random50": "salun-cifar10-random50",
                          "classwise": "salun-cifar10-class0", "dualoptim": "dualoptim-cifar10-random10"}.items():
        _ALIASES[alias] = target


#: a family member's name: ``…-class<c>`` or ``…-N<N>`` with the parameter's digits
_FAMILY = re.compile(r"^(?P<stem>.+-(?P<kind>class|N))(?P<value>\d+)$")
#: the parameter of each family kind, and a member used to validate the family as a whole
_FAMILY_KINDS = {"class": ("c", "0"), "N": ("N", "8")}


def list_protocols() -> list[Protocol]:
    """Registered protocols (families such as ``digits-class<c>`` as one entry), in registration order."""
    return list(_PROTOCOLS.values())


def aliases_of(name: str) -> list[str]:
    """Alias names that resolve to ``name`` or, for a family, to one of its members."""
    family = name.endswith(("<c>", "<N>"))
    stem = name[:-3] if family else name
    return [a for a, t in _ALIASES.items() if t == name or (family and _FAMILY.match(t) and t.startswith(stem))]


def known_names() -> list[str]:
    return [*_PROTOCOLS, *_ALIASES]


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``: a registered name, an alias, or a family member such as ``digits-class3``."""
    target = _ALIASES.get(name, name)
    if target in _PROTOCOLS and _PROTOCOLS[target].family_param is None:
        return _PROTOCOLS[target]
    match = _FAMILY.match(target)
    param = _FAMILY_KINDS[match["kind"]][0] if match else ""
    template = f"{match['stem']}<{param}>" if match else ""
    if match and template in _PROTOCOLS:
        return _member(_PROTOCOLS[template], target, param, match["value"])
    raise unknown_name("protocol", name, known_names(), "unlearnlab protocols")


def _member(family: Protocol, name: str, param: str, value: str) -> Protocol:
    """Family ``family`` with its parameter set: class c fills the forget spec, N the forget score's N."""
    quick = family.quick
    if param == "c":
        if quick is not None and quick.forget is not None:
            quick = quick.model_copy(update={"forget": quick.forget.replace("<c>", value)})
        update: dict[str, Any] = {"forget": str(family.forget).replace("<c>", value)}
    else:
        if int(value) < 2:
            raise UnlearnlabError(f"Protocol {name!r}: N is the number of models per family, at least 2.")
        if quick is not None:
            quick = quick.model_copy(update={"forget_quality_n": int(value)})
        update = {"forget_quality_n": int(value)}
    return family.model_copy(update={**update, "name": name, "family_param": None, "quick": quick, "aliases": ()})


def protocol_of_label(label: str) -> Protocol | None:
    """The registered protocol whose :meth:`Protocol.label` is ``label`` (``None`` for custom grids)."""
    parts = label.split(" ")
    if len(parts) < 2 or not parts[1].startswith("v"):
        return None
    try:
        protocol = get_protocol(parts[0])
    except UnlearnlabError:
        return None
    return protocol if parts[1] == f"v{protocol.version}" else None


# --------------------------------------------------------------------------------------------- validation


def validate(protocol: Protocol, quick: bool = False) -> None:
    """Check the names of ``protocol`` against the registries, without loading data (full or quick size);
    types and closed vocabularies were checked when it was built."""
    if protocol.family_param is not None:
        kind = next(k for k, (param, _) in _FAMILY_KINDS.items() if param == protocol.family_param)
        protocol = get_protocol(protocol.name.replace(f"<{protocol.family_param}>", _FAMILY_KINDS[kind][1]))
    p = protocol.sized(quick)
    where = f"protocol {protocol.name!r}{' (quick)' if quick else ''}"
    if not p.seeds or min(p.seeds) < 1:
        raise UnlearnlabError(f"{where}: seeds must be integers >= 1, got {p.seeds}.")
    if p.is_experiment:
        resolve_experiment(p.experiment, import_module=False)
        if p.forget is not None:
            ForgetSpec.parse(p.forget)
        return
    if p.dataset not in list_datasets():
        raise unknown_name("dataset", str(p.dataset), list_datasets())
    if p.model not in list_models():
        raise unknown_name("model", str(p.model), list_models())
    ForgetSpec.parse(str(p.forget))
    if p.ulira_shadows and ForgetSpec.parse(str(p.forget)).kind != "random":
        raise UnlearnlabError(f"{where}: U-LiRA attacks a random forget set, not {p.forget!r}.")
    if "retrain" not in p.methods:
        raise UnlearnlabError(f"{where}: methods must include 'retrain', the reference of every gap.")
    unknown = set(p.hparams) - set(p.methods)
    if unknown:
        raise UnlearnlabError(f"{where}: hparams for {sorted(unknown)}, which are not among its methods.")
    for method in p.methods:
        info = get_method(method)
        if info.name != method:
            raise UnlearnlabError(f"{where}: use the canonical method name {info.name!r}, not {method!r}.")
        if method != "retrain":
            # a searched value is the user's to give; everything else must build as the protocol states it
            info.resolve(p.hparams.get(method), p.profile, build=method not in p.searched)
    unsupported = [c for c in p.compat if c not in GRID_COMPAT]
    if unsupported:
        raise UnlearnlabError(f"{where}: the grid runner does not implement compat flag(s) {unsupported}.")


# --------------------------------------------------------------------------------------------- experiments


def resolve_experiment(target: str | None, import_module: bool = True) -> Callable[..., str] | None:
    """``"module:function"`` → the function; the module must be in :data:`EXPERIMENT_MODULES`.

    With ``import_module=False`` only the form and the allow-list are checked (returns ``None``).
    """
    module_name, sep, function = str(target).partition(":")
    if not sep or not function.isidentifier() or module_name not in EXPERIMENT_MODULES:
        raise UnlearnlabError(
            f"Experiment {target!r}: use 'module:function' with a module among {sorted(EXPERIMENT_MODULES)}.")
    if not import_module:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UnlearnlabError(
                f"Experiment module {module_name} is not available in this installation of unlearnlab "
                f"(ModuleNotFoundError: {err}); this protocol cannot run until it exists.") from None
        raise UnlearnlabError(f"Experiment module {module_name} failed to import: {err}") from err
    except ImportError as err:
        raise UnlearnlabError(f"Experiment module {module_name} failed to import: {err}") from err
    fn = getattr(module, function, None)
    if not callable(fn):
        raise UnlearnlabError(f"Experiment module {module_name} has no function {function!r} (expected "
                              "`run(ctx: ExperimentContext) -> str`).")
    return fn


_register_defaults()
