"""Mask modifiers: choose a mask once, then keep frozen entries bit-identical through every step they cover.

:class:`SaliencyMask` (SalUn), :class:`FisherMask` (SFR-on) and :class:`MedianMask` (MinNorm-OG's SalUn variant)
differ only in how the mask is chosen (:mod:`unlearnlab.methods.masks`); the exact application
(:class:`~unlearnlab.methods.masks.ExactMask`) is shared. ``mask_scope`` "both" masks every step, "forget" only
forget steps (θ pinned just before each such step).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.masks import (
    ExactMask,
    Mask,
    fisher_ratio_mask,
    paper_saliency_mask,
    saliency_mask,
    trainable_fraction,
)
from unlearnlab.methods.modifiers.base import Modifier


class MaskModifier(Modifier):
    """Shared exact application; subclasses implement :meth:`choose`."""

    order: ClassVar[int] = 20
    internal: ClassVar[frozenset[str]] = frozenset({"mask_scope"})

    def __post_init__(self) -> None:
        self.exact: ExactMask | None = None
        self._saved: Any = None
        self._stats: dict[str, Any] = {}

    @abstractmethod
    def choose(self, job) -> Mask:
        """The mask (True = trainable) for this run."""

    def setup(self, job) -> None:
        if any(isinstance(m, MaskModifier) and m is not self and m.exact is not None for m in job.modifiers):
            raise UnlearnlabError("A method can have one mask modifier; this one has two.")
        self.attach(job.model, self.choose(job))

    def attach(self, model, mask: Mask) -> None:
        """Apply ``mask`` to ``model`` from now on (θ pinned now for scope "both")."""
        self.exact = ExactMask(model, mask, self.mask_scope)
        self._stats["mask_fraction_trainable"] = trainable_fraction(mask)

    def on_gradients(self, stepper, phase: str) -> None:
        if self.exact.applies_to(phase):
            self.exact.mask_grads()

    def before_step(self, stepper, phase: str, optimizer: torch.optim.Optimizer) -> None:
        self._saved = self.exact.snapshot(optimizer) if self.exact.applies_to(phase) else None

    def after_step(self, stepper, phase: str, optimizer: torch.optim.Optimizer) -> None:
        if self._saved is not None:
            self.exact.restore(optimizer, self._saved)
            self._saved = None

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)


@dataclass
class GivenMask(MaskModifier):
    """A mask the user chooses (e.g. only the last layer trainable): ``{parameter name: bool tensor}``, True =
    trainable; parameters it does not name stay fully trainable."""

    mask: Mask = field(default_factory=dict)
    mask_scope: str = "both"
    internal: ClassVar[frozenset[str]] = frozenset({"mask", "mask_scope"})

    def choose(self, job) -> Mask:
        return self.mask


@dataclass
class SaliencyMask(MaskModifier):
    """SalUn: the ``mask_fraction`` of entries with the largest |Σ ∇(−L)| over D_f (exactly ⌊k·P⌋ ones)."""

    mask_fraction: float = 0.5
    mask_scope: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.mask_fraction <= 1.0:
            raise UnlearnlabError(f"mask_fraction must lie in (0, 1], got {self.mask_fraction}.")

    def choose(self, job) -> Mask:
        return saliency_mask(job.model, job.data.forget, self.mask_fraction, loss=job.data.family.loss)


@dataclass
class FisherMask(MaskModifier):
    """SFR-on: entries whose forget/retain Fisher ratio is at least ``tau``; forget steps only."""

    tau: float = 1.0
    fisher_batch_size: int = 256
    mask_scope: str = "forget"

    def choose(self, job) -> Mask:
        return fisher_ratio_mask(job.model, job.data.forget, job.data.retain, self.tau, self.fisher_batch_size,
                                 loss=job.data.family.loss)


@dataclass
class MedianMask(MaskModifier):
    """MinNorm-OG's SalUn variant: |Σ_batches ∇J(B_f)| at θ* ≥ its lower median, J the method's retain objective;
    the model in training mode (as the paper's code), every buffer restored, forget batches of the method's size."""

    mask_scope: str = "both"
    _threshold: float = field(default=0.0, repr=False)

    def choose(self, job) -> Mask:
        objective = job.retain_objective()
        mask, thr = paper_saliency_mask(job.model, job.data.forget, job.forget_batch_size,
                                        lambda m, b: objective(m, b, job.ctx))
        self._stats["mask_threshold"] = thr
        return mask
