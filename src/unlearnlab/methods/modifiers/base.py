"""The modifier hook protocol: additions to a method that work with any update rule.

A modifier acts at fixed points of a run (docs/architecture.md, "Modifiers"):

* :meth:`Modifier.setup` once before the optimizers are built (compute a mask, draw a retain subset, re-initialise);
* :meth:`Modifier.start` once after the model is put in training mode (freeze BatchNorm statistics);
* :meth:`Modifier.penalty` a loss term added by the rule to its retain/joint losses (ℓ1, ridge);
* :meth:`Modifier.before_batch` on θ before a step's losses are computed (MinNorm-OG's projection);
* :meth:`Modifier.on_gradients` after backward, in ``order`` (gradient noise 10, mask 20, clip 30);
* :meth:`Modifier.before_step` / :meth:`Modifier.after_step` around the optimizer step (mask snapshot and restore,
  per-step decays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from unlearnlab.components import Component

if TYPE_CHECKING:
    from unlearnlab.data.tensors import Batch
    from unlearnlab.methods.rules.base import Job, Stepper


class Modifier(Component):
    """Base class: every hook does nothing."""

    #: position among the gradient hooks (lower first)
    order: ClassVar[int] = 50
    #: whether it runs on sharded parameters (FSDP): it touches gradients and parameters only elementwise or
    #: through torch's DTensor-aware utilities, never as whole vectors (docs/scaling.md)
    fsdp: ClassVar[bool] = False

    def setup(self, job: Job) -> None:
        """Before the optimizers are built."""

    def start(self, job: Job) -> None:
        """After the model is in training mode, before the rule runs."""

    def penalty(self, job: Job, epoch: int) -> torch.Tensor | None:
        """A term added to the rule's retain/joint losses at ``epoch``."""
        return None

    def before_batch(self, job: Job, epoch: int, step: int, retain: Batch | None) -> None:
        """Act on θ before the losses of step ``step`` are computed (``retain``: the step's retain batch)."""

    def on_gradients(self, stepper: Stepper, phase: str) -> None:
        """Act on ``.grad`` after backward."""

    def before_step(self, stepper: Stepper, phase: str, optimizer: torch.optim.Optimizer) -> None:
        """Just before ``optimizer.step()``."""

    def after_step(self, stepper: Stepper, phase: str, optimizer: torch.optim.Optimizer) -> None:
        """Just after ``optimizer.step()``."""

    def stats(self) -> dict[str, Any]:
        """Statistics of the last run (JSON-serialisable)."""
        return {}
