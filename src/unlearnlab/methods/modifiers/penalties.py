"""Norm penalties added to the loss: ℓ1-sparse's decaying ℓ1 and MinNorm-OG's ridge and ℓ1 baselines.

``Penalty(norm, weight, schedule)`` adds w_t·Σ_p ‖p‖ over the trainable parameters (Σ|θ| for ``"l1"``, Σθ² for
``"l2"``), with the weight w_t given by ``schedule`` (docs/methods.md, "Modifiers" and "MinNorm-OG baselines"):

* ``"linear_epochs"``: w_e = w·(1 − e/(E − E₀)) for e < E − E₀, else 0 (E epochs, E₀ = ``off_epochs``);
* ``"step_decay"``: w_0 = w, then w ← ``decay``·w after every optimizer step;
* ``"epoch_ramp"``: w_0 = w, then after a step in epoch e, w = (2 − 2e/E)·w (MinNorm-OG's ℓ1 code).

A zero weight adds nothing to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.modifiers.base import Modifier

SCHEDULES = ("linear_epochs", "step_decay", "epoch_ramp")


def l1_weight(alpha: float, epoch: int, epochs: int, no_l1_epochs: int = 0) -> float:
    """ℓ1-sparse's per-epoch weight α_e = α·(1 − e/(E − E₀)) for e < E − E₀, else 0."""
    active = epochs - no_l1_epochs
    return alpha * (1 - epoch / active) if epoch < active else 0.0


@dataclass
class Penalty(Modifier):
    norm: str = "l1"
    weight: float = 0.0
    schedule: str = "linear_epochs"
    decay: float = 1.0
    off_epochs: int = 0
    internal: ClassVar[frozenset[str]] = frozenset({"norm", "schedule"})

    def __post_init__(self) -> None:
        if self.norm not in ("l1", "l2"):
            raise UnlearnlabError(f"Penalty norm must be 'l1' or 'l2', got {self.norm!r}.")
        if self.schedule not in SCHEDULES:
            raise UnlearnlabError(f"Penalty schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.weight < 0 or self.off_epochs < 0:
            raise UnlearnlabError(f"Penalty weight and off_epochs must be >= 0 (got {self.weight}, {self.off_epochs}).")
        self._current = self.weight
        self._epoch = 0
        self._epochs = 1
        self._params: list[torch.nn.Parameter] = []

    def setup(self, job) -> None:
        self._params = [p for p in job.model.parameters() if p.requires_grad]
        self._epochs = job.epochs

    def _value(self) -> torch.Tensor:
        if self.norm == "l1":
            return sum(p.abs().sum() for p in self._params)
        return sum((p * p).sum() for p in self._params)

    def penalty(self, job, epoch: int) -> torch.Tensor | None:
        self._epoch = epoch
        if self.schedule == "linear_epochs":
            w = l1_weight(self.weight, epoch, self._epochs, self.off_epochs) if self.weight else 0.0
        else:
            w = self._current
        return w * self._value() if w else None

    def after_step(self, stepper, phase: str, optimizer) -> None:
        if self.schedule == "step_decay":
            self._current *= self.decay
        elif self.schedule == "epoch_ramp":
            self._current = (2 - 2 * self._epoch / self._epochs) * self.weight

    def stats(self) -> dict[str, Any]:
        if self.schedule == "linear_epochs":
            return {}
        return {"ridge_final" if self.norm == "l2" else "l1_final": self._current}
