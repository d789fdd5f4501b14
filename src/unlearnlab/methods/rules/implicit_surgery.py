"""``implicit_surgery``: EUPMU and EUPMU-fast — surgery with one backward pass.

Math, options and departures from the reference code: docs/methods.md, "EUPMU, EUPMU-fast and UNGrad (surgery
rules)".

d = g_u + λ·g_r is the gradient of L_u + λ·L_r, so one backward of a scalarised loss gives the surgery
direction for the current λ; λ is learned by projected dual ascent from the measured retain-loss change.
With ℓ_u = s_f·L_u(θ; B_f), ℓ_r = α·L_r(θ; B_r), transforms φ ∈ {log: x ↦ log(x − c + 1e-8), identity} and
λ⁺ = clamp(λ, 0, λ_max), each step:

    J = φ_J(ℓ_u) + λ⁺·φ_J(ℓ_r)                      ("additive"; "convex" divides by 1 + λ⁺)
    one backward of J → mask → clip → model step (η_t = the step's lr)
    ℓ_r' = α·L_r(θ_{t+1}; B_r)                       (no-grad, same B_r tensors, BN buffers restored)
    Δ_t = φ_Δ(ℓ_r') − φ_Δ(ℓ_r)   [÷ η_t if lr_normalised]
    λ.grad = ε − Δ_t;  λ-optimizer step;  "hard" projection: λ ← clamp(λ, 0, λ_max)

so λ rises when the retain loss rises faster than the tolerance ε and decays otherwise. **ε is the allowed
per-step increase of φ_Δ(ℓ_r)** (negative = a required decrease); the reference's ``eu_error = e`` is the
deprecated alias ε = −e. The λ-optimizer is Adam(β, betas (0.9, 0.999), eps 1e-8, weight decay γ) or SGD
(λ_{t+1} = λ_t + β(Δ_t − ε) − βγλ_t). ``signal_mode``: "frozen_bn" (train-mode forward, every model buffer
snapshotted and restored), "eval" (both measurements by no-grad eval forwards: three forwards per step),
"reference" (train mode, buffers updated twice per step, as the reference code).

``fast=True`` (EUPMU-fast) drops the extra forward: at step t ≥ 1, before J, Δ = φ_Δ(ℓ_r(θ_t; B_r^t)) −
φ_Δ(ℓ_r(θ_{t−1}; B_r^{t−1})) (÷ η_{t−1}) updates λ, and J_t uses the updated λ. Cost per step: forwards over
B_f and B_r and one backward; plus one no-grad forward over B_r unless fast (two in "eval" mode).
The log transform refuses objectives that can be negative (GA's −CE, SCRUB's −KL) unless ``log_offset`` < 0 is
given as their lower bound: use "identity" for them.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.rules.base import Job, scaled
from unlearnlab.methods.rules.surgery import PairedSteps
from unlearnlab.objectives import Objective
from unlearnlab.utils import eval_mode, preserved_buffers

TRANSFORMS = ("log", "identity")
WEIGHTINGS = ("additive", "convex")
SIGNAL_MODES = ("frozen_bn", "eval", "reference")


def transform(kind: str, x: torch.Tensor, offset: float, name: str) -> torch.Tensor:
    """φ(x): ``log(x − c + 1e-8)`` (requires x > c, else ValueError naming the loss) or x."""
    if kind == "identity":
        return x
    if not bool(x.detach() > offset):
        raise UnlearnlabError(f"The log transform needs the {name} > log_offset={offset}, got {float(x):.6g}: use "
                         "objective_transform/signal_transform='identity' or a valid lower bound log_offset.")
    return torch.log(x - offset + 1e-8)


class Dual:
    """The multiplier λ (float32 scalar) and its optimizer; ``update(Δ)`` sets λ.grad = ε − Δ and steps."""

    def __init__(self, epsilon: float, lr: float, weight_decay: float, init: float, maximum: float | None,
                 optimizer: str, projection: str, device: torch.device | str = "cpu"):
        self.epsilon = epsilon
        self.maximum = math.inf if maximum is None else maximum
        self.projection = projection
        self.value = torch.tensor(float(init), device=device, requires_grad=True)
        if optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                [self.value], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
        elif optimizer == "sgd":
            self.optimizer = torch.optim.SGD([self.value], lr=lr, weight_decay=weight_decay)
        else:
            raise UnlearnlabError(f"lambda_optimizer must be 'adam' or 'sgd', got {optimizer!r}.")
        if projection not in ("hard", "use_only"):
            raise UnlearnlabError(f"lambda_projection must be 'hard' or 'use_only', got {projection!r}.")

    def plus(self) -> torch.Tensor:
        """λ⁺ = clamp(λ, 0, λ_max), detached: the weight used in J."""
        return self.value.detach().clamp(0.0, self.maximum)

    def update(self, delta: torch.Tensor) -> None:
        self.value.grad = (self.epsilon - delta.detach()).to(self.value)
        self.optimizer.step()
        if self.projection == "hard":
            with torch.no_grad():
                self.value.clamp_(0.0, self.maximum)


@dataclass
class ImplicitSurgery(PairedSteps):
    """EUPMU (default) and EUPMU-fast (``fast=True``); options and preset defaults: docs/methods.md, "Presets" of
    "EUPMU, EUPMU-fast and UNGrad (surgery rules)"."""

    epsilon: float | None = 0.0
    eu_error: float | None = None
    lambda_lr: float | None = 1.0
    lambda_weight_decay: float = 0.01
    lambda_init: float = 0.0
    lambda_max: float | None = None
    lambda_optimizer: str = "adam"
    lambda_projection: str = "hard"
    forget_scale: float = 1.0
    retain_scale: float = 1.0
    objective_transform: str = "log"
    signal_transform: str = "log"
    log_offset: float = 0.0
    weighting: str = "additive"
    lr_normalised: bool = False
    lr_floor: float = 1e-8
    signal_mode: str = "frozen_bn"
    fast: bool = False
    name: str = "implicit_surgery"
    fsdp: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast and self.signal_mode == "eval":
            raise UnlearnlabError("signal_mode='eval' measures the retain loss by extra eval forwards before and after "
                                  "the step, which EUPMU-fast (fast=True) drops: use signal_mode='frozen_bn' or "
                                  "'reference' with fast=True.")
        if self.lambda_lr is None or (self.epsilon is None and self.eu_error is None):
            raise UnlearnlabError(
                "EUPMU needs epsilon (ε) and lambda_lr (β): there is no validated pair for this setting (the "
                "lr-normalised form has none for classification). Pass both, or search them on D_val with "
                "`unlearnlab tune --method eupmu-normalised`.")
        if self.lambda_optimizer not in ("adam", "sgd"):
            raise UnlearnlabError(f"lambda_optimizer must be 'adam' or 'sgd', got {self.lambda_optimizer!r}.")
        if self.lambda_projection not in ("hard", "use_only"):
            raise UnlearnlabError(f"lambda_projection must be 'hard' or 'use_only', got {self.lambda_projection!r}.")
        for key, value, allowed in (("objective_transform", self.objective_transform, TRANSFORMS),
                                    ("signal_transform", self.signal_transform, TRANSFORMS),
                                    ("weighting", self.weighting, WEIGHTINGS),
                                    ("signal_mode", self.signal_mode, SIGNAL_MODES)):
            if value not in allowed:
                raise UnlearnlabError(f"{key} must be one of {', '.join(allowed)}; got {value!r}.")
        if self.eu_error is not None:
            if self.epsilon not in (0.0, None):
                raise UnlearnlabError("Give epsilon or the deprecated eu_error (= −epsilon), not both.")
            warnings.warn("eu_error is deprecated: it is the reference's required decrease; use "
                          f"epsilon={-self.eu_error!r} (allowed increase).", DeprecationWarning, stacklevel=2)
            self.epsilon, self.eu_error = -self.eu_error, None
        self.dual: Dual | None = None

    def run(self, job: Job) -> None:
        retain = job.retain_objective()
        self._check_log(job.forget, retain)
        self.dual = Dual(self.epsilon, self.lambda_lr, self.lambda_weight_decay, self.lambda_init, self.lambda_max,
                         self.lambda_optimizer, self.lambda_projection, next(job.model.parameters()).device)
        optimizer = job.stepper.optimizers["joint"]
        previous: tuple[torch.Tensor, float] | None = None  # fast: (φ_Δ(ℓ_r) of the last step, its lr)
        for epoch, batch_f, batch_r in self.pairs(job):
            loss_u, loss_r = self.losses(job, retain, batch_f, batch_r, self.forgets_in(epoch))
            if loss_u is None:  # past the host's forget budget: a plain retain step, λ unchanged
                job.stepper.step(loss_r, "joint")
                previous = None
                continue
            loss_u, loss_r = scaled(self.forget_scale, loss_u), scaled(self.retain_scale, loss_r)
            before = self._signal_value(job, retain, batch_f, batch_r) if self.signal_mode == "eval" \
                else self._phi_signal(loss_r)
            if self.fast and previous is not None:
                self._dual_step(before - previous[0], previous[1])
            if not job.stepper.step(self._objective(loss_u, loss_r), "joint"):
                continue  # a skipped fp16 step: λ and the fast-mode memory stay as they were
            lr = optimizer.param_groups[0]["lr"]
            if self.fast:
                previous = (before, lr)
            else:
                self._dual_step(self._signal_value(job, retain, batch_f, batch_r) - before, lr)

    def stats(self) -> dict:
        return {} if self.dual is None else {"lambda_final": float(self.dual.value.detach())}

    def _objective(self, loss_u: torch.Tensor, loss_r: torch.Tensor) -> torch.Tensor:
        """J = φ_J(ℓ_u) + λ⁺·φ_J(ℓ_r), divided by 1 + λ⁺ when convex."""
        lam = self.dual.plus()
        phi = self.objective_transform
        total = transform(phi, loss_u, self.log_offset, "forget loss") + \
            lam * transform(phi, loss_r, self.log_offset, "retain loss")
        return total / (1 + lam) if self.weighting == "convex" else total

    def _phi_signal(self, loss_r: torch.Tensor) -> torch.Tensor:
        return transform(self.signal_transform, loss_r.detach(), self.log_offset, "retain loss (signal)")

    def _signal_value(self, job: Job, retain: Objective, batch_f: dict[str, torch.Tensor],
                      batch_r: dict[str, torch.Tensor]) -> torch.Tensor:
        """φ_Δ(α·L_r) by a no-grad forward on the given B_r (on cat(B_f, B_r) with ``joint_forward``), leaving the
        model's buffers as they were except in "reference" mode."""
        guard = {"frozen_bn": preserved_buffers, "eval": eval_mode}.get(self.signal_mode)
        with torch.no_grad(), (guard(job.model) if guard else contextlib.nullcontext()):
            _, loss_r = self.losses(job, retain, batch_f, batch_r, forget=False)
            return self._phi_signal(scaled(self.retain_scale, loss_r))

    def _dual_step(self, delta: torch.Tensor, lr: float) -> None:
        if self.lr_normalised:
            if lr < self.lr_floor:
                return
            delta = delta / lr
        self.dual.update(delta)

    def _check_log(self, forget: Objective, retain: Objective) -> None:
        uses_log = {"forget": self.objective_transform == "log",
                    "retain": "log" in (self.objective_transform, self.signal_transform)}
        for side, objective in (("forget", forget), ("retain", retain)):
            if uses_log[side] and self.log_offset >= 0 and objective.can_be_negative:
                raise UnlearnlabError(
                    f"The {side} objective {type(objective).__name__} can be negative, so the log transform is "
                    "undefined for it: use objective_transform='identity' (and signal_transform='identity' for a "
                    "retain objective), or a lower bound log_offset.")
