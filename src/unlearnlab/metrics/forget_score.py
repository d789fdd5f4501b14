"""NeurIPS 2023 unlearning-challenge official scoring: ``forget_score_eps`` and ``final_score`` (docs/metrics.md).

N unlearned models (the method run with N seeds) and N retrained models (trained from scratch on D_r with N
seeds) are compared one forget example at a time:

1. :func:`logit_scaled_confidence` turns each model's logits on D_f into s = log(p_y + 1e-45) −
   log(Σ_{k≠y} p_k + 1e-45), so each example i has two samples of N scores, U_i and R_i.
2. :func:`per_example_epsilon` estimates, per example, the (ε, δ = 1e-5) distinguishability of U_i and R_i from
   the false-positive/false-negative rates of a grid of single- and double-threshold decision rules, clipped
   to [0, 50].
3. :func:`forget_score` buckets the ε_i into half-unit buckets worth 1, 1/2, 1/4, … points up to
   ε̄ = ceil(ln(N − 1)) and averages the points: F ∈ [0, 1], higher = less distinguishable from retraining.
4. :func:`final_score` = F × (RA_u / RA_r) × (TA_u / TA_r).

The reference (``google-deepmind/unlearning_evaluation``, ``metric.py``) runs on CUDA; this one is NumPy,
float64 throughout, and vectorised over thresholds: the number of scores a rule accepts is counted with
``searchsorted`` on the sorted scores, and ε is looked up in a table indexed by the two counts. Scores from
different N are not comparable (ε cannot be resolved beyond ≈ ln(N − 1)), so N and ε̄ always travel with F.
"""

from __future__ import annotations

import math

import numpy as np

from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.accuracy import ArrayLike, as_numpy

#: δ of the (ε, δ) estimate.
DELTA = 1e-5
#: ε is clipped to [0, EPSILON_CAP]; collapsed distributions and perfect separations score this value.
EPSILON_CAP = 50.0
#: grid density of both rule families, thresholds per unit of s.
THRESHOLDS_PER_UNIT = 100
#: the double-threshold rule's margin (units of s) around the positive family.
BUFFER = 2.0
#: (smaller range) / (larger range) below this ⇒ ε_i = EPSILON_CAP without a sweep.
RANGE_RATIO_MIN = 0.01
#: width of a scoring bucket in units of ε.
BUCKET_WIDTH = 0.5
#: the probability floor inside both logs of the logit-scaled confidence.
PROB_FLOOR = 1e-45

FORGET_SCORE_DEFINITIONS: dict[str, str] = {
    "forget_score_eps": (
        "F = mean over D_f of 2^-j for eps_i in [0.5j, 0.5j+0.5), j < 2*ceil(ln(N-1)) (else 0); eps_i = max "
        "(eps, delta=1e-5) over single/double-threshold rules separating N unlearned vs N retrained "
        "logit-scaled confidences, clipped to [0, 50] (NeurIPS 2023 official; report N and eps_bar)"
    ),
    "final_score": "forget_score_eps x (RA_u / RA_r) x (TA_u / TA_r), accuracies averaged over the N models",
}


def logit_scaled_confidence(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Logit-scaled confidence s = log(p_y + 1e-45) − log(Σ_{k≠y} p_k + 1e-45), float64.

    ``logits`` is [n, C] (one model) or [M, n, C] (M models stacked; the result is then [M, n], the layout
    :func:`per_example_epsilon` takes); ``labels`` is [n] integers in [0, C). The softmax is taken in float64
    after subtracting each row's largest logit, p_y is read off, the true-label entry is zeroed and the rest
    summed, as in the reference (adapted there from LiRA). The input is not modified.
    """
    z = np.array(as_numpy(logits), dtype=np.float64)  # a copy: the max is subtracted in place
    y = as_numpy(labels).astype(np.int64)
    if z.ndim not in (2, 3) or z.shape[-2] == 0 or z.shape[-1] < 2:
        raise UnlearnlabError(f"logits must be [n, C] or [M, n, C] with n >= 1 and C >= 2, got shape {z.shape}.")
    n, c = z.shape[-2:]
    if y.shape != (n,):
        raise UnlearnlabError(f"labels must have shape ({n},) to match logits {z.shape}, got {y.shape}.")
    if y.min() < 0 or y.max() >= c:
        raise UnlearnlabError(f"labels must lie in [0, {c}), got [{y.min()}, {y.max()}].")
    if not np.isfinite(z).all():
        raise UnlearnlabError("logits contain NaN or infinite values; the confidence needs finite logits.")
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    rows = np.arange(n)
    p_true = p[..., rows, y].copy()
    p[..., rows, y] = 0.0
    p_wrong = p.sum(axis=-1)
    return np.log(p_true + PROB_FLOOR) - np.log(p_wrong + PROB_FLOOR)


def _epsilon_table(n_models: int, delta: float) -> np.ndarray:
    """ε of a rule as a function of its counts: table[fp, fn] for fp, fn ∈ {0, …, N}.

    With FPR = fp/N and FNR = fn/N: both zero ⇒ +∞ (perfect separation); exactly one zero ⇒ −∞ (rule
    discarded); otherwise max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR), where a term whose
    log argument is not positive is left out (the reference's ``nanmax``), and a rule with both terms left out
    (FPR = FNR = 1 when δ < 1/N) is discarded too.
    """
    rate = np.arange(n_models + 1, dtype=np.float64) / n_models
    fpr, fnr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1.0 - delta - fpr) - np.log(fnr)
        b = np.log(1.0 - delta - fnr) - np.log(fpr)
    terms = np.stack([a, b])
    defined = ~np.isnan(terms)
    eps = np.maximum(np.where(defined, terms, -np.inf).max(axis=0), 0.0)
    eps[~defined.any(axis=0)] = -np.inf
    eps[(fpr == 0) != (fnr == 0)] = -np.inf
    eps[0, 0] = np.inf
    return eps


def _orient(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) [N, n]: per example, the retrained column is positive iff its median is larger."""
    retrain_positive = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    return (
        np.where(retrain_positive, retrained, unlearned),
        np.where(retrain_positive, unlearned, retrained),
    )


def _count_at_least(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{s ≥ t} for each threshold t."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def _count_between(sorted_scores: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """#{left ≤ s ≤ right} for each pair (broadcast)."""
    inside = np.searchsorted(sorted_scores, right, side="right") - np.searchsorted(sorted_scores, left, side="left")
    return np.maximum(inside, 0)


def _single_threshold_counts(pos: np.ndarray, neg: np.ndarray, per_unit: int) -> tuple[np.ndarray, np.ndarray]:
    """(fp, fn) counts of the rules "positive iff s ≥ t", t on ceil(100·range) points over [min, max] of both."""
    lo = min(pos[0], neg[0])
    hi = max(pos[-1], neg[-1])
    t = np.linspace(lo, hi, num=math.ceil((hi - lo) * per_unit))
    fp = _count_at_least(neg, t)
    fn = len(pos) - _count_at_least(pos, t)
    return fp, fn


def _double_threshold_counts(
    pos: np.ndarray, neg: np.ndarray, per_unit: int, buffer: float
) -> tuple[np.ndarray, np.ndarray]:
    """(fp, fn) counts of the rules "positive iff t_l ≤ s ≤ t_r" with the smaller-range family positive.

    On a range tie the median-negative family becomes positive (as in the reference). With w that range,
    t_r runs over ceil(100·(max_pos + 2 − (min_pos + w − 2))) points of [min_pos + w − 2, max_pos + 2] and,
    for each t_r, t_l over ceil(100·4) = 400 points of [t_r − w − 2, t_r − w + 2].
    """
    if pos[-1] - pos[0] >= neg[-1] - neg[0]:
        pos, neg = neg, pos
    width = pos[-1] - pos[0]
    lo = pos[0] + width - buffer
    hi = pos[-1] + buffer
    right = np.linspace(lo, hi, num=math.ceil((hi - lo) * per_unit))
    left = np.linspace(right - width - buffer, right - width + buffer, num=math.ceil(2 * buffer * per_unit), axis=1)
    right = right[:, None]
    fp = _count_between(neg, left, right).ravel()
    fn = len(pos) - _count_between(pos, left, right).ravel()
    return fp, fn


def _example_epsilon(pos: np.ndarray, neg: np.ndarray, table: np.ndarray, per_unit: int, buffer: float) -> float:
    """ε_i of one example from its oriented, sorted score samples (before clipping)."""
    pos_range = pos[-1] - pos[0]
    neg_range = neg[-1] - neg[0]
    larger, smaller = max(pos_range, neg_range), min(pos_range, neg_range)
    if larger > 0 and smaller / larger < RANGE_RATIO_MIN:
        return EPSILON_CAP
    fp_s, fn_s = _single_threshold_counts(pos, neg, per_unit)
    fp_d, fn_d = _double_threshold_counts(pos, neg, per_unit, buffer)
    best = -np.inf
    for fp, fn in ((fp_s, fn_s), (fp_d, fn_d)):
        if len(fp):
            best = max(best, float(table[fp, fn].max()))
    return best if best > -np.inf else 0.0  # no rule kept: nothing tells the families apart


def _per_example_epsilon(
    unlearned: np.ndarray, retrained: np.ndarray, delta: float, per_unit: int, buffer: float
) -> np.ndarray:
    """:func:`per_example_epsilon` on validated float64 arrays, with the grid parameters exposed for tests."""
    pos, neg = _orient(unlearned, retrained)
    pos = np.sort(pos, axis=0)
    neg = np.sort(neg, axis=0)
    table = _epsilon_table(unlearned.shape[0], delta)
    eps = np.array(
        [_example_epsilon(pos[:, i], neg[:, i], table, per_unit, buffer) for i in range(unlearned.shape[1])],
        dtype=np.float64,
    )
    return np.clip(eps, 0.0, EPSILON_CAP)


def _check_scores(values: ArrayLike, what: str) -> np.ndarray:
    """A finite float64 [N_models, n_examples] array with N_models ≥ 2 and n_examples ≥ 1."""
    s = as_numpy(values, np.float64)
    if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] == 0:
        raise UnlearnlabError(
            f"{what} must be [N_models, n_examples] with N_models >= 2 and n_examples >= 1, got shape {s.shape}."
        )
    if not np.isfinite(s).all():
        raise UnlearnlabError(f"{what} contains NaN or infinite scores; pass finite logit-scaled confidences.")
    return s


def per_example_epsilon(unlearned_scores: ArrayLike, retrained_scores: ArrayLike, delta: float = DELTA) -> np.ndarray:
    """ε_i ∈ [0, 50] per forget example (docs/metrics.md, steps 2–3), float64 [n_examples].

    Inputs are logit-scaled confidences (:func:`logit_scaled_confidence`), [N_models, n_examples] each, the
    same N for both families. Per example i, with U_i / R_i the N unlearned / retrained scores:

    * positive family = R_i if median(R_i) > median(U_i), else U_i;
    * if (smaller range) / (larger range) < 0.01 (one family collapsed), ε_i = 50;
    * otherwise every rule of the two families (single threshold: positive iff s ≥ t; double threshold:
      positive iff t_l ≤ s ≤ t_r around the smaller-range family) yields FPR, FNR as fractions of the N
      models; FPR = FNR = 0 gives ε = ∞, exactly one of them 0 discards the rule, else
      ε = max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR);
    * ε_i = the largest ε over the kept rules (0 if none is kept), clipped to [0, 50].

    When both families have zero range (both constant) the range rule cannot be evaluated (0/0) and the sweep
    decides: different constants separate perfectly (50), equal constants keep no rule (0).
    """
    u = _check_scores(unlearned_scores, "unlearned_scores")
    r = _check_scores(retrained_scores, "retrained_scores")
    if u.shape != r.shape:
        raise UnlearnlabError(
            f"unlearned_scores {u.shape} and retrained_scores {r.shape} must have the same shape "
            "[N_models, n_examples]: N models of each family, the same forget examples."
        )
    if not 0.0 <= delta < 1.0:
        raise UnlearnlabError(f"delta must lie in [0, 1), got {delta}.")
    return _per_example_epsilon(u, r, float(delta), THRESHOLDS_PER_UNIT, BUFFER)


def eps_bar(n_models: int) -> int:
    """ε̄ = ceil(ln(N − 1)), the largest ε the buckets resolve with N models per family (N = 512 ⇒ 7)."""
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 2:
        raise UnlearnlabError(f"n_models must be an integer >= 2 (models per family), got {n_models!r}.")
    return math.ceil(math.log(int(n_models) - 1))


def forget_score(eps: ArrayLike, n_models: int) -> dict[str, float | int]:
    """F, the NeurIPS 2023 forget score (docs/metrics.md, step 3), with ε̄ and N beside it.

    Bucket j = 0, 1, … covers ε ∈ [0.5j, 0.5j + 0.5) for every j with 0.5j + 0.5 ≤ ε̄ = ceil(ln(N − 1)) and is
    worth 2^−j points; ε beyond the last bucket (ε ≥ ε̄) scores 0. F = mean points over the examples, in
    [0, 1]. Returns ``{"F": F, "eps_bar": ε̄, "n_models": N}``; F values from different N are not comparable.
    """
    e = as_numpy(eps, np.float64).reshape(-1)
    if len(e) == 0:
        raise UnlearnlabError("forget_score needs at least one per-example epsilon.")
    if np.isnan(e).any() or (e < 0).any():
        raise UnlearnlabError("eps must be non-negative numbers (per_example_epsilon returns values in [0, 50]).")
    bar = eps_bar(n_models)
    n_buckets = 2 * bar  # ε̄ / BUCKET_WIDTH
    j = np.floor(e / BUCKET_WIDTH)  # exact: e / 0.5 = 2e is a power-of-two scaling
    points = np.where(j < n_buckets, np.exp2(-np.minimum(j, n_buckets)), 0.0)
    return {"F": float(points.mean()), "eps_bar": bar, "n_models": int(n_models)}


def _mean_accuracy(values: ArrayLike | float, what: str) -> float:
    """A scalar accuracy, or the mean of per-model accuracies; finite and ≥ 0."""
    a = as_numpy(values, np.float64).reshape(-1)
    if len(a) == 0 or not np.isfinite(a).all() or (a < 0).any():
        raise UnlearnlabError(f"{what} must be finite, non-negative accuracies (one or one per model), got {a}.")
    return float(a.mean())


def final_score(
    F: float,
    ra_u: ArrayLike | float,
    ra_r: ArrayLike | float,
    ta_u: ArrayLike | float,
    ta_r: ArrayLike | float,
) -> float:
    """NeurIPS 2023 final score F × (RA_u / RA_r) × (TA_u / TA_r) (docs/metrics.md, step 4).

    ``F`` comes from :func:`forget_score`; RA/TA are retain/test accuracies of the unlearned (u) and retrained
    (r) models, in the same unit (% or fraction). Each may be a scalar mean or the N per-model values, which
    are averaged. The ratios are not capped, so an unlearned model more accurate than retraining scores above F.
    """
    f = float(F)
    if not 0.0 <= f <= 1.0:
        raise UnlearnlabError(f"F must lie in [0, 1] (the forget score), got {F}.")
    ra_u_m, ra_r_m = _mean_accuracy(ra_u, "ra_u"), _mean_accuracy(ra_r, "ra_r")
    ta_u_m, ta_r_m = _mean_accuracy(ta_u, "ta_u"), _mean_accuracy(ta_r, "ta_r")
    if ra_r_m == 0 or ta_r_m == 0:
        raise UnlearnlabError("ra_r and ta_r must be positive: they divide the score.")
    return f * (ra_u_m / ra_r_m) * (ta_u_m / ta_r_m)
