"""MinNorm-OG's exact constructions and its projection step (minnorm_og.md §1–§3), as pure functions.

- :func:`shrink_toward_span` — θ ← θ − λ·(θ − P_A θ), P_A the orthogonal projector onto col(A), computed from a
  thin QR of A in float64 with an SVD rank guard on R (§3.3). Used by the ``min_norm`` rule.
- :func:`linear_min_norm` — E1: for f = θᵀx, P_{S_r}θ*, the minimum-norm interpolator of D_r when θ*
  interpolates it (Thm 2, Lemma 5).
- :func:`deep_linear_update` — E2: the rank-one first-layer update of a deep linear network (Lemma 1, Thm 3).
- :func:`sparsify_two_layer` — E4: f = cᵀφ(Ax), keep the retain outputs with at most rank Φ ≤ n_r active neurons
  (Lemma 2, Lemma 6, Prop. 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch

#: singular values of R below ``RANK_RTOL``·σ_max are treated as zero (§3.3)
RANK_RTOL = 1e-10


def span_basis(a: torch.Tensor, rtol: float = RANK_RTOL) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Q, U_K)`` with Q·U_K an orthonormal basis of col(A) (A: d × m, any float dtype, computed as given).

    Thin QR A = QR, SVD R = U_R Σ V_Rᵀ, keep the columns with σ_i > rtol·σ_max. ``Q·U_K`` is never formed.
    An all-zero A (or m = 0) gives an empty basis.
    """
    if a.ndim != 2:
        raise ValueError(f"A must be a d × m matrix, got shape {tuple(a.shape)}.")
    d, m = a.shape
    if m == 0:
        return a.new_zeros(d, 0), a.new_zeros(0, 0)
    q, r = torch.linalg.qr(a, mode="reduced")
    u, s, _ = torch.linalg.svd(r)
    if s.numel() == 0 or s.max() == 0:
        return q, u[:, :0]
    keep = s > rtol * s.max()
    return q, u[:, keep]


def project(theta: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """P_A θ = Q(U_K(U_Kᵀ(Qᵀθ))) for ``basis = span_basis(A)``."""
    q, uk = basis
    return q @ (uk @ (uk.T @ (q.T @ theta)))


def shrink_toward_span(theta: torch.Tensor, a: torch.Tensor, strength: float,
                       rtol: float = RANK_RTOL) -> tuple[torch.Tensor, int]:
    """``(θ − strength·(θ − P_A θ), rank)`` in the dtype of ``a`` (pass float64 for the reference precision).

    strength 1 gives P_A θ, strength 0 the identity; the component in col(A) never changes.
    """
    theta = theta.to(a.dtype)
    basis = span_basis(a, rtol)
    return theta - strength * (theta - project(theta, basis)), int(basis[1].shape[1])


def linear_min_norm(theta: np.ndarray, x_retain: np.ndarray) -> np.ndarray:
    """E1: P_{S_r}θ, S_r = span of the retain inputs (rows of ``x_retain``, n_r × d), via QR of X_rᵀ.

    If θ interpolates the retain data (X_r θ = y_r) this is X_rᵀ(X_r X_rᵀ)⁻¹y_r, the minimum-norm interpolator.
    """
    a = torch.as_tensor(np.asarray(x_retain, dtype=np.float64).T)
    t = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    out, _ = shrink_toward_span(t, a, 1.0)
    return out.numpy()


def deep_linear_update(layers: list[np.ndarray], c: np.ndarray, x_retain: np.ndarray) -> np.ndarray:
    """E2: Δ_{A1} = −v·(P_{S_r⊥}w)ᵀ/‖v‖² for f = cᵀA_{L−1}⋯A_1x (``layers`` = [A_1, …, A_{L−1}]).

    v = A_2ᵀ⋯A_{L−1}ᵀc, w = A_1ᵀv. After A_1 ← A_1 + Δ, w = P_{S_r}w(θ*) and Δ ⊥ v·xᵀ for every x ∈ S_r.
    (Formula rebuilt from the proof of Lemma 1, minnorm_og.md §2.)
    """
    v = np.asarray(c, dtype=np.float64)
    for a in reversed(layers[1:]):
        v = a.T @ v
    w = layers[0].T @ v
    w_perp = w - linear_min_norm(w, x_retain)
    return -np.outer(v, w_perp) / (v @ v)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def sparsify_two_layer(a: np.ndarray, c: np.ndarray, x_retain: np.ndarray,
                       activation: Callable[[np.ndarray], np.ndarray] = relu,
                       rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """E4: ``(A', c')`` for f = cᵀφ(Ax) with the same retain outputs and at most rank Φ ≤ n_r active neurons.

    Φ = φ(A X_rᵀ) (h × n_r), s = rank Φ. The first s pivots K of a column-pivoted QR of Φᵀ index rows of Φ of
    rank s; solve Φ_Kᵀc'_K = Φᵀc (consistent) and set c' = 0 off K; then zero every row of A whose c'_i = 0.
    f is linear in c, so the retain outputs are unchanged (up to rounding).
    """
    a = np.asarray(a, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    phi = activation(a @ np.asarray(x_retain, dtype=np.float64).T)  # h × n_r
    target = phi.T @ c  # retain outputs
    _, r, piv = scipy.linalg.qr(phi.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    s = int((diag > rtol * diag.max()).sum()) if diag.size and diag.max() > 0 else 0
    keep = piv[:s]
    c_new = np.zeros_like(c)
    if s:
        c_new[keep] = np.linalg.lstsq(phi[keep].T, target, rcond=None)[0]
    a_new = a.copy()
    a_new[c_new == 0] = 0.0
    return a_new, c_new


def active_neurons(a: np.ndarray, c: np.ndarray) -> int:
    """#i with c_i ≠ 0 and row a_i ≠ 0."""
    return int(((np.asarray(c) != 0) & np.any(np.asarray(a) != 0, axis=1)).sum())
