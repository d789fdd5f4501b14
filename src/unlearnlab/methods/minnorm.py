"""MinNorm-OG's exact constructions, its projection step and the output Jacobian, as pure functions.

Definitions and the theorems behind them: docs/methods.md ("MinNorm-OG") and docs/minnorm_experiments.md.

- :func:`shrink_toward_span` — θ ← θ − λ·(θ − P_A θ), P_A the orthogonal projector onto col(A), computed from a
  thin QR of A in float64 with an SVD rank guard on R. Used by the projection modifier.
- :func:`output_jacobian` — the d × M matrix of model-output gradients on a few retain samples, and
  :func:`subsample`, which picks those samples.
- :func:`linear_min_norm` — E1: for f = θᵀx, P_{S_r}θ*, the minimum-norm interpolator of D_r when θ*
  interpolates it (Thm 2, Lemma 5).
- :func:`deep_linear_update` — E2: the rank-one first-layer update of a deep linear network (Lemma 1, Thm 3).
- :func:`sparsify_two_layer` — E4: f = cᵀφ(Ax), keep the retain outputs with at most rank Φ ≤ n_r active neurons
  (Lemma 2, Lemma 6, Prop. 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import nn

from unlearnlab.counting import counted_as
from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import preserved_buffers

log = logging.getLogger(__name__)
QUOTA_FALLBACKS = ("uniform", "one_per_class", "error")
LOSS_TYPES = ("classifier", "regression")

#: singular values of R below ``RANK_RTOL``·σ_max are treated as zero (docs/methods.md, MinNorm-OG "Math": rank guard)
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
    (Formula rebuilt from the proof of Lemma 1 of Block, Mokhtari, Shakkottai, arXiv:2505.22601.)
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


def heads_of(out: Any) -> tuple[torch.Tensor, ...]:
    """A model output as a tuple of heads (a tensor is one head)."""
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def head_labels(y: torch.Tensor, heads: int) -> torch.Tensor:
    """Labels as ``[B, heads]`` (a 1-D ``y`` is the single head's labels)."""
    y2 = y[:, None] if y.ndim == 1 else y
    if y2.shape[1] != heads:
        raise UnlearnlabError(f"The model has {heads} heads but the labels have {y2.shape[1]} columns.")
    return y2


def subsample(y: torch.Tensor | None, size: int, n_pert: int, generator: torch.Generator,
              fallback: str = "uniform") -> tuple[torch.Tensor, bool]:
    """``(positions in the batch, fallback used?)`` of the Jacobian subsample .

    ``y`` = first-head labels (classifier) or ``None`` (regression: uniform min(n_pert, size)). With K classes
    present and K ≤ n_pert: min(⌊n_pert/K⌋, n_c) per class, uniformly without replacement, classes ascending.
    K > n_pert (the reference's zero quota): ``"uniform"`` n_pert members uniformly, ``"one_per_class"`` one per
    class (m = K), ``"error"`` raises. Never empty; an empty batch is an error.
    """
    if size == 0:
        raise UnlearnlabError("MinNorm-OG: the retain batch is empty, no Jacobian can be formed.")
    if n_pert < 1:
        raise UnlearnlabError(f"MinNorm-OG: grad_sample_size must be >= 1, got {n_pert}.")
    if fallback not in QUOTA_FALLBACKS:
        raise UnlearnlabError(f"Unknown quota_fallback {fallback!r}: use one of {', '.join(QUOTA_FALLBACKS)}.")
    if y is None:
        return torch.randperm(size, generator=generator)[: min(n_pert, size)], False
    y = y.cpu()
    classes = torch.unique(y)
    k = len(classes)
    if k > n_pert:
        if fallback == "error":
            raise UnlearnlabError(
                f"MinNorm-OG: the retain batch has {k} classes > grad_sample_size {n_pert}: the per-class quota "
                "⌊n_pert/K⌋ is 0 and the Jacobian would be empty (the projection would degrade to plain "
                "shrinkage). Raise grad_sample_size or use quota_fallback='uniform' / 'one_per_class'."
            )
        if fallback == "uniform":
            return torch.randperm(size, generator=generator)[:n_pert], True
        quota = 1
    else:
        quota = n_pert // k
    picks = []
    for cls in classes:
        members = torch.nonzero(y == cls).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[: min(quota, len(members))]])
    return torch.cat(picks), k > n_pert



def couples_samples(model: nn.Module) -> bool:
    """Whether a forward mixes samples of a batch (BatchNorm in training mode uses batch statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


def per_sample_max_logit_jacobian(model: nn.Module, x: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """The classifier Jacobian of :func:`output_jacobian` from per-sample gradients (``torch.func``).

    Valid when no layer couples the samples of a batch (:func:`couples_samples` is False): then column (h, i)
    depends on sample i alone and equals ∇θ max_k z_h(x_i)_k computed on x_i by itself. One vmapped backward
    over the batch (``jacrev`` for the H heads) costs about H batch backwards, instead of one full-batch backward
    per column.
    """
    from torch.func import functional_call, jacrev, vmap

    tracked = {id(p) for p in params}
    names = [n for n, p in model.named_parameters() if id(p) in tracked]
    rest = {n: p.detach() for n, p in model.named_parameters() if id(p) not in tracked}
    rest.update(dict(model.named_buffers()))
    order = {id(p): i for i, p in enumerate(params)}
    by_name = dict(model.named_parameters())
    names.sort(key=lambda n: order[id(by_name[n])])

    def max_logits(theta: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        """[H]: each head's max logit on one sample."""
        heads = heads_of(functional_call(model, {**theta, **rest}, (xi.unsqueeze(0),)))
        return torch.cat([z.gather(1, z.detach().argmax(1, keepdim=True)).reshape(1) for z in heads])

    theta = {n: by_name[n].detach() for n in names}
    g = vmap(jacrev(max_logits), in_dims=(None, 0))(theta, x)  # name → [n, H, *shape]
    n, heads = len(x), g[names[0]].shape[1]
    rows = torch.cat([g[k].reshape(n, heads, -1) for k in names], dim=2)  # [n, H, d]
    return rows.transpose(0, 1).reshape(heads * n, -1).T  # columns head-major, as output_jacobian


def output_jacobian(model: nn.Module, x: torch.Tensor, task: str = "classifier",
                    params: list[nn.Parameter] | None = None, vectorised: bool = True) -> torch.Tensor:
    """The d × M output-gradient Jacobian on the inputs ``x``, in the parameters' dtype.

    One forward of ``x`` as a batch (in the model's current mode); columns are the gradients of the max logit of
    each (head, sample) (head-major; argmax at the current θ, a constant) or of each regression output
    coordinate, flattened over ``params`` (trainable parameters in ``model.parameters()`` order; zeros where an
    output does not reach a parameter). All VJPs in one batched backward (``is_grads_batched``), else M
    backward passes. Every buffer (BatchNorm running statistics) is restored bit-identically afterwards.
    """
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    if vectorised and task == "classifier" and not couples_samples(model):
        with torch.enable_grad(), counted_as() as count:  # the vmap shows the hooks one sample
            jacobian = per_sample_max_logit_jacobian(model, x, params)
            count.forward, count.backward = len(x), jacobian.shape[1]  # one VJP per (head, sample) column
            return jacobian
    with preserved_buffers(model), torch.enable_grad():
        out = model(x)
        if task == "regression":
            s = torch.cat([z.reshape(len(x), -1).T.reshape(-1) for z in heads_of(out)])
        else:
            s = torch.cat([z.gather(1, z.detach().argmax(1, keepdim=True)).flatten() for z in heads_of(out)])
        cols = s.numel()
        grads = None
        if vectorised:
            try:
                eye = torch.eye(cols, dtype=s.dtype, device=s.device)
                grads = torch.autograd.grad(s, params, grad_outputs=eye, is_grads_batched=True,
                                            allow_unused=True, retain_graph=True)
            except (RuntimeError, NotImplementedError) as err:  # an op without a batching rule
                log.debug("batched VJPs unavailable (%s); falling back to %d backward passes", err, cols)
                grads = None
        if grads is None:
            rows = []
            for i in range(cols):
                g = torch.autograd.grad(s[i], params, retain_graph=i < cols - 1, allow_unused=True)
                rows.append(g)
            grads = [torch.stack([r[j] if r[j] is not None else torch.zeros_like(p) for r in rows])
                     if any(r[j] is not None for r in rows) else None for j, p in enumerate(params)]
    blocks = [(g.reshape(cols, -1) if g is not None else
               torch.zeros(cols, p.numel(), dtype=p.dtype, device=p.device)) for g, p in zip(grads, params)]
    return torch.cat(blocks, dim=1).T


def flat_params(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def write_params(params: list[nn.Parameter], flat: torch.Tensor) -> None:
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p).to(p.dtype))
            offset += n


def project_params(params: list[nn.Parameter], a: torch.Tensor, strength: float, dtype: torch.dtype = torch.float64,
                   rtol: float = RANK_RTOL) -> int:
    """θ ← θ − strength·(θ − P_A θ) on ``params`` in ``dtype``; returns rank(A) kept by the guard."""
    a = a.to(dtype)
    basis = span_basis(a, rtol)
    del a
    theta = flat_params(params).to(dtype)
    write_params(params, theta - strength * (theta - project(theta, basis)))
    return int(basis[1].shape[1])
