"""Accountants of certified unlearning (docs/certificates.md, "Accounting")."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import norm

from unlearnlab.certify import accountant as acc

DELTA = 1e-5


def rel(a, b):
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------ conversion
def test_tight_conversion_reference_values():
    assert near(acc.rdp_epsilon(1.0, DELTA), "7.077197")
    assert near(acc.rdp_epsilon(2.0, DELTA), "10.724824")


@pytest.mark.parametrize("eps,rho,alpha", [(0.1, "4.3299e-4", "125"), (1, "0.0305566", None), (10, "1.78270", None),
                                           (100, "52.7052", "1.46")])
def test_rho_star_reference_values(eps, rho, alpha):
    r = acc.rho_for_epsilon(eps, DELTA)
    assert near(r, rho)
    e, a = acc.rdp_to_dp(r, DELTA)
    assert e <= eps and rel(e, eps) < 1e-9
    if alpha is not None:
        assert near(a, alpha)


def test_alpha_grid_goes_beyond_1000_for_tiny_eps():
    _, a = acc.rdp_to_dp(acc.rho_for_epsilon(0.005, DELTA), DELTA)
    assert a > 1000


@given(st.floats(1e-6, 1e3), st.floats(1e-12, 0.5))
@settings(max_examples=60, deadline=None)
def test_tight_below_mironov_and_grid(rho, delta):
    e, a = acc.rdp_to_dp(rho, delta)
    assert e <= acc.mironov_epsilon(rho, delta) * (1 + 1e-12)
    assert abs(acc.rdp_epsilon_at(a, rho, delta) - e) <= 1e-9 * max(1.0, abs(e))
    for alpha in (1.01, 1.5, 2, 10, 100):
        assert e <= acc.rdp_epsilon_at(alpha, rho, delta) + 1e-12


@given(st.floats(1e-3, 200.0), st.sampled_from([1e-3, 1e-5, 1e-8]))
@settings(max_examples=40, deadline=None)
def test_rho_star_round_trip(eps, delta):
    r = acc.rho_for_epsilon(eps, delta)
    e = acc.rdp_epsilon(r, delta)
    assert e <= eps and rel(e, eps) < 1e-9
    assert acc.rdp_epsilon(r * (1 + 1e-9), delta) > e


def test_epsilon_monotone_in_delta_and_rho():
    rhos = np.logspace(-4, 2, 25)
    eps = [acc.rdp_epsilon(r, DELTA) for r in rhos]
    assert all(b > a for a, b in zip(eps, eps[1:]))
    deltas = [1e-9, 1e-7, 1e-5, 1e-3, 1e-1]
    e_d = [acc.rdp_epsilon(0.5, d) for d in deltas]
    assert all(b <= a for a, b in zip(e_d, e_d[1:]))


# ------------------------------------------------------------------------------ gradient clipping
ROWS = [  # (C0, C1, gamma, lam) -> T, S_T, sigma_ref (eps_R = 1), certified eps of sigma_ref, sigma for certified 1
    ((0.01, 10, 1e-4, 750), 6, "0.0224907", "0.00775203", "7.0772", "0.0443469"),
    ((0.01, 100, 1e-4, 10), 1, "0.03998", "0.0282701", "7.0772", "0.161724"),
    ((0.1, 10, 1e-3, 50), 10, "0.280253", "0.0772563", "7.0772", "0.441958"),
    ((1, 1, 1e-3, 50), 93, "0.0566170", "0.0125011", "7.0772", "0.0715150"),
    ((20, 10, 1e-2, 50), 11, "0.419336", "0.256790", "7.0772", "1.469012"),
    ((20, 100, 1e-3, 500), 11, "0.419336", "0.256790", "7.0772", "1.469012"),
    ((1, 10, 1e-2, 0), 10, "4", "0.632456", "10.7248", "5.11673"),
]
OTHER = [((0.1, 10, 1e-3, 1), 10, "0.089197"), ((0.1, 10, 1e-2, 1), 1, "0.28143"),
         ((0.1, 100, 1e-4, 50), 10, "0.088213"),
         ((0.1, 100, 1e-3, 200), 1, "0.25456"), ((0.1, 100, 1e-3, 50), 1, "0.27577"), ((1, 10, 1e-2, 50), 5, "0.27570"),
         ((1, 100, 1e-3, 500), 5, "0.27570")]


def near(x: float, spec: str, slack: float = 1.0) -> bool:
    """x equals the spec's printed value to its stated precision (half a unit in the last printed digit)."""
    d = Decimal(spec)
    return abs(x - float(d)) <= slack * 0.5 * 10.0 ** d.as_tuple().exponent + 1e-15


@pytest.mark.parametrize("consts,T,S,sigma_ref,eps_cert,sigma_1", ROWS)
def test_reference_table(consts, T, S, sigma_ref, eps_cert, sigma_1):
    ref = acc.gc_calibrate(1.0, DELTA, *consts, accounting="reference")
    assert ref.T == T and ref.T_rule == "reference"
    assert near(ref.S_T, S)
    assert near(ref.sigma, sigma_ref)
    assert near(ref.epsilon, eps_cert)
    cert = acc.gc_calibrate(1.0, DELTA, *consts)
    assert cert.T == T
    assert near(cert.sigma, sigma_1)
    assert cert.epsilon <= 1.0 and rel(cert.epsilon, 1.0) < 1e-9
    ratio = cert.sigma / ref.sigma
    assert near(ratio, "5.7207" if consts[3] > 0 else "8.0903")


@pytest.mark.parametrize("consts,T,sigma_ref", OTHER)
def test_reference_other_tuples(consts, T, sigma_ref):
    ref = acc.gc_calibrate(1.0, DELTA, *consts, accounting="reference")
    assert ref.T == T
    assert near(ref.sigma, sigma_ref)


def test_reference_mode_rho_equals_eps_R():
    for er, cert in [(0.1, "1.9142"), (10, "30.1109"), (100, "165.6219")]:
        p = acc.gc_calibrate(er, DELTA, 0.1, 10, 1e-3, 50, accounting="reference")
        assert rel(p.rho, er) < 1e-12 and p.epsilon_R == p.rho
        assert near(p.epsilon, cert)
    p0 = acc.gc_calibrate(1.0, DELTA, 1, 10, 1e-2, 0, accounting="reference")
    assert rel(p0.rho, 2.0) < 1e-12  # the reference's lambda = 0 factor 2


def test_reference_logged_value_is_not_a_bound():
    logged = acc.reference_epsilon_R_log(1.0, DELTA)
    assert near(logged, "1.0036", slack=2)  # "≈ ε_R + 0.0036"
    assert acc.rdp_epsilon(1.0, DELTA) > 7 * logged


def test_closed_forms():
    C0, C1, g = 1.0, 10.0, 1e-2
    for T in (1, 5, 17):
        for s in (0.1, 2.0):
            assert rel(acc.gc_rho(s, T, C0, C1, g, 0.0), 2 * (C0 + g * C1 * T) ** 2 / (T * s * s)) < 1e-12
    lam = 50.0
    c = 1 - g * lam
    assert rel(acc.gc_rho(0.3, 1, C0, C1, g, lam), (2 * c * C0 + 2 * g * C1) ** 2 / (2 * 0.09)) < 1e-12
    # S_T and W_T closed forms equal the sums
    for T in (1, 3, 40):
        S = c**T * 2 * C0 + 2 * g * C1 * sum(c**k for k in range(T))
        W = sum(c ** (2 * k) for k in range(T))
        assert rel(acc.gc_shift(T, C0, C1, g, lam), S) < 1e-12
        assert rel(acc.gc_weight(T, g, lam), W) < 1e-12


def test_rho_scaling_and_round_trip_sigma():
    args = (7, 0.1, 10, 1e-3, 50)
    r1 = acc.gc_rho(0.5, *args)
    assert rel(acc.gc_rho(1.0, *args), r1 / 4) < 1e-12
    assert rel(acc.gc_sigma_for_rho(r1, *args), 0.5) < 1e-12


@given(st.floats(0.01, 10), st.floats(0.01, 10), st.sampled_from([1e-4, 1e-3, 1e-2]),
       st.sampled_from([0.0, 1.0, 10.0, 50.0]), st.floats(0.05, 50.0))
@settings(max_examples=40, deadline=None)
def test_gc_round_trip_and_sigma_monotone(C0, C1, g, lam, eps):
    p = acc.gc_calibrate(eps, DELTA, C0, C1, g, lam)
    e, _, _ = acc.gc_epsilon(p.sigma, p.T, DELTA, C0, C1, g, lam)
    assert e <= eps * (1 + 1e-12) and rel(e, eps) < 1e-9
    e_more, _, _ = acc.gc_epsilon(p.sigma * 1.01, p.T, DELTA, C0, C1, g, lam)
    assert e_more < e
    # inverse(forward(sigma)) = sigma
    q = acc.gc_calibrate(e, DELTA, C0, C1, g, lam, T=p.T)
    assert rel(q.sigma, p.sigma) < 1e-9 and q.T_rule == "user"


def test_rho_in_T():
    s = 1.0
    rhos = [acc.gc_rho(s, T, 20, 10, 1e-2, 50) for T in range(1, 60)]  # lambda*C0 >= C1: non-increasing
    assert all(b <= a * (1 + 1e-12) for a, b in zip(rhos, rhos[1:]))
    r = {T: acc.gc_rho(s, T, 1, 10, 1e-2, 0) for T in (9, 10, 11)}  # lambda = 0: minimised at C0/(gamma C1)
    assert r[10] < r[9] and r[10] < r[11]
    grows = [acc.gc_rho(s, T, 0.1, 100, 1e-3, 50) for T in range(1, 30)]  # not monotone in general: grows
    assert all(b > a for a, b in zip(grows, grows[1:]))


def test_gc_errors():
    with pytest.raises(ValueError, match="gamma\\*lambda"):
        acc.gc_calibrate(1, DELTA, 1, 1, 0.1, 10)
    with pytest.raises(ValueError):
        acc.gc_calibrate(1, DELTA, 1, 1, 0.1, 1, accounting="bogus")
    with pytest.raises(ValueError):
        acc.gc_rho(0.0, 3, 1, 1, 0.1, 1)


def test_pabi_stateful_accountant():
    a = acc.PabiRdpAccountant(C0=0.1, C1=10, gamma=1e-3, lam=50, sigma=0.441958)
    assert a.get_epsilon(DELTA) == math.inf
    for _ in range(10):
        a.step()
    assert abs(a.get_epsilon(DELTA) - 1.0) < 1e-5
    b = acc.PabiRdpAccountant(C0=1, C1=1, gamma=1, lam=0.5, sigma=1)
    b.load_state_dict(a.state_dict())
    assert b.get_rho() == a.get_rho()


# ------------------------------------------------------------------------------ hockey-stick / model clipping
def test_theta_values():
    assert near(acc.theta(1, 2), "0.5098617")
    assert near(acc.theta(1, 0.2), "1.7546e-8")
    for r in (0.1, 1.0, 3.0):
        assert abs(acc.theta(0, r) - (2 * norm.cdf(r / 2) - 1)) < 1e-14


@pytest.mark.parametrize("eps,r", [(0.5, 1.0), (1.0, 2.0), (2.0, 0.7), (0.1, 3.0)])
def test_theta_matches_integral(eps, r):
    f = lambda z: max(0.0, norm.pdf(z) - math.exp(eps) * norm.pdf(z - r))  # noqa: E731
    val, _ = quad(f, -40, 40, points=[eps / r + r / 2], limit=400)
    assert abs(acc.theta(eps, r) - val) < 1e-9
    assert abs(acc.theta(eps, r) - acc.theta_naive(eps, r)) < 1e-12


def test_mc_reference_configs():
    T, traj = acc.mc_steps(1, DELTA, 0.001, 0.01)
    assert T == 1 and near(traj[1], "1.7546e-8")
    expect = ["0.509862", "0.216031", "0.0648574", "9.55e-3", "2.48e-4", "2.65e-8"]
    for C2 in (0.01, 0.2, 0.5):
        T, traj = acc.mc_steps(1, DELTA, C2, C2)
        assert T == 6
        for got, want in zip(traj[1:], expect):
            assert near(got, want)
    assert acc.mc_steps(1, DELTA, 0.625, 0.5)[0] == 9
    assert acc.mc_steps(1, DELTA, 0.975, 0.5)[0] == 36


def test_mc_monotone():
    _, traj = acc.mc_steps(1, 1e-9, 0.975, 0.5)
    assert all(b <= a for a, b in zip(traj, traj[1:]))
    Ts_sigma = [acc.mc_steps(1, DELTA, 0.5, s)[0] for s in (0.3, 0.4, 0.5, 0.7, 1.0)]
    assert all(b <= a for a, b in zip(Ts_sigma, Ts_sigma[1:]))
    Ts_C2 = [acc.mc_steps(1, DELTA, c, 0.5)[0] for c in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert all(b >= a for a, b in zip(Ts_C2, Ts_C2[1:]))


@pytest.mark.parametrize("T", [1, 3, 6, 20])
def test_mc_sigma_round_trip(T):
    s = acc.mc_sigma(1.0, DELTA, 0.5, T)
    assert acc.mc_trajectory(1.0, 0.5, s, T)[-1] <= DELTA
    assert acc.mc_trajectory(1.0, 0.5, s * (1 - 1e-9), T)[-1] > DELTA * (1 - 1e-6)
    assert acc.mc_steps(1.0, DELTA, 0.5, s)[0] == T


def test_mc_sigma0_and_stateful():
    assert acc.mc_trajectory(1, 0.5, 0.5, 0, sigma0=0.5, C0=0.5)[0] == acc.theta(1, 2.0)
    h = acc.HockeyStickAccountant(epsilon=1, C2=0.5, sigma=0.5)
    while h.get_delta() > DELTA:
        h.step()
    assert h.steps == 6
    with pytest.raises(ValueError, match="does not reach"):
        acc.mc_steps(1, DELTA, 0.975, 0.5, max_steps=10)


# ------------------------------------------------------------------------------ Gaussian baselines
def test_gaussian_calibration():
    for C0, cl, an in [(0.01, "0.096896", "0.074613"), (0.1, "0.968961", "0.746126"), (1, "9.689611", "7.461263")]:
        assert near(acc.gaussian_classic_sigma(1, DELTA, 2 * C0), cl)
        s = acc.gaussian_analytic_sigma(1, DELTA, 2 * C0)
        assert near(s, an)
        assert acc.theta(1, 2 * C0 / s) <= DELTA
        assert acc.theta(1, 2 * C0 / (s * (1 - 1e-9))) > DELTA * (1 - 1e-6)
    assert near(acc.gaussian_classic_sigma(1, DELTA, 0.02), "0.0968961")
    # classic is not a certificate for eps > 1
    s10 = math.sqrt(2 * math.log(1.25 / DELTA)) * 0.02 / 10
    assert near(acc.theta(10, 0.02 / s10), "2.27e-5")
    with pytest.raises(ValueError, match="analytic"):
        acc.gaussian_classic_sigma(10, DELTA, 0.02)
