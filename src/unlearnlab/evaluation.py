"""Score a model on a forget task: UA, RA, TA, the MIAs, U-LiRA, and the gap to a reference (retrained) model.

Every value is stored next to the name of the definition that produced it (docs/metrics.md). The
protocol's *primary* MIA fills the ``mia`` column used by Avg.Gap; every MIA in :attr:`EvalOptions.mias` is
reported under its own name. With ``attack_draws = K``, an MIA with a sampling step (the SVC's shadow members,
the loss attack's subsample) named in :attr:`EvalOptions.resample` is also run on K resampled attack sets
(a grid resamples its primary MIA, the one its table shows): ``<mia>_attack_mean`` and
``<mia>_attack_std`` (ddof 1) say how much of its value is the attack's own draw; the single reference draw stays
the value under the MIA's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import random_split

from unlearnlab.data.inputs import as_source
from unlearnlab.data.tensors import Source, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics import (
    GAP_METRICS,
    METRIC_DEFINITIONS,
    accuracy,
    logit_scaled_confidence,
    mia_loss_lr_cv,
    mia_lr_entropy_member_rate,
    per_seed_gap,
    svc_attack,
    svc_shadow_members,
)
from unlearnlab.metrics.ulira import UliraReference, ulira
from unlearnlab.utils import eval_mode

SVC_MIA = "mia_efficacy_svc_conf"
#: every MIA :func:`evaluate` implements (and computes unless told otherwise); any can be a protocol's primary MIA
DEFAULT_MIAS = (SVC_MIA, "mia_lr_entropy_member_rate", "mia_loss_lr_cv")
PRIMARY_MIAS = DEFAULT_MIAS
#: MIAs with a sampling step, which attack draws resample (the entropy attack uses every sample: nothing to draw)
RESAMPLED_MIAS = ("mia_efficacy_svc_conf", "mia_loss_lr_cv")
#: the NeurIPS 2023 kit's generator seed for splitting the held-out set into test and validation halves
KIT_SPLIT_SEED = 42


@dataclass(frozen=True)
class EvalOptions:
    """What an evaluation computes beyond UA, RA, TA (docs/metrics.md)."""

    #: MIA definitions to compute (the primary one must be among them)
    mias: tuple[str, ...] = DEFAULT_MIAS
    #: K resampled attack sets per MIA in ``resample`` (0: only the reference draw)
    attack_draws: int = 0
    #: the MIAs whose attack sets are resampled (those with a sampling step; the grid resamples its primary MIA)
    resample: tuple[str, ...] = RESAMPLED_MIAS
    #: shadow Gaussians of D_f and the retrained model's D_f scores: adds the U-LiRA metrics
    ulira: UliraReference | None = None
    #: score TA and the MIAs on the kit's half of D_test (NeurIPS 2023 starting kit)
    test_half: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.mias if m not in DEFAULT_MIAS]
        if unknown or not self.mias:
            raise UnlearnlabError(f"Unknown MIA(s) {unknown or '(none given)'}: use some of {', '.join(DEFAULT_MIAS)}.")
        if self.attack_draws < 0:
            raise UnlearnlabError(f"attack_draws must be >= 0, got {self.attack_draws}.")
        fixed = [m for m in self.resample if m not in RESAMPLED_MIAS]
        if fixed:
            raise UnlearnlabError(f"{fixed} have no sampling step to redraw; resample some of {RESAMPLED_MIAS}.")


@dataclass
class Evaluation:
    """Metric values (in %) with the definition behind each name, and how the attacks were drawn."""

    metrics: dict[str, float]
    definitions: dict[str, str] = field(default_factory=dict)
    #: shadow-set sizes and cuts, attack draws, U-LiRA counts (stored in a result row's stats)
    details: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "definitions": dict(self.definitions), "details": dict(self.details)}


@dataclass(frozen=True)
class Outputs:
    """A model's float32 logits, softmax probabilities (computed per batch, as the references do) and labels."""

    logits: torch.Tensor
    probs: np.ndarray
    labels: np.ndarray

    def take(self, positions: np.ndarray) -> Outputs:
        pos = torch.as_tensor(positions, dtype=torch.long)
        return Outputs(self.logits[pos], self.probs[positions], self.labels[positions])


def outputs(model: nn.Module, data: Source, batch_size: int = 1024) -> Outputs:
    """:class:`Outputs` of ``model`` on ``data`` in stored order, eval mode, no gradient (each module's own
    train/eval flag restored afterwards)."""
    logits, probs, labels = [], [], []
    with torch.no_grad(), eval_mode(model):
        for batch in iterate(data, batch_size, shuffle=False):
            z = model(batch["x"]).float()
            logits.append(z.cpu())
            probs.append(torch.softmax(z, dim=-1).cpu())
            labels.append(batch["y"].cpu())
    if not probs:
        raise UnlearnlabError("Cannot evaluate on an empty set: pass at least one sample.")
    return Outputs(torch.cat(logits), torch.cat(probs).numpy(), torch.cat(labels).numpy())


def predictions(model: nn.Module, data: Source, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax probabilities [N, C] float32, labels [N])`` of ``model`` on ``data`` (see :func:`outputs`)."""
    out = outputs(model, data, batch_size)
    return out.probs, out.labels


def kit_half(n: int) -> np.ndarray:
    """Positions of the first part of ``random_split(range(n), [0.5, 0.5], generator=Generator().manual_seed(42))``:
    the NeurIPS 2023 starting kit's test half of its held-out set."""
    first, _ = random_split(range(n), [0.5, 0.5], generator=torch.Generator().manual_seed(KIT_SPLIT_SEED))
    return np.asarray(first.indices, dtype=np.int64)


def _losses(out: Outputs) -> np.ndarray:
    """Per-sample cross-entropy of float32 logits (reduction "none")."""
    return F.cross_entropy(out.logits, torch.as_tensor(out.labels), reduction="none").numpy()


#: one MIA draw: (outputs by set name, draw) -> (value in %, details)
Draw = Callable[[dict[str, Outputs], int], tuple[float, dict[str, Any]]]


def _svc(outs: dict[str, Outputs], draw: int) -> tuple[float, dict[str, Any]]:
    retain, test, forget = outs["retain"], outs["test"], outs["forget"]
    members = retain.take(svc_shadow_members(len(retain.labels), len(test.labels), draw))
    res = svc_attack(members.probs, members.labels, test.probs, test.labels, forget.probs, forget.labels,
                     draw=draw)
    return res.value, {"members": res.members, "nonmembers": res.nonmembers, "cut": res.cut,
                       "retain": len(retain.labels), "test": len(test.labels)}


def _entropy(outs: dict[str, Outputs], draw: int) -> tuple[float, dict[str, Any]]:
    return mia_lr_entropy_member_rate(outs["retain"].probs, outs["test"].probs, outs["forget"].probs), {}


def _loss_cv(outs: dict[str, Outputs], draw: int) -> tuple[float, dict[str, Any]]:
    res = mia_loss_lr_cv(_losses(outs["forget"]), _losses(outs["test"]), seed=draw)
    return 100.0 * float(res["accuracy"]), {"subsampled": res["subsampled"],
                                            "indiscernibility": res["indiscernibility"]}


_MIAS: dict[str, Draw] = {"mia_efficacy_svc_conf": _svc, "mia_lr_entropy_member_rate": _entropy,
                          "mia_loss_lr_cv": _loss_cv}


def mia_draw(name: str, outs: dict[str, Outputs], draw: int = 0) -> tuple[float, dict[str, Any]]:
    """MIA ``name`` in % on attack set ``draw`` (0: the reference's) from the :class:`Outputs` of ``forget``,
    ``retain`` and ``test``, with the draw's details (shadow-set sizes and cut, subsampled side)."""
    if name not in _MIAS:
        raise UnlearnlabError(f"Unknown MIA {name!r}: use one of {', '.join(_MIAS)}.")
    return _MIAS[name](outs, draw)


def _mias(outs: dict[str, Outputs], options: EvalOptions, values: dict[str, float], definitions: dict[str, str],
          details: dict[str, Any]) -> None:
    """Every MIA of ``options``: the reference draw under its name, plus the attack spread over K draws."""
    k = options.attack_draws
    for name in options.mias:
        value, info = mia_draw(name, outs)
        values[name] = value
        definitions[name] = METRIC_DEFINITIONS[name]
        if info:
            details.setdefault("mia", {})[name] = info
        if info.get("cut"):
            definitions[name] += (f" [this row: shadow {info['cut']} cut to {min(info['members'], info['nonmembers'])}"
                                  " by a seeded draw to balance the two sets]")
        if k and name in options.resample:
            draws = [mia_draw(name, outs, d)[0] for d in range(1, k + 1)]
            values[f"{name}_attack_mean"] = float(np.mean(draws))
            values[f"{name}_attack_std"] = float(np.std(draws, ddof=1)) if k > 1 else float("nan")
            definitions[f"{name}_attack_std"] = (f"std (ddof 1) of {name} over K = {k} resampled attack sets "
                                                 "(docs/metrics.md, 'Attack spread')")
            definitions[f"{name}_attack_mean"] = f"mean of {name} over K = {k} resampled attack sets"
    if k:
        details["attack_draws"] = k


def _ulira(outs: dict[str, Outputs], reference: UliraReference, values: dict[str, float],
           definitions: dict[str, str], details: dict[str, Any]) -> None:
    """U-LiRA of the model: its D_f pairs against the retrained model's (``reference``)."""
    forget = outs["forget"]
    if len(forget.labels) != len(reference.retrained_scores):
        raise UnlearnlabError(f"The U-LiRA reference holds {len(reference.retrained_scores)} forget examples, the task "
                              f"{len(forget.labels)}: build it for this task's seed.")
    res = ulira(logit_scaled_confidence(forget.logits.numpy(), forget.labels), reference)
    for name in ("ulira_balanced_accuracy", "ulira_tpr_at_1pct_fpr", "ulira_tpr_at_01pct_fpr"):
        values[name] = float(res.pop(name))
        definitions[name] = METRIC_DEFINITIONS[name] + f" [K = {res['n_shadows']} shadows]"
    details["ulira"] = res


def evaluate(
    model: nn.Module,
    task: Any = None,
    reference: Evaluation | nn.Module | None = None,
    primary_mia: str = "mia_efficacy_svc_conf",
    *,
    forget: Any = None,
    retain: Any = None,
    test: Any = None,
    options: EvalOptions | None = None,
) -> Evaluation:
    """UA, RA, TA and the MIAs of ``model`` (eval mode); with ``reference``, also its per-seed gap.

    Give a task (anything with ``forget``, ``retain`` and ``test`` sources, e.g. a :class:`ForgetTask`), or your
    own ``forget=``, ``retain=``, ``test=`` data as ``unlearn`` takes them (tensors, Dataset, DataLoader) — no
    hidden validation split is used. ``reference`` is the retrained model (or its :class:`Evaluation`) of the
    *same* seed; the gap is (1/4)·Σ_{UA, RA, TA, MIA} |x − r| with MIA the primary definition. ``options`` chooses
    the MIAs, the attack draws, U-LiRA and the kit's test half (:class:`EvalOptions`; default: every MIA, one
    draw each).
    """
    options = options or EvalOptions()
    if primary_mia not in PRIMARY_MIAS:
        raise UnlearnlabError(f"Unknown primary MIA {primary_mia!r}: use one of {', '.join(PRIMARY_MIAS)}.")
    if primary_mia not in options.mias:
        raise UnlearnlabError(f"The primary MIA {primary_mia!r} is not among the MIAs to compute {options.mias}.")
    device = next(model.parameters()).device
    if task is not None:
        if forget is not None or retain is not None or test is not None:
            raise UnlearnlabError("Pass either a task or forget=/retain=/test= data, not both.")
        sources = {name: getattr(task, name) for name in ("forget", "retain", "test")}
    else:
        given = {"forget": forget, "retain": retain, "test": test}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise UnlearnlabError(f"evaluate() needs a task or all of forget=, retain=, test= (missing: "
                                  f"{', '.join(missing)}).")
        sources = {name: as_source(v, name, device) for name, v in given.items()}
    outs = {name: outputs(model, src.to(device)) for name, src in sources.items()}
    definitions: dict[str, str] = {}
    details: dict[str, Any] = {}
    if options.test_half:
        outs["test"] = outs["test"].take(kit_half(len(outs["test"].labels)))
        details["test_half"] = {"seed": KIT_SPLIT_SEED, "size": len(outs["test"].labels)}
    values = {
        "ua": 100.0 - accuracy(outs["forget"].probs, outs["forget"].labels),
        "ra": accuracy(outs["retain"].probs, outs["retain"].labels),
        "ta": accuracy(outs["test"].probs, outs["test"].labels),
    }
    definitions.update({k: METRIC_DEFINITIONS[k] for k in values})
    if options.test_half:
        definitions["ta"] += f" [on the kit's half of D_test, random_split(0.5, 0.5), seed {KIT_SPLIT_SEED}]"
    _mias(outs, options, values, definitions, details)
    values["mia"] = values[primary_mia]
    definitions["mia"] = primary_mia
    if options.ulira is not None:
        _ulira(outs, options.ulira, values, definitions, details)
    if reference is not None:
        ref = reference if isinstance(reference, Evaluation) else evaluate(
            reference, None if task is None else task, None, primary_mia,
            options=EvalOptions(mias=(primary_mia,), test_half=options.test_half),
            **({} if task is not None else sources))
        if ref.definitions.get("mia") != primary_mia:
            raise UnlearnlabError(
                f"The reference was scored with MIA {ref.definitions.get('mia')!r}, this model with "
                f"{primary_mia!r}: gaps across MIA definitions are meaningless. Use one primary MIA."
            )
        values["gap"] = per_seed_gap(values, ref.metrics, GAP_METRICS)
        definitions["gap"] = "(1/4)·Σ_{ua,ra,ta,mia} |x − retrain| on the same seed (" + primary_mia + ")"
    return Evaluation(values, definitions, details)
