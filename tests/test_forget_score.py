"""NeurIPS 2023 official ε-score and final score on synthetic distributions with known answers.

The definition is docs/metrics.md, "`forget_score_eps` and `final_score`: NeurIPS 2023 official scoring". The
vectorised sweep is checked against a brute-force, loop-over-rules reference written here from that definition.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics import METRIC_DEFINITIONS, list_metrics
from unlearnlab.metrics.forget_score import (
    EPSILON_CAP,
    _orient,
    _per_example_epsilon,
    eps_bar,
    final_score,
    forget_score,
    logit_scaled_confidence,
    per_example_epsilon,
)

# ---------------------------------------------------------------- brute-force reference (pure Python loops)


def _py_linspace(start: float, stop: float, num: int) -> list[float]:
    """num evenly spaced points, start + k·step, the last one exactly ``stop`` (NumPy's arithmetic)."""
    if num <= 0:
        return []
    if num == 1:
        return [start]
    step = (stop - start) / (num - 1)
    return [k * step + start for k in range(num - 1)] + [stop]


def _rule_eps(fpr: float, fnr: float, delta: float) -> float | None:
    """ε of one rule; None = discarded."""
    if fpr == 0 and fnr == 0:
        return math.inf
    if fpr == 0 or fnr == 0:
        return None
    terms = []
    if 1 - delta - fpr > 0:
        terms.append(math.log(1 - delta - fpr) - math.log(fnr))
    if 1 - delta - fnr > 0:
        terms.append(math.log(1 - delta - fnr) - math.log(fpr))
    if not terms:
        return None
    return max(0.0, *terms)


def brute_force_eps(u, r, delta=1e-5, per_unit=100, buffer=2.0) -> float:
    """ε_i of one example by enumerating every single- and double-threshold rule and every model, one comparison
    at a time."""
    u, r = [float(x) for x in u], [float(x) for x in r]
    pos, neg = (r, u) if statistics.median(r) > statistics.median(u) else (u, r)
    n_pos, n_neg = len(pos), len(neg)
    range_pos, range_neg = max(pos) - min(pos), max(neg) - min(neg)
    larger, smaller = max(range_pos, range_neg), min(range_pos, range_neg)
    if larger > 0 and smaller / larger < 0.01:
        return 50.0

    kept = []
    # single threshold: positive iff s >= t
    lo, hi = min(pos + neg), max(pos + neg)
    for t in _py_linspace(lo, hi, math.ceil((hi - lo) * per_unit)):
        fpr = sum(1 for s in neg if s >= t) / n_neg
        fnr = sum(1 for s in pos if s < t) / n_pos
        e = _rule_eps(fpr, fnr, delta)
        if e is not None:
            kept.append(e)
    # double threshold: the smaller-range family is positive (tie: the median-negative one)
    dpos, dneg = (neg, pos) if range_pos >= range_neg else (pos, neg)
    w = max(dpos) - min(dpos)
    r_lo, r_hi = min(dpos) + w - buffer, max(dpos) + buffer
    for t_r in _py_linspace(r_lo, r_hi, math.ceil((r_hi - r_lo) * per_unit)):
        lefts = _py_linspace(t_r - w - buffer, t_r - w + buffer, math.ceil(2 * buffer * per_unit))
        for t_l in lefts:
            fpr = sum(1 for s in dneg if t_l <= s <= t_r) / len(dneg)
            fnr = sum(1 for s in dpos if not t_l <= s <= t_r) / len(dpos)
            e = _rule_eps(fpr, fnr, delta)
            if e is not None:
                kept.append(e)
    best = max(kept) if kept else 0.0
    return min(max(best, 0.0), 50.0)


def _random_families(rng: np.random.Generator, n_models: int, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping families with random shifts/scales; every other example rounded to 0.25 (ties on purpose)."""
    u = rng.normal(size=(n_models, n_examples)) * rng.uniform(0.3, 2.0, n_examples)
    r = rng.normal(size=(n_models, n_examples)) * rng.uniform(0.3, 2.0, n_examples) + rng.uniform(-2, 2, n_examples)
    u[:, ::2] = np.round(u[:, ::2] * 4) / 4
    r[:, ::2] = np.round(r[:, ::2] * 4) / 4
    return u, r


# ---------------------------------------------------------------- vectorised == brute force


def test_matches_brute_force_on_the_official_grid():
    rng = np.random.default_rng(0)
    u, r = _random_families(rng, n_models=5, n_examples=3)
    expected = [brute_force_eps(u[:, i], r[:, i]) for i in range(u.shape[1])]
    np.testing.assert_allclose(per_example_epsilon(u, r), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n_models", [3, 4, 7, 10])
def test_matches_brute_force_on_coarse_grids(n_models):
    rng = np.random.default_rng(n_models)
    u, r = _random_families(rng, n_models=n_models, n_examples=25)
    for per_unit, buffer in [(10, 2.0), (7, 0.5)]:
        got = _per_example_epsilon(u, r, 1e-5, per_unit, buffer)
        expected = [brute_force_eps(u[:, i], r[:, i], per_unit=per_unit, buffer=buffer) for i in range(u.shape[1])]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_brute_force_agreement_covers_non_trivial_values():
    """The random cases above are not all 0 or 50: the sweep really is compared."""
    rng = np.random.default_rng(4)
    u, r = _random_families(rng, n_models=4, n_examples=25)
    eps = _per_example_epsilon(u, r, 1e-5, 10, 2.0)
    assert ((eps > 0) & (eps < EPSILON_CAP)).sum() >= 5


# ---------------------------------------------------------------- known answers


def test_identical_families_score_zero_and_full_points():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(64, 20))
    eps = per_example_epsilon(u, u.copy())
    assert np.all(eps == 0.0)
    assert forget_score(eps, 64) == {"F": 1.0, "eps_bar": 5, "n_models": 64}


def test_same_scores_in_another_model_order_score_zero():
    """Only the multiset of N scores matters: the retrained family = the unlearned one, models permuted."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=(512, 8))
    eps = per_example_epsilon(u, rng.permutation(u, axis=0))
    assert np.all(eps == 0.0)
    assert forget_score(eps, 512) == {"F": 1.0, "eps_bar": 7, "n_models": 512}


def test_iid_families_stay_far_below_the_cap():
    """Independent draws of one distribution: finite-N noise only (ε_i ≈ 1–2.5 at N = 64, never near 50)."""
    rng = np.random.default_rng(3)
    u, r = rng.normal(size=(64, 20)), rng.normal(size=(64, 20))
    eps = per_example_epsilon(u, r)
    assert eps.max() < 3.5
    assert forget_score(eps, 64)["F"] > 0.1


def test_disjoint_families_score_the_cap_and_no_points():
    rng = np.random.default_rng(5)
    u = rng.normal(size=(32, 10))
    r = rng.normal(size=(32, 10)) + 20.0
    for a, b in [(u, r), (r, u)]:
        eps = per_example_epsilon(a, b)
        assert np.all(eps == EPSILON_CAP)
        assert forget_score(eps, 32)["F"] == 0.0


def test_collapsed_family_fires_the_range_rule():
    n = 64
    spread = np.linspace(-1.0, 1.0, n)  # range 2
    # ratio 0 (constant family) and 0.005: ε = 50 without a sweep, although the families overlap
    for small_range in (0.0, 0.01):
        collapsed = np.linspace(-small_range / 2, small_range / 2, n)
        eps = per_example_epsilon(collapsed[:, None], spread[:, None])
        assert eps[0] == EPSILON_CAP
        assert per_example_epsilon(spread[:, None], collapsed[:, None])[0] == EPSILON_CAP
    # ratio 0.02: the sweep decides; two spread values fall inside the narrow family's range, so no rule separates
    narrow = np.linspace(-0.02, 0.02, n)
    eps = per_example_epsilon(narrow[:, None], spread[:, None])[0]
    assert 0.0 < eps < EPSILON_CAP
    assert eps == pytest.approx(brute_force_eps(narrow, spread))


def test_both_families_constant():
    """0/0 range ratio: the sweep decides — equal constants are indistinguishable, different ones separate."""
    same = per_example_epsilon(np.full((8, 1), 1.5), np.full((8, 1), 1.5))
    apart = per_example_epsilon(np.full((8, 1), 1.5), np.full((8, 1), 2.5))
    assert same[0] == 0.0
    assert apart[0] == EPSILON_CAP


def test_orientation_by_medians():
    u = np.array([[0.0, 5.0, 1.0], [1.0, 6.0, 2.0], [2.0, 7.0, 3.0]])
    r = np.array([[3.0, 0.0, 1.0], [4.0, 1.0, 2.0], [5.0, 2.0, 3.0]])
    pos, neg = _orient(u, r)
    np.testing.assert_array_equal(pos[:, 0], r[:, 0])  # median(R) > median(U): retrained positive
    np.testing.assert_array_equal(pos[:, 1], u[:, 1])  # median(U) larger: unlearned positive
    np.testing.assert_array_equal(pos[:, 2], u[:, 2])  # tie: unlearned positive
    np.testing.assert_array_equal(neg[:, 0], u[:, 0])


def test_eps_is_symmetric_in_the_two_families():
    """Orientation by medians (not by argument position) makes ε(U, R) = ε(R, U) when the medians differ."""
    rng = np.random.default_rng(6)
    u, r = _random_families(rng, n_models=6, n_examples=30)
    assert np.all(np.median(u, axis=0) != np.median(r, axis=0))
    got = _per_example_epsilon(u, r, 1e-5, 10, 2.0)
    np.testing.assert_array_equal(got, _per_example_epsilon(r, u, 1e-5, 10, 2.0))


# ---------------------------------------------------------------- buckets and F


def test_eps_bar():
    assert eps_bar(512) == 7
    assert eps_bar(3) == 1  # ceil(ln 2)
    assert eps_bar(2) == 0  # ln 1 = 0: no bucket
    assert eps_bar(np.int64(100)) == 5
    for bad in (1, 0, 2.5, True):
        with pytest.raises(UnlearnlabError):
            eps_bar(bad)


@pytest.mark.parametrize(
    ("eps", "points"),
    [
        (0.0, 1.0),
        (0.4999999, 1.0),
        (0.5, 0.5),  # the bucket edge belongs to the next bucket
        (0.75, 0.5),
        (1.0, 0.25),
        (6.5, 2.0**-13),  # last bucket [6.5, 7) for N = 512
        (np.nextafter(7.0, 0.0), 2.0**-13),
        (7.0, 0.0),  # ε = ε̄ is beyond the last bucket
        (12.0, 0.0),
        (50.0, 0.0),
    ],
)
def test_bucket_edges(eps, points):
    assert forget_score(np.array([eps]), 512) == {"F": points, "eps_bar": 7, "n_models": 512}


def test_forget_score_is_the_mean_of_points_and_depends_on_n():
    eps = np.array([0.1, 0.6, 1.2, 6.9, 50.0])
    assert forget_score(eps, 512)["F"] == pytest.approx((1 + 0.5 + 0.25 + 2.0**-13 + 0) / 5)
    # N = 3: ε̄ = 1, buckets [0, 0.5) and [0.5, 1) only
    assert forget_score(eps, 3) == {"F": pytest.approx((1 + 0.5) / 5), "eps_bar": 1, "n_models": 3}
    assert forget_score(eps, 2)["F"] == 0.0


def test_forget_score_rejects_bad_eps():
    for bad in (np.array([]), np.array([0.1, np.nan]), np.array([-0.1])):
        with pytest.raises(UnlearnlabError):
            forget_score(bad, 512)


# ---------------------------------------------------------------- final score


def test_final_score_arithmetic():
    assert final_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.36)
    assert final_score(0.25, 0.99, 0.99, 0.9, 0.8) == pytest.approx(0.25 * 0.9 / 0.8)  # ratios are not capped
    # per-model accuracies are averaged over the N models of each family
    assert final_score(1.0, [89.0, 91.0], [100.0, 100.0], np.array([70.0, 90.0]), 100.0) == pytest.approx(0.72)
    assert final_score(0.0, 90.0, 100.0, 80.0, 100.0) == 0.0


def test_final_score_rejects_bad_input():
    with pytest.raises(UnlearnlabError):
        final_score(1.5, 90, 100, 80, 100)
    with pytest.raises(UnlearnlabError):
        final_score(0.5, 90, 0, 80, 100)
    with pytest.raises(UnlearnlabError):
        final_score(0.5, -1, 100, 80, 100)
    with pytest.raises(UnlearnlabError):
        final_score(0.5, [], 100, 80, 100)


# ---------------------------------------------------------------- logit-scaled confidence


def test_logit_scaled_confidence_values():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 2, 0])
    before = logits.copy()
    s = logit_scaled_confidence(logits, labels)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    py = p[np.arange(3), labels]
    np.testing.assert_allclose(s, np.log(py) - np.log(1 - py), rtol=1e-12)
    assert s.dtype == np.float64
    assert s[1] == pytest.approx(math.log(0.5))  # uniform over 3 classes: log(1/3) − log(2/3)
    np.testing.assert_array_equal(logits, before)  # the input is not modified


def test_logit_scaled_confidence_is_stable_and_stacks_models():
    logits = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    s = logit_scaled_confidence(logits, np.array([0, 0]))
    assert s[0] == pytest.approx(-math.log(1e-45))  # p_wrong underflows to 0: the floor
    assert s[1] == pytest.approx(math.log(1e-45))
    stacked = np.stack([logits, -logits])
    out = logit_scaled_confidence(stacked, np.array([0, 1]))
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[0], logit_scaled_confidence(logits, np.array([0, 1])))


def test_logit_scaled_confidence_rejects_bad_input():
    with pytest.raises(UnlearnlabError):
        logit_scaled_confidence(np.zeros((3, 2)), np.array([0, 2, 1]))
    with pytest.raises(UnlearnlabError):
        logit_scaled_confidence(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(UnlearnlabError):
        logit_scaled_confidence(np.zeros(3), np.array([0]))
    with pytest.raises(UnlearnlabError):
        logit_scaled_confidence(np.array([[np.inf, 0.0]]), np.array([0]))


# ---------------------------------------------------------------- validation and registration


def test_per_example_epsilon_rejects_bad_input():
    ok = np.zeros((4, 3))
    for u, r in [(ok, np.zeros((5, 3))), (np.zeros((1, 3)), np.zeros((1, 3))), (np.zeros(4), np.zeros(4))]:
        with pytest.raises(UnlearnlabError):
            per_example_epsilon(u, r)
    bad = ok.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UnlearnlabError):
        per_example_epsilon(bad, ok)
    with pytest.raises(UnlearnlabError):
        per_example_epsilon(ok, ok, delta=1.0)


def test_end_to_end_from_logits():
    """Logits → s → ε → F: unlearned models that still fit D_f are told apart from retrained ones."""
    rng = np.random.default_rng(7)
    n_models, n_examples, n_classes = 16, 6, 4
    labels = rng.integers(0, n_classes, n_examples)
    boost = np.zeros((n_examples, n_classes))
    boost[np.arange(n_examples), labels] = 8.0
    retrained = rng.normal(size=(n_models, n_examples, n_classes))
    memorised = rng.normal(size=(n_models, n_examples, n_classes)) + boost
    s_r = logit_scaled_confidence(retrained, labels)
    s_u = logit_scaled_confidence(memorised, labels)
    assert forget_score(per_example_epsilon(s_u, s_r), n_models)["F"] == 0.0
    assert forget_score(per_example_epsilon(s_r, s_r), n_models)["F"] == 1.0


def test_metric_names_are_registered():
    assert {"forget_score_eps", "final_score"} <= set(METRIC_DEFINITIONS)
    assert "forget_score_eps" in list_metrics("forget_*")
