"""MinNorm-OG's projection as a modifier: before a step's losses, shrink θ toward the span of the model-output
gradients of a few retain samples (docs/methods.md, "MinNorm-OG").

In a projection epoch (t < T − T_GD and t mod T_Proj = 0), before each step: pick ``grad_sample_size`` members of
the step's retain batch (:func:`~unlearnlab.methods.minnorm.subsample`), form the output Jacobian A on them, set
θ ← θ − λ·(θ − P_A θ) in ``projection_dtype`` and decay λ ← γ_reg·λ. The loss of the step is then computed and
back-propagated at the projected θ. In a distributed run every rank sees the whole global retain batch here, draws
the same subsample, computes the columns of its share of it and gathers the rest (docs/scaling.md), so θ stays the
same on every rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from unlearnlab.distributed.unlearning import split_columns
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.minnorm import (
    LOSS_TYPES,
    QUOTA_FALLBACKS,
    RANK_RTOL,
    couples_samples,
    head_labels,
    output_jacobian,
    project_params,
    subsample,
)
from unlearnlab.methods.modifiers.base import Modifier

log = logging.getLogger(__name__)


@dataclass
class Projection(Modifier):
    reg_coef: float = 0.1
    reg_coef_decay: float = 0.8
    proj_pd: int = 1
    num_gd_epochs: int = 0
    grad_sample_size: int = 50
    quota_fallback: str = "uniform"
    loss_type: str = "classifier"
    projection_dtype: str = "float64"
    rank_rtol: float = RANK_RTOL

    def __post_init__(self) -> None:
        if not 0.0 <= self.reg_coef <= 1.0:
            raise UnlearnlabError(f"MinNorm-OG: reg_coef (λ_reg) must lie in [0, 1], got {self.reg_coef}.")
        if not 0.0 < self.reg_coef_decay <= 1.0:
            raise UnlearnlabError(f"MinNorm-OG: reg_coef_decay (γ_reg) must lie in (0, 1], got {self.reg_coef_decay}.")
        if self.proj_pd < 1:
            raise UnlearnlabError(f"MinNorm-OG: proj_pd (T_Proj) must be >= 1, got {self.proj_pd}.")
        if self.num_gd_epochs < 0:
            raise UnlearnlabError(f"MinNorm-OG: num_gd_epochs (T_GD) must be >= 0, got {self.num_gd_epochs}.")
        if self.grad_sample_size < 1:
            raise UnlearnlabError(f"MinNorm-OG: grad_sample_size must be >= 1, got {self.grad_sample_size}.")
        if self.quota_fallback not in QUOTA_FALLBACKS:
            raise UnlearnlabError(f"Unknown quota_fallback {self.quota_fallback!r}: use one of "
                                  f"{', '.join(QUOTA_FALLBACKS)}.")
        if self.loss_type not in LOSS_TYPES:
            raise UnlearnlabError(f"Unknown loss_type {self.loss_type!r}: use one of {', '.join(LOSS_TYPES)}.")
        if self.projection_dtype not in ("float64", "float32"):
            raise UnlearnlabError(f"projection_dtype must be 'float64' or 'float32', got {self.projection_dtype!r}.")
        self._lam = self.reg_coef
        self._warned = False
        self._params: list[torch.nn.Parameter] = []
        self._stats: dict[str, Any] = {}

    def projects_in(self, epoch: int, epochs: int) -> bool:
        return epoch < epochs - self.num_gd_epochs and epoch % self.proj_pd == 0

    def setup(self, job) -> None:
        if self.num_gd_epochs > job.epochs:
            raise UnlearnlabError(f"MinNorm-OG: num_gd_epochs (T_GD) must lie in [0, {job.epochs}], got "
                                  f"{self.num_gd_epochs}.")
        if len(job.data.retain) == 0:
            raise UnlearnlabError("MinNorm-OG: the retain set is empty, no Jacobian can be formed.")
        self._params = [p for p in job.model.parameters() if p.requires_grad]
        self._stats = {"projections": 0, "jacobian_columns": 0, "jacobian_columns_total": 0,
                       "jacobian_fallbacks": 0, "jacobian_rank_min": None}

    def before_batch(self, job, epoch: int, step: int, retain) -> None:
        if retain is None or not self.projects_in(epoch, job.epochs):
            return
        x, y = retain["x"], retain["y"]
        labels = None if self.loss_type == "regression" else head_labels(y, y.shape[1] if y.ndim == 2 else 1)[:, 0]
        pos, fell_back = subsample(labels, len(x), self.grad_sample_size, job.ctx.generator("jacobian-subsample"),
                                   self.quota_fallback)
        st = self._stats
        if fell_back:
            st["jacobian_fallbacks"] += 1
            if not self._warned:
                log.warning("MinNorm-OG: %d classes in a retain batch > grad_sample_size %d: quota fallback %r "
                            "(counted in jacobian_fallbacks).", len(torch.unique(labels)), self.grad_sample_size,
                            self.quota_fallback)
                self._warned = True
        rows = x[pos.to(x.device)]

        def columns(inputs: torch.Tensor) -> torch.Tensor:
            return output_jacobian(job.model, inputs, self.loss_type, self._params)

        with torch.autocast(x.device.type, enabled=False):  # the span is computed in full precision
            if job.dist is None or couples_samples(job.model):
                a = columns(rows)
            else:  # each rank computes the columns of its share of the samples (docs/scaling.md)
                a = split_columns(job.dist, columns, rows)
        if not torch.isfinite(a).all():
            raise UnlearnlabError(f"MinNorm-OG: non-finite output Jacobian at epoch {epoch}, step {step}.")
        dtype = torch.float64 if self.projection_dtype == "float64" else torch.float32
        rank = project_params(self._params, a, self._lam, dtype, self.rank_rtol)
        st["projections"] += 1
        st["jacobian_columns"] = a.shape[1]
        st["jacobian_columns_total"] += a.shape[1]
        st["jacobian_rank_min"] = rank if st["jacobian_rank_min"] is None else min(rank, st["jacobian_rank_min"])
        self._lam *= self.reg_coef_decay

    def stats(self) -> dict[str, Any]:
        return {**self._stats, "lambda_final": self._lam}
