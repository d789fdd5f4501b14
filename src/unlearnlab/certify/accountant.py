"""Accountants for certified unlearning by noisy clipped fine-tuning (docs/certificates.md, "Accounting").

Everything here is a pure float64 function of Python floats, plus two thin stateful wrappers
(:class:`PabiRdpAccountant`, :class:`HockeyStickAccountant`) in the style of Opacus' accountants.

Gradient clipping (accountant ``pabi-rdp`` v1): shifted-Rényi privacy amplification by iteration gives
``D_α(x_T ‖ x'_T) ≤ α·ρ`` with ``ρ = S_T² / (2σ²W_T)``; the certified ε is the tight RDP → (ε, δ) conversion
(Canonne–Kamath–Steinke 2020, ``ckst20-tight``) minimised over α > 1.

Model clipping (accountant ``hockey-stick-contraction`` v1): ``δ_{t+1} = δ_t·θ_{ε̃_t}(2C2/σ)`` with
``ε̃_t = ln(1 + (e^ε − 1)/δ_t)`` and θ_ε the exact hockey-stick divergence of a Gaussian mechanism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_ndtr, ndtr

PABI_NAME = "pabi-rdp"
PABI_VERSION = 1
HOCKEY_NAME = "hockey-stick-contraction"
HOCKEY_VERSION = 1
CONVERSION = "ckst20-tight"
GAUSSIAN_CLASSIC_NAME = "gaussian-classic"
GAUSSIAN_ANALYTIC_NAME = "gaussian-analytic"
GAUSSIAN_VERSION = 1
CALIBRATIONS = ("auto", "classic", "analytic")

_LN10 = math.log(10.0)
_U_GRID = np.linspace(-6.0, 6.0, 4001)


# ----------------------------------------------------------------------------------------- validation
def _check_gc(C0: float, C1: float, gamma: float, lam: float) -> None:
    if not (C0 > 0 and C1 > 0):
        raise ValueError(f"C0 and C1 must be > 0 (got C0={C0}, C1={C1})")
    if not gamma > 0:
        raise ValueError(f"step size gamma must be > 0 (got {gamma})")
    if not lam >= 0:
        raise ValueError(f"lambda must be >= 0 (got {lam})")
    if not gamma * lam < 1:
        raise ValueError(f"gamma*lambda must be < 1 (got {gamma * lam}); lower gamma or lambda")


def _check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1) (got {delta})")


# ----------------------------------------------------------------------------- gradient clipping (PABI)
def gc_T_rule(C0: float, C1: float, gamma: float, lam: float) -> int:
    """Reference T rule: T = ⌈C0/(γC1)⌉; if λ > 0, T' = ⌈ln(2λC0/C1)/(γλ)⌉ replaces T when 0 < T' < T.

    Why these values: docs/certificates.md, "Gradient clipping: `pabi-rdp` v1", number of noisy steps.
    """
    _check_gc(C0, C1, gamma, lam)
    T = math.ceil(C0 / (gamma * C1))
    if lam > 0:
        arg = 2 * lam * C0 / C1
        if arg > 0:
            Tp = math.ceil(math.log(arg) / (gamma * lam))
            if 0 < Tp < T:
                T = Tp
    return max(int(T), 1)


def gc_shift(T: int, C0: float, C1: float, gamma: float, lam: float) -> float:
    """S_T = c^T·2C0 + 2γC1·Σ_{k<T} c^k (closed forms for λ > 0 and λ = 0)."""
    if T < 1:
        raise ValueError(f"T must be >= 1 (got {T})")
    if lam == 0:
        return 2 * C0 + 2 * gamma * C1 * T
    c = 1.0 - gamma * lam
    cT = c**T
    return cT * 2 * C0 + (2 * C1 / lam) * (1 - cT)


def gc_weight(T: int, gamma: float, lam: float) -> float:
    """W_T = Σ_{k<T} c^{2k} = (1 − c^{2T})/(1 − c²) for λ > 0, T for λ = 0."""
    if T < 1:
        raise ValueError(f"T must be >= 1 (got {T})")
    if lam == 0:
        return float(T)
    gl = gamma * lam
    c = 1.0 - gl
    # 1 - c^2 = gl(2 - gl), computed without cancellation; 1 - c^{2T} via expm1
    return -math.expm1(2 * T * math.log1p(-gl)) / (gl * (2 - gl)) if c > 0 else 1.0


def gc_rho(sigma: float, T: int, C0: float, C1: float, gamma: float, lam: float) -> float:
    """RDP constant ρ = S_T²/(2σ²W_T) of the gradient-clipping variant with constant σ."""
    _check_gc(C0, C1, gamma, lam)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (got {sigma})")
    S = gc_shift(T, C0, C1, gamma, lam)
    return S * S / (2 * sigma * sigma * gc_weight(T, gamma, lam))


def gc_sigma_for_rho(rho: float, T: int, C0: float, C1: float, gamma: float, lam: float) -> float:
    """Inverse of :func:`gc_rho` in σ: σ = S_T/√(2ρW_T)."""
    _check_gc(C0, C1, gamma, lam)
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (got {rho})")
    return gc_shift(T, C0, C1, gamma, lam) / math.sqrt(2 * rho * gc_weight(T, gamma, lam))


# ---------------------------------------------------------------------------- RDP → (ε, δ) conversion
def rdp_epsilon_at(alpha: float, rho: float, delta: float) -> float:
    """ε(α) = αρ + ln((α−1)/α) − (ln δ + ln α)/(α−1) (tight conversion, CKS20 / Balle et al. 2020)."""
    am1 = alpha - 1.0
    la = math.log(alpha)
    return alpha * rho + (math.log(am1) - la) - (math.log(delta) + la) / am1


def _eps_u(u: float, rho: float, delta: float) -> float:
    am1 = 10.0**u
    la = math.log1p(am1)
    return (1.0 + am1) * rho + (u * _LN10 - la) - (math.log(delta) + la) / am1


def rdp_to_dp(rho: float, delta: float) -> tuple[float, float]:
    """Certified ε = min_{α>1} ε(α) for D_α ≤ αρ; returns (ε, α*).

    α = 1 + 10^u on u ∈ linspace(−6, 6, 4001), then bounded Brent refinement between the grid neighbours of the
    minimiser; the smaller of grid and refined value is returned. The result never exceeds ρ + 2√(ρ ln(1/δ)).
    """
    _check_delta(delta)
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (got {rho})")
    am1 = np.power(10.0, _U_GRID)
    la = np.log1p(am1)
    vals = (1.0 + am1) * rho + (_U_GRID * _LN10 - la) - (math.log(delta) + la) / am1
    i = int(np.argmin(vals))
    best_u, best = float(_U_GRID[i]), float(vals[i])
    lo, hi = float(_U_GRID[max(i - 1, 0)]), float(_U_GRID[min(i + 1, len(_U_GRID) - 1)])
    if hi > lo:
        res = minimize_scalar(_eps_u, bounds=(lo, hi), args=(rho, delta), method="bounded",
                              options={"xatol": 1e-12})
        val = float(res.fun)
        if val < best:
            best_u, best = float(res.x), val
    return best, 1.0 + 10.0**best_u


def rdp_epsilon(rho: float, delta: float) -> float:
    """Certified ε of a ρ-RDP-for-all-orders mechanism (see :func:`rdp_to_dp`)."""
    return rdp_to_dp(rho, delta)[0]


def mironov_epsilon(rho: float, delta: float) -> float:
    """Mironov's (looser) conversion ρ + 2√(ρ ln(1/δ)), an upper bound on :func:`rdp_epsilon`."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """ρ* = largest ρ with rdp_epsilon(ρ, δ) ≤ ε: bisection on ln ρ ∈ [−30, 15] to relative 1e−12 (feasible end)."""
    _check_delta(delta)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (got {epsilon})")
    lo, hi = -30.0, 15.0
    if rdp_epsilon(math.exp(lo), delta) > epsilon:
        raise ValueError(f"epsilon={epsilon} unreachable at delta={delta} (rho < e^-30)")
    if rdp_epsilon(math.exp(hi), delta) <= epsilon:
        return math.exp(hi)
    while hi - lo > 1e-12:  # on ln ρ: an absolute 1e-12 is a relative 1e-12 on ρ
        mid = 0.5 * (lo + hi)
        if rdp_epsilon(math.exp(mid), delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return math.exp(lo)


def reference_epsilon_R_log(epsilon_R: float, delta: float) -> float:
    """The value the reference logs: min_{α∈[1.001,1000]} [ε_R + ln((α−1)/α) − (ln δ + ln α)/(α−1)] (NOT a bound)."""
    alphas = np.linspace(1.001, 1000.0, 100000)
    vals = epsilon_R + np.log((alphas - 1) / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1)
    return float(vals.min())


@dataclass(frozen=True)
class GCPlan:
    """Result of calibrating the gradient-clipping variant."""

    T: int
    sigma: float
    rho: float
    epsilon: float  # certified (tight conversion)
    alpha_opt: float
    epsilon_R: float  # = ρ, reference-style, not a guarantee
    S_T: float
    T_rule: str  # "reference" | "user"
    accounting_mode: str  # "certified" | "reference"


def gc_calibrate(epsilon: float, delta: float, C0: float, C1: float, gamma: float, lam: float,
                 T: int | None = None, accounting: str = "certified") -> GCPlan:
    """Inverse accountant (ε, δ, C0, C1, γ, λ[, T]) → (T, σ).

    ``accounting="certified"``: ε is the certified ε; σ = S_T/√(2ρ*W_T) with ρ* = :func:`rho_for_epsilon`.
    ``accounting="reference"``: ``epsilon`` is the reference's ε_R and σ is the reference's formula (ρ = ε_R for
    λ > 0, ρ = 2ε_R for λ = 0); the certified ε of the realised ρ is still reported.
    """
    _check_gc(C0, C1, gamma, lam)
    _check_delta(delta)
    if T is None:
        T_used, rule = gc_T_rule(C0, C1, gamma, lam), "reference"
    else:
        T_used, rule = int(T), "user"
        if T_used < 1:
            raise ValueError(f"T must be >= 1 (got {T})")
    S = gc_shift(T_used, C0, C1, gamma, lam)
    if accounting == "certified":
        rho_star = rho_for_epsilon(epsilon, delta)
        sigma = gc_sigma_for_rho(rho_star, T_used, C0, C1, gamma, lam)
    elif accounting == "reference":
        if not epsilon > 0:
            raise ValueError(f"epsilon_R must be > 0 (got {epsilon})")
        if lam > 0:
            gl = gamma * lam
            c = 1 - gl
            sigma = math.sqrt(S * S * gl * (2 - gl) / (2 * epsilon * (1 - c ** (2 * T_used))))
        else:
            sigma = math.sqrt((C0 + gamma * C1 * T_used) ** 2 / (epsilon * T_used))
    else:
        raise ValueError(f"accounting must be 'certified' or 'reference' (got {accounting!r})")
    rho = gc_rho(sigma, T_used, C0, C1, gamma, lam)
    eps, alpha = rdp_to_dp(rho, delta)
    return GCPlan(T=T_used, sigma=sigma, rho=rho, epsilon=eps, alpha_opt=alpha, epsilon_R=rho, S_T=S,
                  T_rule=rule, accounting_mode=accounting)


def gc_epsilon(sigma: float, T: int, delta: float, C0: float, C1: float, gamma: float, lam: float
               ) -> tuple[float, float, float]:
    """Forward accountant: (σ, T, δ, constants) → (certified ε, α*, ρ)."""
    rho = gc_rho(sigma, T, C0, C1, gamma, lam)
    eps, alpha = rdp_to_dp(rho, delta)
    return eps, alpha, rho


# ------------------------------------------------------------------- model clipping (hockey-stick)
def theta(epsilon: float, r: float) -> float:
    """θ_ε(r) = Q(ε/r − r/2) − e^ε·Q(ε/r + r/2): exact δ(ε) of a Gaussian mechanism with sensitivity/σ = r."""
    if not r > 0:
        raise ValueError(f"r must be > 0 (got {r})")
    a = epsilon / r - r / 2
    b = epsilon / r + r / 2
    log1 = float(log_ndtr(-a))
    log2 = epsilon + float(log_ndtr(-b))
    if log1 == -math.inf:
        return 0.0
    if log2 >= log1:
        return 0.0
    val = math.exp(log1) * -math.expm1(log2 - log1)
    return min(1.0, max(0.0, val))


def theta_naive(epsilon: float, r: float) -> float:
    """Direct formula (for tests)."""
    return float(ndtr(-(epsilon / r - r / 2)) - math.exp(epsilon) * ndtr(-(epsilon / r + r / 2)))


def _check_mc(epsilon: float, C2: float, sigma: float) -> None:
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (got {epsilon})")
    if not (C2 > 0 and sigma > 0):
        raise ValueError(f"C2 and sigma must be > 0 (got C2={C2}, sigma={sigma})")


def mc_delta0(epsilon: float, sigma0: float = 0.0, C0: float | None = None) -> float:
    """δ_0 = 1 if σ₀ = 0, else θ_ε(2C0/σ₀)."""
    if sigma0 == 0:
        return 1.0
    if C0 is None or not C0 > 0:
        raise ValueError("C0 > 0 is required when sigma0 > 0")
    return theta(epsilon, 2 * C0 / sigma0)


def mc_step(delta_t: float, epsilon: float, r: float) -> float:
    """One step of the recursion δ_{t+1} = δ_t·θ_{ε̃_t}(r), ε̃_t = log1p(expm1(ε)/δ_t)."""
    if delta_t <= 0:
        return 0.0
    eps_t = math.log1p(math.expm1(epsilon) / delta_t)
    return delta_t * theta(eps_t, r)


def mc_trajectory(epsilon: float, C2: float, sigma: float, T: int, sigma0: float = 0.0,
                  C0: float | None = None) -> list[float]:
    """[δ_0, δ_1, …, δ_T] for T noisy model-clipping steps."""
    _check_mc(epsilon, C2, sigma)
    r = 2 * C2 / sigma
    traj = [mc_delta0(epsilon, sigma0, C0)]
    for _ in range(int(T)):
        traj.append(mc_step(traj[-1], epsilon, r))
    return traj


def mc_steps(epsilon: float, delta: float, C2: float, sigma: float, sigma0: float = 0.0,
             C0: float | None = None, max_steps: int = 1_000_000) -> tuple[int, list[float]]:
    """T = min{t ≥ 0 : δ_t ≤ δ} by simulation; returns (T, [δ_0 … δ_T]). Raises if not reached in max_steps."""
    _check_mc(epsilon, C2, sigma)
    _check_delta(delta)
    r = 2 * C2 / sigma
    traj = [mc_delta0(epsilon, sigma0, C0)]
    while traj[-1] > delta:
        if len(traj) - 1 >= max_steps:
            raise ValueError(f"model clipping does not reach delta={delta} within {max_steps} steps "
                             f"(delta_T={traj[-1]:.4g}); raise sigma or lower C2")
        nxt = mc_step(traj[-1], epsilon, r)
        if nxt >= traj[-1] and len(traj) > 1:
            raise ValueError(f"model clipping stalls at delta_t={nxt:.4g} > delta={delta}; raise sigma or lower C2")
        traj.append(nxt)
    return len(traj) - 1, traj


def mc_sigma(epsilon: float, delta: float, C2: float, T: int, sigma0: float = 0.0,
             C0: float | None = None) -> float:
    """Smallest σ with δ_T ≤ δ after T steps (bisection on ln σ; δ_T falls with σ)."""
    _check_delta(delta)
    if T < 1 and sigma0 == 0:
        raise ValueError("T must be >= 1 when sigma0 = 0")

    def ok(s: float) -> bool:
        return mc_trajectory(epsilon, C2, s, T, sigma0, C0)[-1] <= delta

    lo, hi = math.log(C2) - 10, math.log(C2) + 10
    while ok(math.exp(lo)):
        lo -= 10
    while not ok(math.exp(hi)):
        hi += 10
        if hi > math.log(C2) + 200:
            raise ValueError("no sigma reaches delta")
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if ok(math.exp(mid)):
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


# ------------------------------------------------------------------------- Gaussian (output perturbation)
def gaussian_classic_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Classic σ = √(2 ln(1.25/δ))·Δ/ε; a certificate only for ε ≤ 1."""
    if not 0 < epsilon <= 1:
        raise ValueError(f"classic Gaussian calibration is valid only for 0 < epsilon <= 1 (got {epsilon}); "
                         "use gaussian_analytic_sigma")
    _check_delta(delta)
    return math.sqrt(2 * math.log(1.25 / delta)) * sensitivity / epsilon


def gaussian_analytic_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Smallest σ with θ_ε(Δ/σ) ≤ δ (bisection on ln σ to 1e−12)."""
    _check_delta(delta)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (got {epsilon})")
    lo, hi = math.log(sensitivity) - 40, math.log(sensitivity) + 40
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if theta(epsilon, sensitivity / math.exp(mid)) <= delta:
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def gaussian_calibrate(epsilon: float, delta: float, sensitivity: float,
                       calibration: str = "auto") -> tuple[float, str]:
    """(σ, accountant name) of a one-shot Gaussian mechanism with ℓ2 ``sensitivity`` (docs/certificates.md, "Output
    perturbation: `gaussian-classic` / `gaussian-analytic` v1").

    ``"auto"``: the classic σ where it is valid (ε ≤ 1, ``gaussian-classic``), the analytic σ otherwise
    (``gaussian-analytic``); ``"analytic"``: analytic for every ε; ``"classic"``: classic, an error for ε > 1.
    """
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration={calibration!r}: use one of {', '.join(CALIBRATIONS)}")
    if not sensitivity > 0:
        raise ValueError(f"sensitivity must be > 0 (got {sensitivity})")
    if calibration == "classic" or (calibration == "auto" and 0 < epsilon <= 1):
        return gaussian_classic_sigma(epsilon, delta, sensitivity), GAUSSIAN_CLASSIC_NAME
    return gaussian_analytic_sigma(epsilon, delta, sensitivity), GAUSSIAN_ANALYTIC_NAME


# ------------------------------------------------------------------------------ stateful accountants
@dataclass
class PabiRdpAccountant:
    """Stateful gradient-clipping accountant: call :meth:`step` once per noisy step (constant σ)."""

    C0: float
    C1: float
    gamma: float
    lam: float
    sigma: float
    steps: int = 0
    name: str = PABI_NAME
    version: int = PABI_VERSION

    def __post_init__(self) -> None:
        _check_gc(self.C0, self.C1, self.gamma, self.lam)
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0 (got {self.sigma})")

    def step(self, n: int = 1) -> None:
        self.steps += int(n)

    def get_rho(self) -> float:
        if self.steps < 1:
            return math.inf
        return gc_rho(self.sigma, self.steps, self.C0, self.C1, self.gamma, self.lam)

    def get_epsilon(self, delta: float) -> float:
        if self.steps < 1:
            return math.inf
        return rdp_epsilon(self.get_rho(), delta)

    def state_dict(self) -> dict:
        return {"C0": self.C0, "C1": self.C1, "gamma": self.gamma, "lam": self.lam, "sigma": self.sigma,
                "steps": self.steps, "name": self.name, "version": self.version}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


@dataclass
class HockeyStickAccountant:
    """Stateful model-clipping accountant: fixed ε, δ_t updated by :meth:`step`."""

    epsilon: float
    C2: float
    sigma: float
    sigma0: float = 0.0
    C0: float | None = None
    trajectory: list[float] = field(default_factory=list)
    name: str = HOCKEY_NAME
    version: int = HOCKEY_VERSION

    def __post_init__(self) -> None:
        _check_mc(self.epsilon, self.C2, self.sigma)
        if not self.trajectory:
            self.trajectory = [mc_delta0(self.epsilon, self.sigma0, self.C0)]

    @property
    def steps(self) -> int:
        return len(self.trajectory) - 1

    def step(self) -> float:
        self.trajectory.append(mc_step(self.trajectory[-1], self.epsilon, 2 * self.C2 / self.sigma))
        return self.trajectory[-1]

    def get_delta(self) -> float:
        return self.trajectory[-1]

    def state_dict(self) -> dict:
        return {"epsilon": self.epsilon, "C2": self.C2, "sigma": self.sigma, "sigma0": self.sigma0,
                "C0": self.C0, "trajectory": list(self.trajectory), "name": self.name, "version": self.version}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, list(v) if k == "trajectory" else v)
