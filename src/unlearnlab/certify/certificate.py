"""The unlearning certificate, saved next to the model as ``<model>.certificate.json`` (docs/certificates.md).

A :class:`Certificate` records the guarantee and every constant it depends on, and is bound to the released
weights (SHA-256 of the model's state) and to the data split (its split hash) by :meth:`Certificate.bind`, which
also seals it with a content digest. :meth:`Certificate.verify` requires the digest and the binding, recomputes the
guarantee from the constants with the named accountant version (relative mismatch above 1e−9 is an error) and, given
the model, checks that it is the certified one and that the preconditions of the guarantee hold: the noise came from
the operating system's entropy (not the run seed) and was added to the parameters, data-dependent buffers were reset
after the noisy phase, the trainable-parameter count matches the clipping, and, with no fine-tuning, the release is
the noisy phase's output itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn

from unlearnlab.certify import accountant as acc
from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import atomic_write_text, tensors_sha256

SCHEMA = "unlearnlab.certificate/1"
VARIANTS = ("gradient_clip", "model_clip", "output_perturbation", "dpsgd_group")
RTOL = 1e-9
EPSILON_R_NOTE = "reference-style, not a guarantee"


class CertificateError(UnlearnlabError):
    """A certificate that does not verify (tampered, inconsistent or unsupported)."""


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("unlearnlab")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def certificate_path(model_path: str | Path) -> Path:
    """``dir/model.pt`` → ``dir/model.certificate.json`` (a path already ending so is returned unchanged)."""
    p = Path(model_path)
    if p.name.endswith(".certificate.json"):
        return p
    return p.with_name(p.stem + ".certificate.json") if p.suffix else p.with_name(p.name + ".certificate.json")


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the model's state (parameters and buffers): names, dtypes, shapes and bytes, in name order."""
    return tensors_sha256(model.state_dict().items())


def _gc_epsilon(sigma: float, T: int, delta: float, C0: float, C1: float, gamma: float, lam: float
                ) -> tuple[float, float, float]:
    """The accountant's (ε, α*, ρ) with ε floored at 0: the conversion's bound can fall below 0 for a very large σ,
    and an (ε, δ) guarantee with ε < 0 implies the (0, δ) one."""
    eps, alpha, rho = acc.gc_epsilon(sigma, T, delta, C0, C1, gamma, lam)
    return max(eps, 0.0), alpha, rho


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


@dataclass
class Certificate:
    """An (ε, δ)-unlearning certificate for the released final model."""

    method: str
    variant: str
    epsilon: float
    delta: float
    constants: dict[str, Any]
    accountant: dict[str, Any]
    accounting_mode: str = "certified"
    epsilon_R: float | None = None
    epsilon_R_note: str | None = None
    rho: float | None = None
    alpha_opt: float | None = None
    conversion: str | None = None
    delta_trajectory: list[float] | None = None
    noise: dict[str, Any] = field(default_factory=dict)
    clipping: dict[str, Any] = field(default_factory=dict)
    frozen_params: dict[str, Any] = field(default_factory=lambda: {"count": 0, "declared_public": False})
    buffers: str = "none"
    post_processing: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 of the noisy phase's output, of the released weights, and the data split the run used
    noisy_output_sha256: str | None = None
    model_sha256: str | None = None
    split_hash: str | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema: str = SCHEMA
    digest: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def gradient_clip(cls, *, method: str, delta: float, C0: float, C1: float, gamma: float, lam: float,
                      sigma: float, T: int, T_rule: str = "reference", accounting_mode: str = "certified",
                      **extra: Any) -> Certificate:
        """Certificate of the gradient-clipping variant: ε from the realised ρ (tight conversion)."""
        eps, alpha, rho = _gc_epsilon(sigma, T, delta, C0, C1, gamma, lam)
        consts = {"C0": C0, "C1": C1, "C2": None, "gamma": gamma, "lambda": lam, "sigma": sigma, "sigma0": 0.0,
                  "T": int(T), "T_rule": T_rule}
        return cls(method=method, variant="gradient_clip", epsilon=eps, delta=delta, constants=consts,
                   accountant={"name": acc.PABI_NAME, "version": acc.PABI_VERSION,
                               "package_version": _package_version()},
                   accounting_mode=accounting_mode, epsilon_R=rho, epsilon_R_note=EPSILON_R_NOTE, rho=rho,
                   alpha_opt=alpha, conversion=acc.CONVERSION, **extra)

    @classmethod
    def model_clip(cls, *, method: str, epsilon: float, delta: float, C2: float, sigma: float, T: int,
                   gamma: float, lam: float, C0: float, sigma0: float = 0.0, **extra: Any) -> Certificate:
        """Certificate of the model-clipping variant: ε fixed, δ_T from the hockey-stick recursion."""
        traj = acc.mc_trajectory(epsilon, C2, sigma, T, sigma0, C0)
        if traj[-1] > delta:
            raise CertificateError(f"model clipping reached only delta_T={traj[-1]:.4g} > delta={delta} after "
                                   f"T={T} steps; no certificate (raise sigma, lower C2 or allow more steps)")
        consts = {"C0": C0, "C1": None, "C2": C2, "gamma": gamma, "lambda": lam, "sigma": sigma, "sigma0": sigma0,
                  "T": int(T), "T_rule": "delta_target"}
        return cls(method=method, variant="model_clip", epsilon=epsilon, delta=delta, constants=consts,
                   accountant={"name": acc.HOCKEY_NAME, "version": acc.HOCKEY_VERSION,
                               "package_version": _package_version()},
                   delta_trajectory=traj, **extra)

    @classmethod
    def output_perturbation(cls, *, method: str, epsilon: float, delta: float, C0: float, sigma: float,
                            accountant: str, calibration: str = "auto", **extra: Any) -> Certificate:
        """Certificate of output perturbation: x = clip_{C0}(x̂) + N(0, σ²I), sensitivity 2C0 (docs/certificates.md).

        ``accountant`` is ``gaussian-classic`` (valid for ε ≤ 1) or ``gaussian-analytic``; the certificate is
        verified before it is returned (an insufficient σ raises :class:`CertificateError`).
        """
        consts = {"C0": C0, "C1": None, "C2": None, "gamma": None, "lambda": None, "sigma": sigma,
                  "sigma0": None, "T": 0, "T_rule": None, "sensitivity": 2 * C0, "calibration": calibration}
        cert = cls(method=method, variant="output_perturbation", epsilon=epsilon, delta=delta, constants=consts,
                   accountant={"name": accountant, "version": acc.GAUSSIAN_VERSION,
                               "package_version": _package_version()}, **extra)
        cert.check_guarantee()
        return cert

    # ------------------------------------------------------------------ (de)serialisation
    def state_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(state) - names
        if unknown:
            raise CertificateError(f"unknown certificate fields {sorted(unknown)}")
        for k, v in state.items():
            setattr(self, k, v)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Certificate:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(state) - names
        if unknown:
            raise CertificateError(f"unknown certificate fields {sorted(unknown)}")
        return cls(**state)

    def compute_digest(self) -> str:
        body = {k: v for k, v in self.state_dict().items() if k != "digest"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()

    def to_json(self) -> str:
        if self.digest is None:
            raise CertificateError("an unsealed certificate cannot be saved: bind it to the released model first")
        return json.dumps(self.state_dict(), indent=2, sort_keys=True, allow_nan=False)

    @property
    def certified(self) -> bool:
        """Whether the noise came from the OS entropy (a replayable run-seed noise certifies nothing)."""
        return self.noise.get("source") == "os-entropy"

    def bind(self, model: nn.Module, split_hash: str | None) -> None:
        """Tie the certificate to the released ``model`` and the data split, then seal it with its digest."""
        self.model_sha256 = weights_sha256(model)
        self.split_hash = split_hash
        self.digest = self.compute_digest()

    def save(self, model_path: str | Path) -> Path:
        """Write ``<model>.certificate.json`` next to ``model_path`` atomically; returns the path."""
        path = certificate_path(model_path)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> Certificate:
        cert = cls.from_dict(json.loads(certificate_path(path).read_text(encoding="utf-8")))
        if verify:
            cert.verify()
        return cert

    # ------------------------------------------------------------------ verification
    def verify(self, model: nn.Module | None = None, allow_uncertified: bool = False) -> bool:
        """Check digest, binding and guarantee (and, with ``model``, the release and the preconditions).

        Raises :class:`CertificateError` naming the first failure. ``allow_uncertified`` accepts a certificate of
        reproducible (run-seed) noise, which certifies nothing, as a record of a research run.
        """
        if self.schema != SCHEMA:
            raise CertificateError(f"unsupported certificate schema {self.schema!r} (expected {SCHEMA!r})")
        if self.digest is None:
            raise CertificateError("the certificate has no digest: it was not sealed by unlearnlab (or the digest was "
                                   "removed); it cannot be trusted")
        if self.digest != self.compute_digest():
            raise CertificateError("certificate content does not match its digest (file edited after writing)")
        if self.model_sha256 is None:
            raise CertificateError("the certificate is not bound to a released model (no model_sha256)")
        if not self.certified and not allow_uncertified:
            raise CertificateError("not certified: the noise was derived from the run seed (noise_source='seeded'), "
                                   "so anyone with the seed can replay it; rerun with noise_source='secure'")
        self.check_guarantee()
        if model is not None:
            self.check_release(model)
        return True

    def check_release(self, model: nn.Module) -> None:
        """``model`` is the certified release and the preconditions of the guarantee hold for it."""
        if weights_sha256(model) != self.model_sha256:
            raise CertificateError("this model is not the one the certificate was issued for (weights differ)")
        if self.noise.get("added_to") != "parameters":
            raise CertificateError(f"the guarantee needs noise on the parameters, not {self.noise.get('added_to')!r}")
        data_buffers = [n for n, m in model.named_modules()
                        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
        if data_buffers and self.buffers != "reset_after_noise":
            raise CertificateError(f"the model has data-dependent buffers ({', '.join(data_buffers[:3])}) that the "
                                   "noisy phase did not reset: they would carry D_f into the release")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if self.clipping.get("d") not in (None, trainable):
            raise CertificateError(f"the certificate clipped {self.clipping.get('d')} parameter entries, the model "
                                   f"has {trainable} trainable ones")
        if self.post_processing.get("data", "D_r") != "D_r":
            raise CertificateError("post-processing may use D_r only")
        if self.post_processing.get("steps") == 0 and self.noisy_output_sha256 not in (None, self.model_sha256):
            raise CertificateError("with no fine-tuning the release must be the noisy phase's output, and it is not")

    def check_guarantee(self) -> bool:
        """Recompute the guarantee from the stored constants; raise :class:`CertificateError` on a mismatch."""
        if not (0 < self.delta < 1) or not (isinstance(self.epsilon, (int, float)) and self.epsilon >= 0
                                            and math.isfinite(self.epsilon)):
            raise CertificateError(f"invalid (epsilon, delta) = ({self.epsilon}, {self.delta})")
        c = self.constants
        try:
            if self.variant == "gradient_clip":
                self._check_accountant(acc.PABI_NAME, acc.PABI_VERSION)
                eps, _alpha, rho = _gc_epsilon(c["sigma"], c["T"], self.delta, c["C0"], c["C1"], c["gamma"],
                                               c["lambda"])
                self._expect("rho", rho, self.rho)
                self._expect("epsilon", eps, self.epsilon)
                if self.epsilon_R is not None:
                    self._expect("epsilon_R", rho, self.epsilon_R)
                if self.conversion != acc.CONVERSION:
                    raise CertificateError(f"unknown conversion {self.conversion!r}")
            elif self.variant == "model_clip":
                self._check_accountant(acc.HOCKEY_NAME, acc.HOCKEY_VERSION)
                traj = acc.mc_trajectory(self.epsilon, c["C2"], c["sigma"], c["T"], c.get("sigma0", 0.0),
                                         c.get("C0"))
                stored = self.delta_trajectory or []
                if len(stored) != len(traj):
                    raise CertificateError(f"delta_trajectory has {len(stored)} entries, recomputed {len(traj)}")
                for i, (a, b) in enumerate(zip(traj, stored)):
                    self._expect(f"delta_trajectory[{i}]", a, b)
                if traj[-1] > self.delta:
                    raise CertificateError(f"delta_T={traj[-1]:.4g} exceeds the certified delta={self.delta}")
            elif self.variant == "output_perturbation":
                name = self.accountant.get("name")
                if self.accountant.get("version", acc.GAUSSIAN_VERSION) != acc.GAUSSIAN_VERSION:
                    raise CertificateError(f"unsupported {name!r} version {self.accountant.get('version')!r}")
                sigma, sens = c["sigma"], 2 * c["C0"]
                if not (sigma > 0 and sens > 0 and math.isfinite(sigma) and math.isfinite(sens)):
                    raise CertificateError(f"output perturbation needs sigma > 0 and C0 > 0 (got {sigma}, {c['C0']})")
                if c.get("sensitivity") is not None:
                    self._expect("sensitivity", sens, c["sensitivity"])
                if name == "gaussian-analytic":
                    if acc.theta(self.epsilon, sens / sigma) > self.delta * (1 + RTOL):
                        raise CertificateError("sigma too small for (epsilon, delta) under the analytic Gaussian")
                elif name == "gaussian-classic":
                    need = acc.gaussian_classic_sigma(self.epsilon, self.delta, sens)
                    if sigma < need * (1 - RTOL):
                        raise CertificateError(f"sigma={sigma} below the classic Gaussian sigma {need}")
                else:
                    raise CertificateError(f"unknown accountant {name!r} for output_perturbation")
            else:
                raise CertificateError(f"cannot verify variant {self.variant!r} (supported: gradient_clip, "
                                       "model_clip, output_perturbation)")
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, CertificateError):
                raise
            raise CertificateError(f"certificate constants are invalid: {e}") from e
        return True

    def _check_accountant(self, name: str, version: int) -> None:
        if self.accountant.get("name") != name or self.accountant.get("version") != version:
            raise CertificateError(f"accountant {self.accountant.get('name')!r} v{self.accountant.get('version')} "
                                   f"does not match variant {self.variant!r} ({name} v{version})")

    @staticmethod
    def _expect(what: str, recomputed: float, stored: float | None) -> None:
        if stored is None or not math.isfinite(stored) or not _close(recomputed, stored):
            raise CertificateError(f"{what} mismatch: stored {stored!r}, recomputed {recomputed!r}")
