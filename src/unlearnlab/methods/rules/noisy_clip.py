"""``noisy_clip``: certified unlearning by noisy clipped fine-tuning (docs/certificates.md; math in docs/methods.md,
"Certified unlearning").

Noisy phase on D_r started from the original model x̂, then noise-free fine-tuning on D_r:

* gradient clipping (``variant="gradient_clip"``, preset ``certified-gradclip``): x_0 = clip_{C0}(x̂);
  x_{t+1} = x_t − γ(clip_{C1}(g_t) + λx_t) + ξ_{t+1}, T and σ from the ``pabi-rdp`` accountant;
* model clipping (``variant="model_clip"``, preset ``certified-modelclip``): x_0 = clip_{C0}(x̂) + ξ_0;
  x_{t+1} = clip_{C2}(x_t − γ(g_t + λx_t)) + ξ_{t+1}, stop at the first δ_t ≤ δ (``hockey-stick-contraction``);
* output perturbation (``variant="output_perturbation"``, baseline preset ``output-perturbation``): one shot,
  x_0 = clip_{C0}(x̂) + ξ_0 with σ from the Gaussian calibration for sensitivity 2C0 (``gaussian-classic`` for
  ε ≤ 1, ``gaussian-analytic`` otherwise), T = 0 noisy steps, then fine-tuning for the whole budget.

clip is one global ℓ2 norm over all trainable parameters; ξ ~ N(0, σ²I) is drawn fresh every step and added to
the **parameters** (never scaled by γ). ``noise_source="secure"`` (default) seeds the noise generator from the
operating system's entropy (``secrets``), never stores the seed and never derives it from the run seed, so the
noise cannot be replayed from anything released; ``"seeded"`` derives it from the run seed for reproducible research
runs, and then the certificate, the row and the table say "not certified" in words (docs/certificates.md). Across the
ranks of a distributed run the noise is one draw: rank 0 draws the secure seed and broadcasts it (docs/scaling.md).
Fine-tuning: plain SGD (momentum 0, coupled wd from the job's optimizer), linear one-cycle (optax shape) over the
run's N = E·⌈|D_r|/b⌉ steps, the counter restarting at 0, N − T steps, the retain loader continuing mid-epoch
(docs/certificates.md, "Noise-free fine-tuning").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnlab.certify import accountant as acc
from unlearnlab.certify.certificate import Certificate, weights_sha256
from unlearnlab.data.tensors import Batch
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.methods.rules.base import Job, Rule
from unlearnlab.training import onecycle_multiplier
from unlearnlab.utils import torch_generator

VARIANTS = ("gradient_clip", "model_clip", "output_perturbation")
NOISE_SOURCES = ("secure", "seeded")
_COMMON_KEYS = {"epsilon", "delta", "C0", "sigma", "frozen_params", "buffers", "noise_source"}
#: the options each variant reads
VARIANT_KEYS = {
    "gradient_clip": _COMMON_KEYS | {"gamma", "T", "C1", "lam", "accounting"},
    "model_clip": _COMMON_KEYS | {"gamma", "T", "C2", "sigma0", "lam"},
    "output_perturbation": _COMMON_KEYS | {"calibration"},
}


# ------------------------------------------------------------------------------------------- helpers
def global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """ℓ2 norm of the concatenation of ``tensors`` (float64 accumulation)."""
    return torch.sqrt(sum((t.detach().double() ** 2).sum() for t in tensors))


@torch.no_grad()
def clip_global_(tensors: list[torch.Tensor], C: float) -> float:
    """In place v ← v·min(1, C/‖v‖₂) with one global norm over all tensors; returns the norm before."""
    norm = float(global_norm(tensors))
    if norm > C:
        scale = C / norm
        for t in tensors:
            t.mul_(scale)
    return norm


def data_dependent_buffers(model: nn.Module) -> list[str]:
    """Names of BatchNorm-style modules that track running statistics."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]


def check_model(model: nn.Module, frozen_params: str, buffers: str) -> tuple[list[nn.Parameter], int]:
    """Trainable parameters and the frozen count; errors name the fix.

    The requirements (all trainable parameters clipped, frozen ones declared public, BatchNorm statistics reset
    after the noisy phase): docs/certificates.md, "What it does not guarantee".
    """
    if buffers not in ("reject", "reset_after_noise"):
        raise UnlearnlabError(f"buffers={buffers!r}: use 'reject' (default) or 'reset_after_noise'.")
    if frozen_params not in ("none", "public"):
        raise UnlearnlabError(f"frozen_params={frozen_params!r}: use 'none' (default) or 'public'.")
    bn = data_dependent_buffers(model)
    if bn and buffers == "reject":
        raise UnlearnlabError(
            f"Certified unlearning refuses models with data-dependent buffers (BatchNorm running statistics in "
            f"{', '.join(bn[:3])}{'…' if len(bn) > 3 else ''}): they are not clipped or noised, so they would "
            "carry D_f into the released model. Pass buffers='reset_after_noise' (reset after the noisy phase, "
            "re-estimated from D_r during fine-tuning) or use a BN-free model (mnist_tiny, small_cnn, digits_tiny)."
        )
    params = [p for p in model.parameters() if p.requires_grad]
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    if frozen and frozen_params != "public":
        raise UnlearnlabError(
            f"The model has {frozen} frozen parameter entries: the certificate covers only trainable parameters, "
            "so frozen ones must not depend on the training data. Unfreeze them, or pass frozen_params='public' "
            "if they are independent of D (e.g. an ImageNet feature extractor); it is recorded in the certificate."
        )
    if not params:
        raise UnlearnlabError("The model has no trainable parameters: nothing to certify.")
    return params, frozen


# ------------------------------------------------------------------------------------------- noisy phase
@dataclass
class NoisyPhaseResult:
    steps: int
    losses: list[float]
    delta_trajectory: list[float] | None = None


@torch.no_grad()
def _add_noise(params: list[torch.Tensor], sigma: float, gen: torch.Generator,
               on_noise: Callable[[torch.Tensor], None] | None) -> None:
    d = sum(p.numel() for p in params)
    xi = torch.randn(d, generator=gen, device=params[0].device, dtype=params[0].dtype) * sigma
    if on_noise is not None:
        on_noise(xi.detach().clone())
    off = 0
    for p in params:
        n = p.numel()
        p.add_(xi[off:off + n].view_as(p))
        off += n


def noisy_phase(model: nn.Module, params: list[torch.Tensor], batches: Iterator[Batch],
                loss_fn: Callable[[nn.Module, Batch], torch.Tensor], *, variant: str, T: int,
                sigma: float, gamma: float, lam: float, C0: float, C1: float | None = None,
                C2: float | None = None, sigma0: float = 0.0, generator: torch.Generator,
                on_noise: Callable[[torch.Tensor], None] | None = None,
                on_step: Callable[[int], None] | None = None) -> NoisyPhaseResult:
    """Run the T noisy steps in place on ``params`` (one forward/backward per step, no per-example gradients).

    ``output_perturbation`` needs T = 0: x_0 = clip_{C0}(x̂) + N(0, σ²I), one draw from ``generator``.
    """
    if variant not in VARIANTS:
        raise UnlearnlabError(f"variant={variant!r}: use one of {', '.join(VARIANTS)}.")
    clip_global_(params, C0)
    if variant == "output_perturbation":
        if T != 0:
            raise UnlearnlabError(f"output perturbation is one-shot: T must be 0 (got {T}).")
        _add_noise(params, sigma, generator, on_noise)
        return NoisyPhaseResult(0, [])
    if variant == "model_clip" and sigma0 > 0:
        _add_noise(params, sigma0, generator, on_noise)
    losses: list[float] = []
    for t in range(T):
        batch = next(batches)
        for p in params:
            p.grad = None
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise DivergenceError(f"noisy_clip: non-finite loss at noisy step {t}; lower gamma or the clip radius.")
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        with torch.no_grad():
            if variant == "gradient_clip":
                clip_global_(grads, C1)
                for p, g in zip(params, grads):
                    p.add_(g + lam * p, alpha=-gamma)  # u_t = clip(g_t) + λx_t (λ x_t read before the update)
            else:
                for p, g in zip(params, grads):
                    p.add_(g + lam * p, alpha=-gamma)
                clip_global_(params, C2)
            _add_noise(params, sigma, generator, on_noise)
        for p in params:
            p.grad = None
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(t)
    return NoisyPhaseResult(T, losses)


# ------------------------------------------------------------------------------------------- the rule
@dataclass
class NoisyClip(Rule):
    """Noisy clipped phase + certificate + noise-free fine-tuning (see module docstring)."""

    variant: str = "gradient_clip"
    epsilon: float = 1.0
    delta: float = 1e-5
    C0: float = 1.0
    C1: float = 1.0
    C2: float = 0.5
    gamma: float = 1e-3
    lam: float = 0.0
    sigma: float | None = None
    sigma0: float = 0.0
    T: int | None = None
    accounting: str = "certified"
    #: output perturbation: "auto" (classic for ε ≤ 1, analytic above), "analytic" or "classic"
    calibration: str = "auto"
    frozen_params: str = "none"
    buffers: str = "reject"
    noise_source: str = "secure"
    method: str = "certified"
    name: str = "noisy_clip"
    on_noise: Callable[[torch.Tensor], None] | None = None
    internal: ClassVar[frozenset[str]] = frozenset({"name", "method", "on_noise", "variant"})
    loss_scaling: ClassVar[bool] = False  # the noisy phase steps the parameters itself

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UnlearnlabError(f"variant={self.variant!r}: use one of {', '.join(VARIANTS)}.")
        if self.noise_source not in NOISE_SOURCES:
            raise UnlearnlabError(f"noise_source={self.noise_source!r}: use 'secure' (certified) or 'seeded' "
                                  "(reproducible, not certified).")
        #: filled by :meth:`run`: statistics and the certificate (``state_dict``) of the last run
        self.last: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        """The hyperparameters the variant uses (others would be silently ignored, so they are not offered)."""
        keys = VARIANT_KEYS[self.variant]
        return {k: v for k, v in super().options().items() if k in keys}

    def stats(self) -> dict[str, Any]:
        return dict(self.last)

    def plan(self, budget_steps: int) -> dict[str, Any]:
        """(T, σ, accounting outputs) before any parameter is touched; errors name the fix."""
        if self.variant == "gradient_clip":
            if self.sigma is not None:
                T = self.T if self.T is not None else acc.gc_T_rule(self.C0, self.C1, self.gamma, self.lam)
                rule = "user" if self.T is not None else "reference"
                sigma, mode = float(self.sigma), "user_sigma"
            else:
                try:
                    p = acc.gc_calibrate(self.epsilon, self.delta, self.C0, self.C1, self.gamma, self.lam, self.T,
                                         self.accounting)
                except ValueError as e:
                    raise UnlearnlabError(f"certified-gradclip: {e}") from e
                T, sigma, rule, mode = p.T, p.sigma, p.T_rule, p.accounting_mode
            if not (self.gamma > 0 and self.lam >= 0 and self.gamma * self.lam < 1):
                raise UnlearnlabError(f"certified-gradclip needs gamma > 0, lambda >= 0 and gamma*lambda < 1 "
                                      f"(got gamma={self.gamma}, lambda={self.lam}).")
            out = {"T": int(T), "sigma": sigma, "T_rule": rule, "accounting_mode": mode}
        elif self.variant == "model_clip":
            if self.sigma is None:
                if self.T is None:
                    raise UnlearnlabError("certified-modelclip needs sigma (T then follows from delta) or T.")
                sigma = acc.mc_sigma(self.epsilon, self.delta, self.C2, self.T, self.sigma0, self.C0)
                T = int(self.T)
            else:
                sigma = float(self.sigma)
                try:
                    T, _ = acc.mc_steps(self.epsilon, self.delta, self.C2, sigma, self.sigma0, self.C0,
                                        max_steps=budget_steps)
                except ValueError as e:
                    raise UnlearnlabError(f"certified-modelclip: {e}; no certificate") from e
            if not (self.gamma > 0 and self.lam >= 0):
                raise UnlearnlabError(f"certified-modelclip needs gamma > 0 and lambda >= 0 (got {self.gamma}, "
                                      f"{self.lam}).")
            out = {"T": int(T), "sigma": sigma, "T_rule": "delta_target", "accounting_mode": "certified"}
        elif self.variant == "output_perturbation":
            try:
                need, name = acc.gaussian_calibrate(self.epsilon, self.delta, 2 * self.C0, self.calibration)
            except ValueError as e:
                raise UnlearnlabError(f"{self.method}: {e} (calibration='analytic' or 'auto' is valid for every "
                                      "epsilon)") from e
            if self.sigma is not None and float(self.sigma) < need:
                raise UnlearnlabError(f"{self.method}: sigma={self.sigma} is below the {name} calibration "
                                      f"{need:.6g} for (epsilon={self.epsilon}, delta={self.delta}, C0={self.C0}); "
                                      "leave sigma=None to calibrate it.")
            sigma = need if self.sigma is None else float(self.sigma)
            out = {"T": 0, "sigma": sigma, "T_rule": None, "accounting_mode": "certified", "accountant": name}
        else:
            raise UnlearnlabError(f"variant={self.variant!r}: use one of {', '.join(VARIANTS)}.")
        if out["T"] > budget_steps:
            raise UnlearnlabError(f"{self.method}: T={out['T']} noisy steps exceed the budget of {budget_steps} "
                                  "steps (epochs × ⌈|D_r|/batch⌉): raise epochs or change the constants.")
        return out

    def run(self, job: Job) -> None:
        model, ctx = job.model, job.ctx
        params, frozen = check_model(model, self.frozen_params, self.buffers)
        d = sum(p.numel() for p in params)
        n_r = len(job.data.retain)
        if n_r == 0:
            raise UnlearnlabError("The retain set is empty: certified unlearning fine-tunes on D_r.")
        per_epoch = -(-n_r // job.batch_size)
        N = job.epochs * per_epoch
        plan = self.plan(N)
        T, sigma = plan["T"], plan["sigma"]

        def retain_stream() -> Iterator[Batch]:
            while True:  # shared by noisy phase and fine-tuning: the loader continues mid-epoch
                yield from job.batches("retain")

        stream = retain_stream()
        if self.noise_source == "secure":  # OS entropy, never stored: the noise cannot be replayed
            gen = torch.Generator(device=params[0].device)
            gen.manual_seed(secrets.randbits(63) if job.dist is None else job.dist.secure_seed())  # one for all ranks
        else:
            gen = torch_generator(ctx.seed, "certified-noise", params[0].device)

        retain = job.retain_objective()

        def loss_fn(m: nn.Module, batch: Batch) -> torch.Tensor:
            return retain(m, batch, ctx)

        noisy_phase(model, params, stream, loss_fn, variant=self.variant, T=T, sigma=sigma, gamma=self.gamma,
                          lam=self.lam, C0=self.C0, C1=self.C1, C2=self.C2, sigma0=self.sigma0, generator=gen,
                          on_noise=self.on_noise, on_step=lambda t: ctx.report((t + 1) / N))
        ctx.counters.optimizer_steps += T
        if self.buffers == "reset_after_noise":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
                    m.reset_running_stats()

        common = {
            "noise": {"fresh_per_step": True, "added_to": "parameters", "generator": "torch.Generator",
                      "source": "os-entropy" if self.noise_source == "secure" else "run-seed",
                      "seed": None if self.noise_source == "secure" else ctx.seed},
            "noisy_output_sha256": weights_sha256(model),
            "clipping": {"norm": "global_l2", "scope": "all_trainable_parameters", "d": d},
            "frozen_params": {"count": frozen, "declared_public": self.frozen_params == "public"},
            "buffers": self.buffers if data_dependent_buffers(model) else "none",
            "post_processing": {"steps": N - T, "epochs": job.epochs, "peak_lr": job.stepper.base_lr["joint"],
                                "schedule": "linear_onecycle(optax defaults)", "data": "D_r"},
            "task": {"n_retain": n_r, "n_forget": len(job.data.forget)},
        }
        if self.variant == "output_perturbation":
            cert = Certificate.output_perturbation(method=self.method, epsilon=self.epsilon, delta=self.delta,
                                                   C0=self.C0, sigma=sigma, accountant=plan["accountant"],
                                                   calibration=self.calibration, **common)
        elif self.variant == "gradient_clip":
            cert = Certificate.gradient_clip(method=self.method, delta=self.delta, C0=self.C0, C1=self.C1,
                                             gamma=self.gamma, lam=self.lam, sigma=sigma, T=T,
                                             T_rule=plan["T_rule"], accounting_mode=plan["accounting_mode"], **common)
        else:
            cert = Certificate.model_clip(method=self.method, epsilon=self.epsilon, delta=self.delta, C2=self.C2,
                                          sigma=sigma, T=T, gamma=self.gamma, lam=self.lam, C0=self.C0,
                                          sigma0=self.sigma0, **common)

        # noise-free fine-tuning on D_r: N − T steps, one-cycle counter restarting at 0 with total N
        for k in range(N - T):
            batch = next(stream)
            job.stepper.set_multiplier(onecycle_multiplier(k, N))
            loss = retain(model, batch, ctx)
            job.stepper.step(loss, "joint")
            ctx.report((T + k + 1) / N)
            if (T + k + 1) % per_epoch == 0:
                job.stepper.end_epoch(f"{self.name} fine-tuning step {k}")
        job.stepper.end_epoch(f"{self.name} fine-tuning end")
        cert.bind(model, job.data.info.get("split_hash"))
        cert.verify(model, allow_uncertified=self.noise_source == "seeded")
        # released with the model: the certificate and counts only; the noisy phase's losses (the first one is the
        # loss of the clipped original) and anything else derived from θ* or D_f stay inside this run
        self.last = {
            "certificate": cert.state_dict(), "epsilon": cert.epsilon, "delta": cert.delta,
            "epsilon_R": cert.epsilon_R, "certified": cert.certified, "noisy_steps": T, "sigma": sigma,
            "finetune_steps": N - T,
        }

