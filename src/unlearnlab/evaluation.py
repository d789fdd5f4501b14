"""Score a model on a forget task: UA, RA, TA, the MIAs, and the gap to a reference (retrained) model.

Every value is stored next to the name of the definition that produced it (docs/metrics.md). The
protocol's *primary* MIA fills the ``mia`` column used by Avg.Gap; both implemented MIAs are always reported
under their own names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearnlab.data.inputs import as_source
from unlearnlab.data.tensors import Source, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics import (
    GAP_METRICS,
    METRIC_DEFINITIONS,
    accuracy,
    mia_efficacy_svc_conf,
    mia_lr_entropy_member_rate,
    per_seed_gap,
    svc_shadow_members,
)
from unlearnlab.utils import eval_mode

PRIMARY_MIAS = ("mia_efficacy_svc_conf", "mia_lr_entropy_member_rate")


@dataclass
class Evaluation:
    """Metric values (in %) with the definition behind each name."""

    metrics: dict[str, float]
    definitions: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "definitions": dict(self.definitions)}


def predictions(model: nn.Module, data: Source, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax probabilities [N, C] float32, labels [N])`` of ``model`` on ``data`` in stored order, eval mode,
    no gradient (each module's own train/eval flag restored afterwards)."""
    probs, labels = [], []
    with torch.no_grad(), eval_mode(model):
        for batch in iterate(data, batch_size, shuffle=False):
            probs.append(torch.softmax(model(batch["x"]).float(), dim=-1).cpu())
            labels.append(batch["y"].cpu())
    if not probs:
        raise UnlearnlabError("Cannot evaluate on an empty set: pass at least one sample.")
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def evaluate(
    model: nn.Module,
    task: Any = None,
    reference: Evaluation | nn.Module | None = None,
    primary_mia: str = "mia_efficacy_svc_conf",
    *,
    forget: Any = None,
    retain: Any = None,
    test: Any = None,
) -> Evaluation:
    """UA, RA, TA and the MIAs of ``model`` (eval mode); with ``reference``, also its per-seed gap.

    Give a task (anything with ``forget``, ``retain`` and ``test`` sources, e.g. a :class:`ForgetTask`), or your
    own ``forget=``, ``retain=``, ``test=`` data as ``unlearn`` takes them (tensors, Dataset, DataLoader) — no
    hidden validation split is used. ``reference`` is the retrained model (or its :class:`Evaluation`) of the
    *same* seed; the gap is (1/4)·Σ_{UA, RA, TA, MIA} |x − r| with MIA the primary definition.
    """
    if primary_mia not in PRIMARY_MIAS:
        raise UnlearnlabError(f"Unknown primary MIA {primary_mia!r}: use one of {', '.join(PRIMARY_MIAS)}.")
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
    preds = {name: predictions(model, src.to(device)) for name, src in sources.items()}
    probs = {name: p for name, (p, _) in preds.items()}
    labels = {name: y for name, (_, y) in preds.items()}
    shadow = svc_shadow_members(len(labels["retain"]), len(labels["test"]))
    values = {
        "ua": 100.0 - accuracy(probs["forget"], labels["forget"]),
        "ra": accuracy(probs["retain"], labels["retain"]),
        "ta": accuracy(probs["test"], labels["test"]),
        "mia_efficacy_svc_conf": mia_efficacy_svc_conf(
            probs["retain"][shadow], labels["retain"][shadow], probs["test"], labels["test"],
            probs["forget"], labels["forget"],
        ),
        "mia_lr_entropy_member_rate": mia_lr_entropy_member_rate(probs["retain"], probs["test"], probs["forget"]),
    }
    values["mia"] = values[primary_mia]
    definitions = {k: METRIC_DEFINITIONS[k] for k in values if k in METRIC_DEFINITIONS}
    definitions["mia"] = primary_mia
    if reference is not None:
        ref = reference if isinstance(reference, Evaluation) else evaluate(
            reference, None if task is None else task, None, primary_mia,
            **({} if task is not None else sources))
        if ref.definitions.get("mia") != primary_mia:
            raise UnlearnlabError(
                f"The reference was scored with MIA {ref.definitions.get('mia')!r}, this model with "
                f"{primary_mia!r}: gaps across MIA definitions are meaningless. Use one primary MIA."
            )
        values["gap"] = per_seed_gap(values, ref.metrics, GAP_METRICS)
        definitions["gap"] = "(1/4)·Σ_{ua,ra,ta,mia} |x − retrain| on the same seed (" + primary_mia + ")"
    return Evaluation(values, definitions)
