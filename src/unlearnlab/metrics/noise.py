"""The noise floor: is a method's gap to Retrain larger than the gap between two equally good retrains?

A protocol's noise-floor row is a second Retrain R'_s, trained on the same D_r as R_s with independent seeds for the
initialisation and the data order (docs/metrics.md, "Noise floor"). For a metric k, the seed-matched differences
d_s = r'_k(s) − r_k(s) are differences from Retrain that mean nothing; their root mean square

    τ_k = sqrt(mean_s d_s²)

is the scale of one such difference. For an MIA drawn on one attack set, the method's own value also moves with
the attack's draw: its attack spread a_k (the std over resampled attack sets, 0 when not drawn) adds to the scale.
A method's table gap g_k = |mean_s x_k(s) − mean_s r_k(s)| over n seeds is *above noise* when

    g_k > z·sqrt(τ_k² + a_k²)/√n,      z = 2

(about 95 % two-sided if those differences were normal with that scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from unlearnlab.errors import UnlearnlabError

#: how many noise standard errors a gap must exceed to be marked
Z_NOISE = 2.0


def noise_scale(floor_values: Sequence[float], retrain_values: Sequence[float]) -> float:
    """τ = sqrt(mean_s (r'_s − r_s)²) over seed-matched values of the noise-floor and the Retrain rows."""
    a = np.asarray(floor_values, dtype=np.float64)
    b = np.asarray(retrain_values, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise UnlearnlabError(f"noise_scale needs two equally long, non-empty value lists (one per seed), got "
                              f"{a.shape} and {b.shape}.")
    return float(math.sqrt(np.mean((a - b) ** 2)))


def above_noise(gap: float, scale: float, n_seeds: int, attack_std: float | None = None, z: float = Z_NOISE) -> bool:
    """True when ``gap`` > z·sqrt(``scale``² + ``attack_std``²)/√``n_seeds`` (a zero gap never is)."""
    if n_seeds < 1:
        raise UnlearnlabError(f"n_seeds must be >= 1, got {n_seeds}.")
    a = 0.0 if attack_std is None else attack_std
    if not (math.isfinite(gap) and math.isfinite(scale) and math.isfinite(a)):
        return False
    return gap > 0 and gap > z * math.hypot(scale, a) / math.sqrt(n_seeds)
