"""Metrics on fixed inputs: accuracy and UA, the three MIA definitions, Avg.Gap (docs/metrics.md)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC
from torch import nn

from unlearnlab.errors import UnknownNameError, UnlearnlabError
from unlearnlab.metrics import (
    METRIC_DEFINITIONS,
    MIA_DEFINITIONS,
    SVC_FEATURES,
    SVC_VARIANTS,
    accuracy,
    avg_gap_matched,
    avg_gap_means,
    entropy,
    gap_means_ua_ra_ta,
    list_metrics,
    m_entropy_fixed,
    mean_metric_std,
    mean_std,
    mia_efficacy_svc_conf,
    mia_loss_lr_cv,
    mia_lr_entropy_member_rate,
    per_metric_gaps,
    per_seed_gap,
    predict_probs,
    svc_shadow_members,
    unlearning_accuracy,
)
from unlearnlab.utils import numpy_rng

# ---------------------------------------------------------------- fixtures

# Small hand-written probability arrays (C = 3) for golden values.
MEMBER_P = np.array(
    [[0.90, 0.05, 0.05], [0.10, 0.85, 0.05], [0.05, 0.15, 0.80], [0.70, 0.20, 0.10],
     [0.02, 0.96, 0.02], [0.30, 0.10, 0.60], [0.55, 0.40, 0.05], [0.25, 0.65, 0.10]],
    dtype=np.float32,
)  # fmt: skip
MEMBER_Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
NONMEMBER_P = np.array(
    [[0.40, 0.35, 0.25], [0.50, 0.30, 0.20], [0.20, 0.30, 0.50], [0.75, 0.15, 0.10],
     [0.45, 0.45, 0.10], [0.60, 0.30, 0.10], [0.35, 0.60, 0.05], [0.10, 0.50, 0.40]],
    dtype=np.float32,
)  # fmt: skip
NONMEMBER_Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
TARGET_P = np.array(
    [[0.95, 0.03, 0.02], [0.30, 0.40, 0.30], [0.10, 0.20, 0.70],
     [0.50, 0.25, 0.25], [0.05, 0.05, 0.90], [1.00, 0.00, 0.00]],
    dtype=np.float32,
)  # fmt: skip
TARGET_Y = np.array([0, 1, 2, 0, 1, 2])

# Golden values, produced once (scikit-learn 1.9.1, torch 2.13, NumPy 2.4) by a script independent of
# unlearnlab: the SalUn `SVC_MIA.py` feature code in torch (m_entropy with `[arange(N), labels]` and
# log(1 - p) fixed), `SVC(C=3, gamma="auto", kernel="rbf")` fit on members (1) / non-members (0), and
# 100 * (1 - mean prediction) on the target arrays above. Six targets, so every value is a multiple of 100/6.
SVC_GOLDEN = {
    "confidence": 66.66666666666667,
    "correctness": 33.333333333333336,
    "entropy": 50.0,
    "m_entropy_fixed": 66.66666666666667,
    "prob": 83.33333333333334,
}
# DualOptim `get_membership_attack_prob` logic on the same arrays (torch entropy, LogisticRegression
# (class_weight="balanced", solver="lbfgs"), 100 * mean prediction on the target): 3 of 6 called member.
LR_ENTROPY_GOLDEN = 50.0
# Starting-kit `simple_mia` on FORGET_LOSSES / TEST_LOSSES below after shuffling the longer side with
# unlearnlab.utils.numpy_rng(0, "mia_loss_lr_cv") and keeping the first len(shorter): concatenate
# (test, forget), LogisticRegression(), StratifiedShuffleSplit(n_splits=10, random_state=0), mean accuracy.
FORGET_LOSSES = np.linspace(0.0, 2.0, 30)
TEST_LOSSES = np.linspace(0.5, 3.0, 20)
LOSS_CV_GOLDEN = 0.775  # forget side (30) cut to 20
LOSS_CV_GOLDEN_SWAPPED = 0.6  # arguments swapped: forget side 20, test side (30) cut to 20


def random_probs(seed: int, n: int, c: int = 10, sharpness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 softmax probabilities [n, c] and labels, like a classifier's outputs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += sharpness * rng.exponential(2.0, size=n)
    probs = torch.softmax(torch.from_numpy(logits).float(), dim=1).numpy()
    return probs, labels


# ---------------------------------------------------------------- accuracy


def test_accuracy_hand_example() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.35, 0.25]])
    labels = np.array([0, 1, 1, 2])  # correct, wrong, correct, wrong
    assert accuracy(probs, labels) == 50.0
    assert accuracy(torch.from_numpy(probs), torch.from_numpy(labels)) == 50.0


def test_ua_is_100_minus_forget_accuracy_on_fixed_logits() -> None:
    logits = torch.tensor(
        [
            [2.0, -1.0, 0.5, 0.0],
            [0.0, 3.0, 0.1, -2.0],
            [1.0, 0.0, 4.0, 0.0],
            [0.0, 0.2, 0.1, -1.0],
            [5.0, 0, 0, 0],
        ]
    )
    labels = torch.tensor([0, 1, 3, 1, 2])  # argmax 0, 1, 2, 1, 0: three of five correct
    probs = torch.softmax(logits, dim=1)
    assert accuracy(probs, labels) == pytest.approx(60.0)
    assert unlearning_accuracy(probs, labels) == pytest.approx(40.0)
    assert unlearning_accuracy(logits, labels) == pytest.approx(100.0 - accuracy(logits, labels))


def test_accuracy_uses_every_column() -> None:
    # A Boundary-Expanding model has C + 1 outputs; a win of the extra column is an error.
    probs = np.array([[0.3, 0.1, 0.6], [0.8, 0.1, 0.1]])
    assert accuracy(probs, np.array([0, 0])) == 50.0


@pytest.mark.parametrize(
    ("probs", "labels"),
    [(np.ones((3, 2)), np.array([0, 1])), (np.ones((2, 2)), np.array([0, 2])), (np.ones(3), np.array([0]))],
)
def test_accuracy_rejects_bad_shapes_and_labels(probs: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(UnlearnlabError):
        accuracy(probs, labels)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(x))


def test_predict_probs_eval_mode_batched_and_mode_restored() -> None:
    torch.manual_seed(0)
    net = _Net()
    net.train()
    net.bn.eval()  # a frozen-BN submodule must stay frozen, the rest in train mode
    buffers = net.bn.running_mean.clone()
    x = torch.randn(10, 4)
    probs = predict_probs(net, x, batch_size=3)
    assert probs.dtype == torch.float32 and probs.device.type == "cpu" and probs.shape == (10, 3)
    assert not probs.requires_grad
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(10))
    net.eval()
    with torch.no_grad():
        expected = torch.softmax(net(x), dim=1)
    net.train()
    net.bn.eval()
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(predict_probs(net, x, batch_size=1024), expected)
    assert net.training and net.fc.training and not net.bn.training
    torch.testing.assert_close(net.bn.running_mean, buffers)


# ---------------------------------------------------------------- mia_efficacy_svc_conf: SVC MIA-Efficacy


def _direct_svc_conf_efficacy(members, member_y, nonmembers, nonmember_y, target, target_y) -> float:
    """`mia_efficacy_svc_conf` (docs/metrics.md) written out with scikit-learn only: confidence feature, SVC,
    100 · share predicted non-member."""
    conf_m = np.take_along_axis(members, member_y[:, None], axis=1)
    conf_n = np.take_along_axis(nonmembers, nonmember_y[:, None], axis=1)
    conf_t = np.take_along_axis(target, target_y[:, None], axis=1)
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(np.vstack([conf_m, conf_n]), np.r_[np.ones(len(conf_m)), np.zeros(len(conf_n))])
    return 100.0 * (1.0 - clf.predict(conf_t).mean())


def test_svc_efficacy_equals_direct_sklearn_on_random_probs() -> None:
    members, member_y = random_probs(1, 300, sharpness=2.0)  # sharper: "trained on"
    nonmembers, nonmember_y = random_probs(2, 300)
    target, target_y = random_probs(3, 120, sharpness=1.5)
    got = mia_efficacy_svc_conf(members, member_y, nonmembers, nonmember_y, target, target_y)
    assert got == pytest.approx(
        _direct_svc_conf_efficacy(members, member_y, nonmembers, nonmember_y, target, target_y)
    )
    assert 0.0 < got < 100.0  # a non-degenerate case


@pytest.mark.parametrize("feature", sorted(SVC_GOLDEN))
def test_svc_efficacy_golden(feature: str) -> None:
    got = mia_efficacy_svc_conf(
        MEMBER_P, MEMBER_Y, NONMEMBER_P, NONMEMBER_Y, TARGET_P, TARGET_Y, feature=feature
    )
    assert got == pytest.approx(SVC_GOLDEN[feature], abs=1e-9)


def test_svc_efficacy_accepts_torch_tensors() -> None:
    tensors = [
        torch.from_numpy(a) for a in (MEMBER_P, MEMBER_Y, NONMEMBER_P, NONMEMBER_Y, TARGET_P, TARGET_Y)
    ]
    assert mia_efficacy_svc_conf(*tensors) == pytest.approx(SVC_GOLDEN["confidence"], abs=1e-9)


def test_svc_efficacy_unknown_feature_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="confidence"):
        mia_efficacy_svc_conf(
            MEMBER_P, MEMBER_Y, NONMEMBER_P, NONMEMBER_Y, TARGET_P, TARGET_Y, feature="conf"
        )


def test_svc_shadow_members_are_the_first_test_size_retain_positions() -> None:
    np.testing.assert_array_equal(svc_shadow_members(45_000, 10_000), np.arange(10_000))
    np.testing.assert_array_equal(svc_shadow_members(45_000, 9_000), np.arange(9_000))
    np.testing.assert_array_equal(svc_shadow_members(7, 10), np.arange(7))


def test_entropy_handles_zero_probabilities() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.25, 0.25, 0.5], [0.0, 0.5, 0.5]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero / invalid-value warnings
        h = entropy(probs)
    assert not np.isnan(h).any()
    assert h[0] == 0.0
    assert h[1] == pytest.approx(1.5 * math.log(2), rel=1e-6)
    assert h[2] == pytest.approx(math.log(2), rel=1e-6)


def test_m_entropy_fixed_matches_formula_per_row() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    labels = np.array([0, 1, 2])

    def formula(p: np.ndarray, y: int) -> float:  # -(1 - p_y) log p_y - sum_{k != y} p_k log(1 - p_k)
        return -(1 - p[y]) * math.log(p[y]) - sum(p[k] * math.log(1 - p[k]) for k in range(len(p)) if k != y)

    expected = [formula(probs[i].astype(np.float64), int(labels[i])) for i in range(3)]
    np.testing.assert_allclose(m_entropy_fixed(probs, labels), expected, rtol=1e-5)


def test_m_entropy_fixed_extremes_are_finite() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = m_entropy_fixed(probs, np.array([0, 0]))
    log_floor = math.log(1e-30)
    # Correct and certain: 0. Certain and wrong: -log(1e-30) from the label term and from log(1 - 1).
    np.testing.assert_allclose(values, [0.0, -2 * log_floor], rtol=1e-6)


def test_svc_variants_are_registered_features() -> None:
    assert set(SVC_VARIANTS.values()) == set(SVC_FEATURES)
    assert set(SVC_VARIANTS) <= set(MIA_DEFINITIONS)


# ---------------------------------------------------------------- mia_lr_entropy_member_rate


def test_lr_entropy_member_rate_equals_direct_sklearn() -> None:
    members, _ = random_probs(4, 400, sharpness=2.5)
    nonmembers, _ = random_probs(5, 200)
    target, _ = random_probs(6, 100, sharpness=1.5)

    def h(p: np.ndarray) -> np.ndarray:
        return -np.sum(p * np.log(np.clip(p, 1e-45, None)), axis=1, keepdims=True)

    clf = LogisticRegression(class_weight="balanced", solver="lbfgs")
    clf.fit(np.vstack([h(members), h(nonmembers)]), np.r_[np.ones(400), np.zeros(200)])
    expected = 100.0 * clf.predict(h(target)).mean()
    got = mia_lr_entropy_member_rate(members, nonmembers, target)
    assert got == pytest.approx(expected)
    assert 0.0 < got < 100.0


def test_lr_entropy_member_rate_golden() -> None:
    assert mia_lr_entropy_member_rate(MEMBER_P, NONMEMBER_P, TARGET_P) == pytest.approx(LR_ENTROPY_GOLDEN)


# ---------------------------------------------------------------- mia_loss_lr_cv


def test_loss_lr_cv_is_half_on_identical_distributions() -> None:
    rng = np.random.default_rng(7)
    result = mia_loss_lr_cv(rng.exponential(1.0, 3000), rng.exponential(1.0, 2000))
    assert abs(result["accuracy"] - 0.5) < 0.05
    assert result["indiscernibility"] > 0.9
    assert result["subsampled"] == "forget"


def test_loss_lr_cv_is_one_on_separated_distributions() -> None:
    rng = np.random.default_rng(8)
    result = mia_loss_lr_cv(rng.uniform(0.0, 0.1, 500), rng.uniform(5.0, 6.0, 800))
    assert result["accuracy"] > 0.99
    assert result["indiscernibility"] < 0.02
    assert result["subsampled"] == "test"


def test_loss_lr_cv_golden_and_direct() -> None:
    result = mia_loss_lr_cv(FORGET_LOSSES, TEST_LOSSES)
    assert result["subsampled"] == "forget"
    assert result["accuracy"] == pytest.approx(LOSS_CV_GOLDEN)
    assert result["indiscernibility"] == pytest.approx(1 - abs(LOSS_CV_GOLDEN - 0.5) / 0.5)
    forget = numpy_rng(0, "mia_loss_lr_cv").permutation(FORGET_LOSSES)[:20]
    x = np.concatenate([TEST_LOSSES, forget]).reshape(-1, 1)
    y = np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int)]
    cv = StratifiedShuffleSplit(n_splits=10, random_state=0)
    assert result["accuracy"] == pytest.approx(cross_val_score(LogisticRegression(), x, y, cv=cv).mean())
    swapped = mia_loss_lr_cv(TEST_LOSSES, FORGET_LOSSES)
    assert swapped["subsampled"] == "test"
    assert swapped["accuracy"] == pytest.approx(LOSS_CV_GOLDEN_SWAPPED)


def test_loss_lr_cv_rejects_empty_side() -> None:
    with pytest.raises(UnlearnlabError, match="both sides"):
        mia_loss_lr_cv(np.array([]), TEST_LOSSES)


# ---------------------------------------------------------------- Avg.Gap


def _row(ua: float, ra: float, ta: float, mia: float) -> dict[str, float]:
    return {"ua": ua, "ra": ra, "ta": ta, "mia": mia}


METHOD = [_row(10, 90, 80, 20), _row(14, 94, 84, 24), _row(12, 92, 82, 22)]
RETRAIN = [_row(12, 92, 82, 22)] * 3


def test_avg_gap_matched_vs_means_on_toy_numbers() -> None:
    # Per-seed gaps 2, 2, 0; the seed means coincide, so the gap of means is 0.
    assert [per_seed_gap(m, r) for m, r in zip(METHOD, RETRAIN, strict=True)] == [2.0, 2.0, 0.0]
    mean, std = avg_gap_matched(METHOD, RETRAIN)
    assert mean == pytest.approx(4 / 3)
    assert std == pytest.approx(math.sqrt((2 * (2 / 3) ** 2 + (4 / 3) ** 2) / 2))  # ddof = 1
    assert avg_gap_matched(METHOD, RETRAIN, ddof=0)[1] == pytest.approx(math.sqrt((8 / 3) / 3))
    assert avg_gap_means(METHOD, RETRAIN) == 0.0
    assert mean >= avg_gap_means(METHOD, RETRAIN)


def test_gap_means_fixed_retrain_vector_and_tow() -> None:
    # DualOptim parse_result.py style: Retrain as one fixed vector.
    ref = {"ua": 5.39, "ra": 100.0, "ta": 94.248, "mia": 76.264}
    gaps = per_metric_gaps(METHOD, ref)
    assert gaps == pytest.approx({"ua": 6.61, "ra": 8.0, "ta": 12.248, "mia": 54.264})
    assert avg_gap_means(METHOD, ref) == pytest.approx((6.61 + 8.0 + 12.248 + 54.264) / 4)
    assert gap_means_ua_ra_ta(METHOD, ref) == pytest.approx((6.61 + 8.0 + 12.248) / 3)


def test_mean_metric_std_ddof() -> None:
    # Every metric takes the values a - 2, a + 2, a across seeds.
    assert mean_metric_std(METHOD) == pytest.approx(2.0)
    assert mean_metric_std(METHOD, ddof=0) == pytest.approx(math.sqrt(8 / 3))


def test_mean_std_single_seed() -> None:
    mean, std = mean_std([3.5])
    assert mean == 3.5 and math.isnan(std)
    assert mean_std([3.5], ddof=0) == (3.5, 0.0)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    with pytest.raises(UnlearnlabError):
        mean_std([])


def test_avg_gap_matched_rejects_mismatched_lengths_and_missing_metrics() -> None:
    with pytest.raises(ValueError, match="2 method rows and 3 Retrain rows"):
        avg_gap_matched(METHOD[:2], RETRAIN)
    with pytest.raises(ValueError, match=r"retrain_rows\[1\] has no metric 'mia'"):
        avg_gap_matched(METHOD, [RETRAIN[0], {"ua": 1, "ra": 1, "ta": 1}, RETRAIN[2]])
    with pytest.raises(ValueError, match="empty"):
        avg_gap_matched([], [])


_metric_values = st.tuples(*[st.floats(0, 100, allow_nan=False)] * 4)


@settings(max_examples=50, deadline=None)
@given(pairs=st.lists(st.tuples(_metric_values, _metric_values), min_size=1, max_size=6))
def test_matched_gap_is_at_least_gap_of_means(pairs: list) -> None:
    method = [_row(*m) for m, _ in pairs]
    retrain = [_row(*r) for _, r in pairs]
    assert avg_gap_matched(method, retrain)[0] >= avg_gap_means(method, retrain) - 1e-9


# ---------------------------------------------------------------- registry


def test_metric_definitions_and_listing() -> None:
    assert {"ua", "ra", "ta", "avg_gap_matched", "gap_means_ua_ra_ta", "mean_metric_std"} <= set(
        METRIC_DEFINITIONS
    )
    assert set(MIA_DEFINITIONS) <= set(METRIC_DEFINITIONS)
    assert list_metrics() == sorted(METRIC_DEFINITIONS)
    assert list_metrics("mia_efficacy_svc_*") == sorted(SVC_VARIANTS)
    assert list_metrics("*gap*") == ["avg_gap_matched", "avg_gap_means", "gap_means_ua_ra_ta"]
