"""Golden tests of the generation metrics on fixed arrays (docs/generation.md, "Metrics")."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation import metrics as gm

PROBS = np.array([[0.7, 0.2, 0.1],
                  [0.1, 0.8, 0.1],
                  [0.3, 0.3, 0.4],
                  [0.5, 0.25, 0.25]])


def test_forget_class_metrics_golden():
    assert gm.unlearning_accuracy(PROBS, 0) == pytest.approx(50.0)  # rows 1 and 2 are not argmax 0
    assert gm.mean_class_probability(PROBS, 0) == pytest.approx((0.7 + 0.1 + 0.3 + 0.5) / 4)
    expected = np.mean([-sum(p * math.log(p) for p in row) for row in PROBS])
    assert gm.mean_entropy(PROBS) == pytest.approx(expected, rel=1e-6)


def test_fidelity_and_per_class_golden():
    classes = np.array([0, 1, 1, 2])
    assert gm.conditional_accuracy(PROBS, classes) == pytest.approx(50.0)  # rows 0 and 1 correct
    assert gm.per_class_accuracy(PROBS, classes) == {0: 100.0, 1: 50.0, 2: 0.0}


def test_forget_metrics_refuse_bad_input():
    with pytest.raises(UnlearnlabError, match="column"):
        gm.unlearning_accuracy(PROBS, 3)
    with pytest.raises(UnlearnlabError, match="non-empty"):
        gm.mean_class_probability(np.zeros((0, 3)), 0)


def test_fd_of_identical_gaussians_is_zero():
    mu, sigma = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    assert gm.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_fd_of_shifted_gaussians_is_the_squared_shift():
    sigma = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert gm.frechet_distance(np.zeros(2), sigma, np.array([3.0, 4.0]), sigma) == pytest.approx(25.0)


def test_fd_of_diagonal_gaussians_golden():
    # Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ_k (√s1_k − √s2_k)² for diagonal covariances
    s1, s2 = np.diag([4.0, 1.0]), np.diag([1.0, 9.0])
    assert gm.frechet_distance(np.zeros(2), s1, np.ones(2), s2) == pytest.approx(2.0 + (2 - 1) ** 2 + (1 - 3) ** 2)


def test_fd_clf_uses_mean_and_unbiased_covariance():
    a = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    assert gm.fd_clf(a, a) == pytest.approx(0.0, abs=1e-9)
    assert gm.fd_clf(a, a + np.array([1.0, 0.0])) == pytest.approx(1.0)
    mu, sigma = gm.gaussian_fit(a)
    assert mu.tolist() == [1.0, 1.0] and np.allclose(sigma, np.eye(2) * 4 / 3)


def test_kid_golden_against_the_written_sum():
    a = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 0.5]])

    def k(u, v):
        return (np.dot(u, v) / 2 + 1) ** 3

    within_a = sum(k(a[i], a[j]) for i, j in itertools.permutations(range(3), 2)) / 6
    within_b = sum(k(b[i], b[j]) for i, j in itertools.permutations(range(2), 2)) / 2
    cross = sum(k(x, y) for x in a for y in b) / 6
    assert gm.kid_clf(a, b) == pytest.approx(within_a + within_b - 2 * cross)


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 4)), rng.normal(size=(600, 4))
    same = gm.kid_clf(a, b)
    shifted = gm.kid_clf(a, b + 1.0)
    assert abs(same) < 0.02 and shifted > 0.5


def test_feature_metrics_refuse_bad_shapes():
    with pytest.raises(UnlearnlabError, match="n >= 2"):
        gm.fd_clf(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(UnlearnlabError, match="one dimension"):
        gm.kid_clf(np.zeros((3, 2)), np.zeros((3, 4)))


def test_every_metric_has_a_versioned_definition():
    for name in ("ua", "p_forget", "entropy_forget", "fidelity", "fd_clf", "kid_clf", "fd_clf_floor", "avg_gap"):
        assert gm.DEFINITIONS[name].startswith("v1: ")
    assert "not FID" in gm.DEFINITIONS["fd_clf"]


def test_fd_matches_the_general_matrix_square_root_and_survives_singular_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + np.eye(5), b @ b.T + 0.5 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    general = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert gm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(general, rel=1e-8)
    assert gm.frechet_distance(np.zeros(2), np.diag([4.0, 0.0]), np.zeros(2), np.diag([1.0, 0.0])) == \
        pytest.approx(1.0)
