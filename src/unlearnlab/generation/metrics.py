"""Generation metrics as pure functions over classifier outputs and features (docs/generation.md, "Metrics").

Every metric has a name and a versioned definition (:data:`DEFINITIONS`); a stored value is always next to the
definition that produced it. ``fd_clf`` and ``kid_clf`` are computed in the feature space of the project's own
evaluation classifier: they are not FID/KID (no Inception network) and are never reported as such.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.accuracy import as_numpy, check_probs_labels
from unlearnlab.metrics.mia import entropy

#: metric name → "v<version>: definition"
DEFINITIONS: dict[str, str] = {
    "ua": "v1: 100 × share (%) of the generated forget-class samples that the evaluation classifier does not assign "
          "to the forgotten class c (argmax ≠ c)",
    "p_forget": "v1: mean over the generated forget-class samples of the evaluation classifier's softmax probability "
                "of the forgotten class c",
    "entropy_forget": "v1: mean over the generated forget-class samples of the Shannon entropy (nats) of the "
                      "evaluation classifier's softmax",
    "fidelity": "v1: top-1 accuracy (%) of the evaluation classifier on generated samples of the retained classes, "
                "the target being the class each sample was generated for (conditional fidelity)",
    "fd_clf": "v1: Fréchet distance ‖μ_g − μ_r‖² + Tr(Σ_g + Σ_r − 2(Σ_g Σ_r)^½) between Gaussian fits of the "
              "evaluation classifier's penultimate features of generated retained-class samples (g) and of held-out "
              "real images of the retained classes (r); not FID",
    "kid_clf": "v1: unbiased MMD² with the kernel k(a, b) = (aᵀb/d + 1)³ between the same two feature sets as fd_clf "
               "(all samples, no subsets); not KID-Inception",
    "fd_clf_floor": "v1: fd_clf between real training images of the retained classes (as many per class as generated "
                    "samples, capped by the data) and the held-out real images: the value a perfect generator "
                    "would reach at this sample size",
    "recognition": "v1: per class k, top-1 accuracy (%) of the evaluation classifier on samples generated for k",
    "ua_gap": "v1: |ua − ua_retrain|",
    "fd_gap": "v1: |fd_clf − fd_clf_retrain|",
    "avg_gap": "v1: (ua_gap + fd_gap)/2, the gap to Retrain over UA (%) and fd_clf (feature units)",
}


def unlearning_accuracy(probs: np.ndarray, forget_class: int) -> float:
    """UA (%) = 100 · mean_i 1[argmax p_i ≠ c] over generated forget-class samples."""
    probs = _probs(probs, forget_class)
    return float(100.0 * np.mean(probs.argmax(axis=1) != forget_class))


def mean_class_probability(probs: np.ndarray, forget_class: int) -> float:
    """mean_i p_i(c)."""
    return float(_probs(probs, forget_class)[:, forget_class].mean())


def mean_entropy(probs: np.ndarray) -> float:
    """mean_i −Σ_k p_ik log p_ik (nats)."""
    return float(np.mean(entropy(_probs(probs, 0))))


def conditional_accuracy(probs: np.ndarray, classes: np.ndarray) -> float:
    """Top-1 accuracy (%) of ``probs`` against the classes the samples were generated for."""
    probs, classes = as_numpy(probs, np.float64), as_numpy(classes).astype(np.int64)
    check_probs_labels(probs, classes, "generated-sample probabilities")
    return float(100.0 * np.mean(probs.argmax(axis=1) == classes))


def per_class_accuracy(probs: np.ndarray, classes: np.ndarray) -> dict[int, float]:
    """Class k → top-1 accuracy (%) on the samples generated for k."""
    probs, classes = as_numpy(probs, np.float64), as_numpy(classes).astype(np.int64)
    check_probs_labels(probs, classes, "generated-sample probabilities")
    return {int(k): float(100.0 * np.mean(probs[classes == k].argmax(axis=1) == k)) for k in np.unique(classes)}


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of ``features`` [n, d]: the mean and the unbiased covariance (n − 1 denominator), float64."""
    f = _features(features)
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (eigenvalues below 0, numerical, set to 0)."""
    values, vectors = scipy.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1 Σ2)^½) of two Gaussians.

    Tr((Σ1 Σ2)^½) is computed as Σ_k √λ_k over the eigenvalues of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½, which has
    the eigenvalues of Σ1 Σ2: exact also when a covariance is singular (fewer samples than feature dimensions, dead
    features), where a general matrix square root of Σ1 Σ2 is ill-conditioned. The result is clipped at 0.
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    root = psd_sqrt((s1 + s1.T) / 2)
    inner = root @ s2 @ root
    cross = np.sqrt(np.clip(scipy.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross))


def fd_clf(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """:func:`frechet_distance` of the Gaussian fits of two feature sets [n, d] (the ``fd_clf`` definition)."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


def kid_clf(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (aᵀb/d + 1)³:
    Σ_{i≠j} k(a_i, a_j)/(m(m−1)) + Σ_{i≠j} k(b_i, b_j)/(n(n−1)) − 2·Σ_{i,j} k(a_i, b_j)/(mn)."""
    a, b = _features(features_a), _features(features_b)
    if a.shape[1] != b.shape[1]:
        raise UnlearnlabError(f"kid_clf needs features of one dimension, got {a.shape[1]} and {b.shape[1]}.")
    d = a.shape[1]
    m, n = len(a), len(b)
    kaa = (a @ a.T / d + 1.0) ** 3
    kbb = (b @ b.T / d + 1.0) ** 3
    kab = (a @ b.T / d + 1.0) ** 3
    within_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * kab.mean())


def _probs(probs: np.ndarray, forget_class: int) -> np.ndarray:
    p = as_numpy(probs, np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise UnlearnlabError(f"Probabilities must be a non-empty [N, C] array, got shape {p.shape}.")
    if not 0 <= forget_class < p.shape[1]:
        raise UnlearnlabError(f"The forgotten class {forget_class} is not a column of the [N, {p.shape[1]}] "
                              "probabilities.")
    return p


def _features(features: np.ndarray) -> np.ndarray:
    f = as_numpy(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise UnlearnlabError(f"Features must be an [n, d] array with n >= 2, got shape {f.shape}.")
    return f
