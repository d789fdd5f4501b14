"""The unlearning certificate (spec certified.md §10), saved next to the model as ``<model>.certificate.json``.

A :class:`Certificate` records the guarantee and every constant it depends on; :meth:`Certificate.verify`
recomputes the guarantee from those constants with the named accountant version and raises
:class:`CertificateError` on a relative mismatch above 1e−9 (or on any edit, via a content digest).
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

from unlearnlab.certify import accountant as acc
from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import atomic_write_text

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
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema: str = SCHEMA
    digest: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def gradient_clip(cls, *, method: str, delta: float, C0: float, C1: float, gamma: float, lam: float,
                      sigma: float, T: int, T_rule: str = "reference", accounting_mode: str = "certified",
                      **extra: Any) -> Certificate:
        """Certificate of the gradient-clipping variant: ε from the realised ρ (tight conversion)."""
        eps, alpha, rho = acc.gc_epsilon(sigma, T, delta, C0, C1, gamma, lam)
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
        """Certificate of output perturbation (certified.md §8): x = clip_{C0}(x̂) + N(0, σ²I), sensitivity 2C0.

        ``accountant`` is ``gaussian-classic`` (valid for ε ≤ 1) or ``gaussian-analytic``; the certificate is
        verified before it is returned (an insufficient σ raises :class:`CertificateError`).
        """
        consts = {"C0": C0, "C1": None, "C2": None, "gamma": None, "lambda": None, "sigma": sigma,
                  "sigma0": None, "T": 0, "T_rule": None, "sensitivity": 2 * C0, "calibration": calibration}
        cert = cls(method=method, variant="output_perturbation", epsilon=epsilon, delta=delta, constants=consts,
                   accountant={"name": accountant, "version": acc.GAUSSIAN_VERSION,
                               "package_version": _package_version()}, **extra)
        cert.verify()
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
        self.digest = self.compute_digest()
        return json.dumps(self.state_dict(), indent=2, sort_keys=True, allow_nan=False)

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
    def verify(self) -> bool:
        """Recompute the guarantee from the stored constants; raise :class:`CertificateError` on a mismatch."""
        if self.schema != SCHEMA:
            raise CertificateError(f"unsupported certificate schema {self.schema!r} (expected {SCHEMA!r})")
        if self.digest is not None and self.digest != self.compute_digest():
            raise CertificateError("certificate content does not match its digest (file edited after writing)")
        if not (0 < self.delta < 1) or not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0):
            raise CertificateError(f"invalid (epsilon, delta) = ({self.epsilon}, {self.delta})")
        c = self.constants
        try:
            if self.variant == "gradient_clip":
                self._check_accountant(acc.PABI_NAME, acc.PABI_VERSION)
                eps, _alpha, rho = acc.gc_epsilon(c["sigma"], c["T"], self.delta, c["C0"], c["C1"], c["gamma"],
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
