"""Membership-inference metrics, each a named definition (docs/metrics.md, "Membership-inference metrics").

The three attacks differ in shadow data, feature, classifier and direction, so their numbers are never
comparable with each other:

* ``mia_efficacy_svc_conf`` (SalUn / ℓ1-sparse "MIA-Efficacy"): SVC on the true-label confidence, % of D_f
  called **non-member**; target value = Retrain's.
* ``mia_lr_entropy_member_rate`` (SFR-on / DualOptim, from SCRUB): logistic regression on the entropy, % of
  D_f called **member**.
* ``mia_loss_lr_cv`` (NeurIPS 2023 starting kit): cross-validated accuracy of a logistic regression that
  separates D_f losses from D_test losses; ideal 0.5.

Probabilities are float32 softmax outputs of the eval-mode model (see
:func:`unlearnlab.metrics.accuracy.predict_probs`); features are computed in float32 like the references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.metrics.accuracy import ArrayLike, as_numpy, check_probs_labels
from unlearnlab.utils import numpy_rng

#: log(0) is replaced by log(1e-30), as in the reference feature code.
LOG_FLOOR = np.float32(1e-30)

MIA_DEFINITIONS: dict[str, str] = {
    "mia_efficacy_svc_conf": (
        "100 x fraction of D_f an SVC(C=3, gamma='auto', rbf) calls non-member; feature p_y; shadow "
        "members = first |D_test| samples of D_r in train order, non-members = D_test, the longer side cut to "
        "the shorter by a seeded draw when |D_r| < |D_test| (SalUn MIA-Efficacy)"
    ),
    "mia_efficacy_svc_correctness": "mia_efficacy_svc_conf with feature 1[argmax p = y]",
    "mia_efficacy_svc_entropy": "mia_efficacy_svc_conf with feature H(p) = -sum_k p_k log p_k (0 log 0 = 0)",
    "mia_efficacy_svc_m_entropy_fixed": (
        "mia_efficacy_svc_conf with feature -(1-p_y) log p_y - sum_{k!=y} p_k log(1-p_k) "
        "(reference m_entropy with its two indexing/log bugs fixed)"
    ),
    "mia_efficacy_svc_prob": "mia_efficacy_svc_conf with the whole probability vector as feature (gamma=1/C)",
    "mia_lr_entropy_member_rate": (
        "100 x fraction of D_f a LogisticRegression(class_weight='balanced', lbfgs) on entropy H(p) calls "
        "member; members = all D_r, non-members = D_test (SFR-on/DualOptim, from SCRUB)"
    ),
    "mia_loss_lr_cv": (
        "mean accuracy of LogisticRegression() on per-sample CE losses, D_f (1) vs D_test (0), balanced by "
        "subsampling, StratifiedShuffleSplit(10, test_size=0.1, random_state=0); ideal 0.5 (NeurIPS 2023 kit); "
        "result rows store it x 100 (ideal 50)"
    ),
}


def entropy(probs: ArrayLike) -> np.ndarray:
    """Shannon entropy per row, H(p) = −Σ_k p_k log p_k with 0·log 0 = 0; float32, shape [N]."""
    p = as_numpy(probs, np.float32)
    log_p = np.zeros_like(p)
    np.log(p, out=log_p, where=p > 0)
    return -(p * log_p).sum(axis=1)


def _floored_log(values: np.ndarray) -> np.ndarray:
    """log(v) where v > 0, else log(1e-30) (float32)."""
    out = np.full_like(values, np.log(LOG_FLOOR))
    np.log(values, out=out, where=values > 0)
    return out


def m_entropy_fixed(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Modified entropy (Song & Mittal 2021) per row, float32, shape [N]:

        Mentr(p, y) = −(1 − p_y)·log p_y − Σ_{k≠y} p_k·log(1 − p_k),   log 0 := log 1e-30.

    The SalUn/DualOptim torch code means this but takes ``p.log()`` for log(1 − p) and indexes
    ``[:, labels]`` (whole columns) instead of ``[arange(N), labels]``; both are corrected here.
    """
    p = as_numpy(probs, np.float32)
    y = as_numpy(labels, np.int64)
    rows = np.arange(len(y))
    weights = p.copy()
    weights[rows, y] = 1 - p[rows, y]
    logs = _floored_log(1 - p)
    logs[rows, y] = _floored_log(p[rows, y])
    return -(weights * logs).sum(axis=1)


def _confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y, the probability of the true label."""
    return probs[np.arange(len(labels)), labels]


def _correctness(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 if the top-1 prediction is the true label, else 0."""
    return (probs.argmax(axis=1) == labels).astype(np.int32)


def _entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """H(p); the label is unused."""
    return entropy(probs)


def _full_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The whole probability vector; the label is unused."""
    return probs


#: Feature extractors of the SVC attack: (probs [N, C] float32, labels [N] int64) -> [N] or [N, d].
SVC_FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "confidence": _confidence,
    "correctness": _correctness,
    "entropy": _entropy,
    "m_entropy_fixed": m_entropy_fixed,
    "prob": _full_probs,
}

#: Metric name of each SVC variant -> its ``feature`` argument.
SVC_VARIANTS: dict[str, str] = {
    "mia_efficacy_svc_conf": "confidence",
    "mia_efficacy_svc_correctness": "correctness",
    "mia_efficacy_svc_entropy": "entropy",
    "mia_efficacy_svc_m_entropy_fixed": "m_entropy_fixed",
    "mia_efficacy_svc_prob": "prob",
}


def svc_shadow_members(n_retain: int, n_test: int, draw: int = 0) -> np.ndarray:
    """Positions in D_r (train order) of the shadow members of attack draw ``draw``, n = min(n_retain, n_test).

    Draw 0 is the reference's choice: the first n samples, 0, 1, …, n − 1. Draw k ≥ 1 is a resampled shadow set:
    n positions drawn without replacement by ``numpy_rng(k, "svc-shadow-members")``, in ascending order
    (docs/metrics.md, "Attack spread").
    """
    n = min(n_retain, n_test)
    if draw == 0:
        return np.arange(n, dtype=np.int64)
    return np.sort(numpy_rng(draw, "svc-shadow-members").choice(n_retain, n, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class SvcAttack:
    """One SVC attack: its value in %, the shadow-set sizes it was fit on and which side, if any, was cut."""

    value: float
    members: int
    nonmembers: int
    #: ``"nonmembers"`` or ``"members"`` when that side was longer and cut to the other's length, else ``None``
    cut: str | None = None


def balanced_positions(n_a: int, n_b: int, draw: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Positions keeping ``min(n_a, n_b)`` of each side: the shorter side whole, the longer one cut by a seeded
    draw without replacement (``numpy_rng(draw, "svc-balance")``, ascending order). The third value names the cut
    side (``"a"`` or ``"b"``), or is ``None`` when both sides have the same length."""
    n = min(n_a, n_b)

    def keep(m: int) -> np.ndarray:
        return np.sort(numpy_rng(draw, "svc-balance").choice(m, n, replace=False)).astype(np.int64)

    if n_a > n_b:
        return keep(n_a), np.arange(n_b, dtype=np.int64), "a"
    if n_b > n_a:
        return np.arange(n_a, dtype=np.int64), keep(n_b), "b"
    return np.arange(n_a, dtype=np.int64), np.arange(n_b, dtype=np.int64), None


def _svc_feature(name: str, probs: ArrayLike, labels: ArrayLike, what: str) -> np.ndarray:
    """Feature ``name`` of one sample set as a float32/int32 matrix [N, d]."""
    p = as_numpy(probs, np.float32)
    y = as_numpy(labels, np.int64)
    check_probs_labels(p, y, what)
    return SVC_FEATURES[name](p, y).reshape(len(y), -1)


def _svc_nonmember_rate(members: np.ndarray, nonmembers: np.ndarray, target: np.ndarray) -> float:
    """Fit SVC(C=3, gamma="auto", rbf) on members (1) vs non-members (0); 100·(1 − mean target prediction)."""
    x = np.concatenate([members, nonmembers])
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float(100.0 * (1.0 - clf.predict(target).mean()))


def mia_efficacy_svc_conf(
    shadow_member_probs: ArrayLike,
    shadow_member_labels: ArrayLike,
    nonmember_probs: ArrayLike,
    nonmember_labels: ArrayLike,
    target_probs: ArrayLike,
    target_labels: ArrayLike,
    feature: str = "confidence",
) -> float:
    """SalUn/ℓ1-sparse MIA-Efficacy in % (docs/metrics.md), higher = more of D_f looks unseen.

    With φ the feature (default: confidence φ(x) = p_y(x)), an ``SVC(C=3, gamma="auto", kernel="rbf")`` is fit
    on {φ(shadow members) → 1, φ(non-members) → 0} and

        MIA-Efficacy = 100 · (1 − mean_{x ∈ target} SVC(φ(x))),

    the percentage of the target set predicted non-member. The caller passes: shadow members = the first
    |D_test| samples of D_r in train order (positions :func:`svc_shadow_members`), non-members = D_test,
    target = D_f, all with eval transforms. ``feature`` picks a key of :data:`SVC_FEATURES` (the
    reference's variants; ``m_entropy_fixed`` is its modified entropy corrected). If the two shadow sets differ
    in length (D_r shorter than D_test), the longer is cut to the shorter by a seeded draw
    (:func:`svc_attack` reports the cut); otherwise deterministic.
    """
    return svc_attack(shadow_member_probs, shadow_member_labels, nonmember_probs, nonmember_labels, target_probs,
                      target_labels, feature).value


def svc_attack(
    shadow_member_probs: ArrayLike,
    shadow_member_labels: ArrayLike,
    nonmember_probs: ArrayLike,
    nonmember_labels: ArrayLike,
    target_probs: ArrayLike,
    target_labels: ArrayLike,
    feature: str = "confidence",
    draw: int = 0,
) -> SvcAttack:
    """:func:`mia_efficacy_svc_conf` with its bookkeeping: the SVC is always fit on as many members as
    non-members. When one side is longer (|D_r| < |D_test| gives fewer members than non-members), it is cut to
    the other's length by :func:`balanced_positions` with ``draw``, and :attr:`SvcAttack.cut` names it. With
    equal sides (the reference setting, |D_r| ≥ |D_test|) nothing is drawn and the value is the reference's.
    """
    if feature not in SVC_FEATURES:
        raise unknown_name("SVC MIA feature", feature, SVC_FEATURES)
    members = _svc_feature(feature, shadow_member_probs, shadow_member_labels, "shadow_member_probs")
    nonmembers = _svc_feature(feature, nonmember_probs, nonmember_labels, "nonmember_probs")
    keep_m, keep_n, cut = balanced_positions(len(members), len(nonmembers), draw)
    value = _svc_nonmember_rate(members[keep_m], nonmembers[keep_n],
                                _svc_feature(feature, target_probs, target_labels, "target_probs"))
    side = {"a": "members", "b": "nonmembers"}.get(cut or "")
    return SvcAttack(value, len(keep_m), len(keep_n), side)


def _entropy_column(probs: ArrayLike, what: str) -> np.ndarray:
    """H(p) of a non-empty [N, C] probability array as a column [N, 1]."""
    p = as_numpy(probs, np.float32)
    if p.ndim != 2 or p.shape[0] == 0:
        raise UnlearnlabError(f"{what} must be a non-empty [N, C] array, got shape {p.shape}.")
    return entropy(p).reshape(-1, 1)


def mia_lr_entropy_member_rate(
    member_probs: ArrayLike, nonmember_probs: ArrayLike, target_probs: ArrayLike
) -> float:
    """SFR-on/DualOptim MIA in % (docs/metrics.md): share of the target set an entropy attack calls member.

    ``LogisticRegression(class_weight="balanced", solver="lbfgs")`` (otherwise default: C = 1,
    max_iter = 100) is fit on {H(p(members)) → 1, H(p(non-members)) → 0}, H(p) = −Σ_k p_k log p_k with
    0·log 0 = 0, and MIA = 100 · mean_{x ∈ target} LR(H(p(x))). Members = all of D_r, non-members = D_test,
    target = D_f (eval transforms).
    """
    members = _entropy_column(member_probs, "member_probs")
    nonmembers = _entropy_column(nonmember_probs, "nonmember_probs")
    target = _entropy_column(target_probs, "target_probs")
    x = np.concatenate([members, nonmembers])
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    clf = LogisticRegression(class_weight="balanced", solver="lbfgs").fit(x, y)
    return float(100.0 * clf.predict(target).mean())


def mia_loss_lr_cv(forget_losses: ArrayLike, test_losses: ArrayLike, seed: int = 0) -> dict[str, float | str]:
    """NeurIPS 2023 starting-kit "simple MIA" (docs/metrics.md) on per-sample CE losses.

    Balance: the longer side is shuffled with the generator ``numpy_rng(seed, "mia_loss_lr_cv")`` and cut to
    the length n of the shorter one (the kit cuts the forget side; when |D_f| < |D_test| the test side is cut,
    recorded as ``subsampled="test"``). With X = [test losses; forget losses] (2n × 1) and y = [0]·n + [1]·n,
    ``accuracy`` = mean of ``cross_val_score(LogisticRegression(), X, y,
    cv=StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=0), scoring="accuracy")``; ideal 0.5.
    ``indiscernibility`` = 1 − |accuracy − 0.5| / 0.5 (ideal 1).
    """
    forget = as_numpy(forget_losses).reshape(-1)
    test = as_numpy(test_losses).reshape(-1)
    if len(forget) == 0 or len(test) == 0:
        raise UnlearnlabError(
            f"mia_loss_lr_cv needs losses on both sides, got {len(forget)} forget, {len(test)} test."
        )
    rng = numpy_rng(seed, "mia_loss_lr_cv")
    subsampled = "forget" if len(forget) >= len(test) else "test"
    if subsampled == "forget":
        forget = rng.permutation(forget)[: len(test)]
    else:
        test = rng.permutation(test)[: len(forget)]
    x = np.concatenate([test, forget]).reshape(-1, 1)
    y = np.concatenate([np.zeros(len(test), dtype=np.int64), np.ones(len(forget), dtype=np.int64)])
    cv = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=0)
    acc = float(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy").mean())
    return {"accuracy": acc, "indiscernibility": 1.0 - abs(acc - 0.5) / 0.5, "subsampled": subsampled}
