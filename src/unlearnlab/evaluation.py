"""Score a model on a forget task: UA, RA, TA, the MIAs, and the gap to a reference (retrained) model.

Every value is stored next to the name of the definition that produced it (docs/metrics.md). The
protocol's *primary* MIA fills the ``mia`` column used by Avg.Gap; both implemented MIAs are always reported
under their own names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from unlearnlab.data.forget import ForgetTask
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics import (
    GAP_METRICS,
    METRIC_DEFINITIONS,
    accuracy,
    mia_efficacy_svc_conf,
    mia_lr_entropy_member_rate,
    per_seed_gap,
    predict_probs,
    svc_shadow_members,
)

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


def evaluate(
    model: nn.Module,
    task: ForgetTask,
    reference: Evaluation | nn.Module | None = None,
    primary_mia: str = "mia_efficacy_svc_conf",
) -> Evaluation:
    """UA, RA, TA and the MIAs of ``model`` on ``task`` (eval mode); with ``reference``, also its per-seed gap.

    ``reference`` is the retrained model (or its :class:`Evaluation`) of the *same* seed; the gap is
    (1/4)·Σ_{UA, RA, TA, MIA} |x − r| with MIA the primary definition.
    """
    if primary_mia not in PRIMARY_MIAS:
        raise UnlearnlabError(f"Unknown primary MIA {primary_mia!r}: use one of {', '.join(PRIMARY_MIAS)}.")
    device = next(model.parameters()).device
    probs = {name: predict_probs(model, getattr(task, name).x.to(device)).numpy()
             for name in ("forget", "retain", "test")}
    labels = {name: getattr(task, name).y.cpu().numpy() for name in ("forget", "retain", "test")}
    shadow = svc_shadow_members(len(task.retain), len(task.test))
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
        ref = reference if isinstance(reference, Evaluation) else evaluate(reference, task, None, primary_mia)
        if ref.definitions.get("mia") != primary_mia:
            raise UnlearnlabError(
                f"The reference was scored with MIA {ref.definitions.get('mia')!r}, this model with "
                f"{primary_mia!r}: gaps across MIA definitions are meaningless. Use one primary MIA."
            )
        values["gap"] = per_seed_gap(values, ref.metrics, GAP_METRICS)
        definitions["gap"] = "(1/4)·Σ_{ua,ra,ta,mia} |x − retrain| on the same seed (" + primary_mia + ")"
    return Evaluation(values, definitions)
