"""U-LiRA: a per-example likelihood-ratio attack that tells an unlearned model from a retrained one (docs/metrics.md).

K shadow models are trained on random halves of a candidate pool, every example in exactly K/2 of them
(:func:`balanced_membership`). For an example x and a model f, s_f(x) is the logit-scaled confidence
log(p_y + 1e-45) − log(Σ_{k≠y} p_k + 1e-45) (:func:`~unlearnlab.metrics.forget_score.logit_scaled_confidence`).
The shadows give, per example, two Gaussians (:func:`fit_shadow_gaussians`):

    s | f trained on x ~ N(μ_in(x), σ_in²),        s | f never trained on x ~ N(μ_out(x), σ_out²),

with per-example means and one variance per family pooled over all examples (LiRA's fixed-variance form, the
stable choice with few shadows). The statistic of a pair (x, f) is the log-likelihood ratio

    Λ(x, f) = log φ(s_f(x); μ_in(x), σ_in) − log φ(s_f(x); μ_out(x), σ_out).

The attacked pairs are (x, unlearned model) and (x, retrained model of the same seed) for every x in D_f:
:func:`attack_metrics` separates the two with a threshold on Λ oriented toward whichever family has the larger
median (a method that pushes D_f *below* the retrained level, as random relabelling does, is caught as well as one
that leaves it above). It reports the balanced accuracy of a threshold chosen on one half of the pairs and scored
on the other (2-fold cross-fitting, averaged over 10 random splits: 50 % in expectation when the families do not
differ) and the TPR at 1 % and
0.1 % FPR. The Gaussians here come from shadow *originals* only (the cheap variant): the paper's version fits the
first family on shadow models unlearned by the method itself, K unlearnings per method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.accuracy import ArrayLike, as_numpy
from unlearnlab.utils import numpy_rng

#: standard deviations are floored here so identical shadows (a deterministic recipe) give a finite ratio
SIGMA_FLOOR = 1e-6
#: the FPR levels of the reported TPRs
FPR_LEVELS = {"ulira_tpr_at_1pct_fpr": 0.01, "ulira_tpr_at_01pct_fpr": 0.001}
#: random 2-fold splits averaged by the cross-fitted balanced accuracy (less noise from one split's luck)
CROSS_FIT_REPEATS = 10

ULIRA_DEFINITIONS: dict[str, str] = {
    "ulira_balanced_accuracy": (
        "U-LiRA (cheap variant, in/out shadow originals): balanced accuracy (%) of a threshold on the per-example "
        "log-likelihood ratio log N(s; mu_in(x), sigma_in) - log N(s; mu_out(x), sigma_out) separating the pairs "
        "(x in D_f, evaluated model) from (x in D_f, Retrain of the same seed), oriented by medians, threshold "
        "2-fold cross-fitted; ideal 50"
    ),
    "ulira_tpr_at_1pct_fpr": "U-LiRA TPR (%) on the evaluated model's D_f pairs at <= 1 % FPR on Retrain's pairs",
    "ulira_tpr_at_01pct_fpr": "U-LiRA TPR (%) on the evaluated model's D_f pairs at <= 0.1 % FPR on Retrain's pairs",
}


def balanced_membership(n_shadows: int, n_examples: int, seed: int = 0) -> np.ndarray:
    """``[K, N]`` booleans: shadow k trains on example x iff ``[k, x]``; every column holds exactly K/2 ``True``.

    Per example, the K/2 shadows are the ranks below K/2 of uniform noise drawn by ``numpy_rng(seed,
    "ulira-membership")``, so each shadow gets about N/2 examples and each example has K/2 "in" and K/2 "out"
    shadows.
    """
    if n_shadows < 2 or n_shadows % 2:
        raise UnlearnlabError(f"U-LiRA needs an even number of shadow models >= 2, got {n_shadows}.")
    if n_examples < 1:
        raise UnlearnlabError("U-LiRA needs a non-empty candidate pool.")
    noise = numpy_rng(seed, "ulira-membership").random((n_shadows, n_examples))
    ranks = np.argsort(np.argsort(noise, axis=0), axis=0)
    return ranks < n_shadows // 2


@dataclass(frozen=True)
class ShadowGaussians:
    """Per-example means of s for shadows trained with (``mu_in``) and without (``mu_out``) each example, and the
    pooled standard deviations of each family."""

    mu_in: np.ndarray
    mu_out: np.ndarray
    sigma_in: float
    sigma_out: float
    n_shadows: int

    def take(self, positions: ArrayLike) -> ShadowGaussians:
        """The Gaussians of the examples at ``positions`` (in that order)."""
        pos = as_numpy(positions, np.int64)
        return ShadowGaussians(self.mu_in[pos], self.mu_out[pos], self.sigma_in, self.sigma_out, self.n_shadows)

    def log_ratio(self, scores: ArrayLike) -> np.ndarray:
        """Λ = log φ(s; μ_in, σ_in) − log φ(s; μ_out, σ_out) per example (``scores`` in the same order)."""
        s = as_numpy(scores, np.float64).reshape(-1)
        if s.shape != self.mu_in.shape:
            raise UnlearnlabError(f"U-LiRA got {len(s)} scores for {len(self.mu_in)} examples.")
        z_in = (s - self.mu_in) / self.sigma_in
        z_out = (s - self.mu_out) / self.sigma_out
        return -0.5 * z_in**2 - math.log(self.sigma_in) + 0.5 * z_out**2 + math.log(self.sigma_out)


def _pooled(scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-column mean over the masked rows, and the pooled std of the residuals (ddof = number of columns)."""
    counts = mask.sum(axis=0)
    means = np.where(mask, scores, 0.0).sum(axis=0) / counts
    residuals = np.where(mask, scores - means, 0.0)
    dof = int(counts.sum()) - scores.shape[1]
    sigma = math.sqrt(float((residuals**2).sum()) / dof) if dof > 0 else 0.0
    return means, max(sigma, SIGMA_FLOOR)


def fit_shadow_gaussians(scores: ArrayLike, member: ArrayLike) -> ShadowGaussians:
    """Fit :class:`ShadowGaussians` to shadow scores ``[K, N]`` (s of example x under shadow k) and the
    membership ``[K, N]`` (True: shadow k trained on x). μ_in(x), μ_out(x) are the means over the shadows with and
    without x; σ_in, σ_out pool the squared residuals of all examples, divided by (pairs − examples)."""
    s = as_numpy(scores, np.float64)
    m = as_numpy(member, bool)
    if s.ndim != 2 or s.shape != m.shape:
        raise UnlearnlabError(f"scores and membership must both be [K, N], got {s.shape} and {m.shape}.")
    if not np.isfinite(s).all():
        raise UnlearnlabError("Shadow scores contain NaN or infinite values.")
    if (m.sum(axis=0) == 0).any() or ((~m).sum(axis=0) == 0).any():
        raise UnlearnlabError("Every example needs at least one shadow with it and one without it (use "
                              "balanced_membership).")
    mu_in, sigma_in = _pooled(s, m)
    mu_out, sigma_out = _pooled(s, ~m)
    return ShadowGaussians(mu_in, mu_out, sigma_in, sigma_out, s.shape[0])


@dataclass(frozen=True)
class UliraReference:
    """What one seed's evaluations are attacked with: the shadow Gaussians of D_f (task order) and the scores s of
    that seed's retrained model on D_f (the negative pairs)."""

    forget: ShadowGaussians
    retrained_scores: np.ndarray


def _split_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return perm[: n // 2], perm[n // 2:]


def _orientation(pos: np.ndarray, neg: np.ndarray) -> float:
    """+1 when the positives' median is at least the negatives' (predict positive above a threshold), else −1."""
    return 1.0 if np.median(pos) >= np.median(neg) else -1.0


def _best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """The threshold τ (predict positive iff value > τ) that maximises ½(TPR + TNR) on these values: the first
    maximising observed value v and the next observed value v' give τ = (v + v')/2, the middle of the gap."""
    values = np.unique(np.concatenate([pos, neg]))
    candidates = np.concatenate([[-np.inf], values])
    sp, sn = np.sort(pos), np.sort(neg)
    tpr = 1.0 - np.searchsorted(sp, candidates, side="right") / len(sp)
    tnr = np.searchsorted(sn, candidates, side="right") / len(sn)
    i = int(np.argmax(tpr + tnr))
    if i == len(values):  # above every value: predict nothing positive
        return float(values[-1])
    upper = float(values[i])
    return upper - 1.0 if i == 0 else 0.5 * (float(candidates[i]) + upper)


def _tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """The largest TPR (%) of a rule "positive iff value > τ" with at most ⌊fpr·n_neg⌋ negatives above τ."""
    allowed = math.floor(fpr * len(neg) + 1e-9)
    if allowed >= len(neg):
        return 100.0
    tau = np.sort(neg)[::-1][allowed]
    return float(100.0 * np.mean(pos > tau))


def attack_metrics(positive: ArrayLike, negative: ArrayLike, seed: int = 0,
                   paired: bool = False) -> dict[str, float | int | str]:
    """Balanced accuracy and TPR at low FPR of a threshold attack on a statistic (e.g. Λ), all in %.

    ``positive``: values of the attacked pairs (D_f on the evaluated model); ``negative``: values of the pairs
    that are not (D_f on the retrained model). The rule is "positive iff o·value > τ" with orientation o = +1 when
    the positives' median is at least the negatives', else −1.

    * ``ulira_balanced_accuracy``: each side is split in two random halves (``numpy_rng(seed, "ulira-folds")``);
      o and τ (maximising ½(TPR + TNR)) are chosen on one half and the balanced accuracy is measured on the other,
      both ways; averaged over :data:`CROSS_FIT_REPEATS` splits. 50 % means the attack does no better than chance.
      With ``paired=True`` (equal lengths, ``positive[i]`` and ``negative[i]`` about the same example), both values
      of an example go to the same half, so identical families score exactly 50 %.
    * ``ulira_tpr_at_1pct_fpr``, ``ulira_tpr_at_01pct_fpr``: over all pairs with o from all pairs, the TPR at the
      threshold that lets at most ⌊α·n_negative⌋ negatives through. Below α = 1/n_negative the rule admits no
      false positive (``fpr_resolution`` = 100/n_negative %, reported with the counts).
    """
    pos = as_numpy(positive, np.float64).reshape(-1)
    neg = as_numpy(negative, np.float64).reshape(-1)
    if len(pos) < 2 or len(neg) < 2:
        raise UnlearnlabError(f"U-LiRA needs at least 2 positive and 2 negative pairs, got {len(pos)} and {len(neg)}.")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise UnlearnlabError("The attack statistic contains NaN or infinite values.")
    if paired and len(pos) != len(neg):
        raise UnlearnlabError(f"Paired pairs need as many negatives as positives, got {len(pos)} and {len(neg)}.")
    rng = numpy_rng(seed, "ulira-folds")
    scores = []
    for _ in range(CROSS_FIT_REPEATS):
        pos_folds = _split_halves(len(pos), rng)
        neg_folds = pos_folds if paired else _split_halves(len(neg), rng)
        for train, test in ((0, 1), (1, 0)):
            p_tr, n_tr = pos[pos_folds[train]], neg[neg_folds[train]]
            o = _orientation(p_tr, n_tr)
            tau = _best_threshold(o * p_tr, o * n_tr)
            p_te, n_te = o * pos[pos_folds[test]], o * neg[neg_folds[test]]
            scores.append(0.5 * (np.mean(p_te > tau) + np.mean(n_te <= tau)))
    o = _orientation(pos, neg)
    out: dict[str, float | int | str] = {"ulira_balanced_accuracy": float(100.0 * np.mean(scores))}
    for name, level in FPR_LEVELS.items():
        out[name] = _tpr_at_fpr(o * pos, o * neg, level)
    out.update(orientation="+" if o > 0 else "-", n_positive=len(pos), n_negative=len(neg),
               fpr_resolution=100.0 / len(neg))
    return out


def ulira(forget_scores: ArrayLike, reference: UliraReference, seed: int = 0) -> dict[str, float | int | str]:
    """U-LiRA of one evaluated model: :func:`attack_metrics` of Λ on its D_f scores (positives) against Λ on the
    retrained model's D_f scores (negatives), with the shadow Gaussians of ``reference``; adds ``n_shadows``."""
    out = attack_metrics(reference.forget.log_ratio(forget_scores),
                         reference.forget.log_ratio(reference.retrained_scores), seed, paired=True)
    out["n_shadows"] = reference.forget.n_shadows
    return out
