"""Forget quality: the NeurIPS 2023 per-example ε forget score of one method on one task (docs/metrics.md).

:func:`forget_quality` builds the two model families the official score compares, on ONE forget set:

* **unlearned**: the method run N times from the same original model, with seeds ``seed0 … seed0 + N − 1``
  (:func:`unlearnlab.api.unlearn`; or any ``seed -> nn.Module`` callable);
* **retrained**: N models trained from scratch on D_r, obtained through ``retrain_fn(seed)`` for the same
  N seeds, so the caller can serve them from the content-addressed model cache (:func:`retrain_factory` does
  that with the benchmark runner's cache).

Each model is scored once and dropped (only N × |D_f| confidences and 2 accuracies per model are kept): the
logit-scaled confidences on D_f feed :func:`~unlearnlab.metrics.forget_score.per_example_epsilon`, then
:func:`~unlearnlab.metrics.forget_score.forget_score` (F, ε̄, N) and
:func:`~unlearnlab.metrics.forget_score.final_score` with RA / TA of each family averaged over its N models.

N = 512 in the challenge; on a CPU a handful is the practical size (:data:`DEFAULT_N_MODELS`). ε cannot be
resolved beyond ε̄ = ceil(ln(N − 1)), so F is only comparable between runs with the same N: ``n_models`` and
``eps_bar`` travel with every result. With N = 3 (ε̄ = 1) the only values ε_i can take are 0, log 2 ≈ 0.69
(one model of each family on the wrong side) and 50 (perfect separation, or a collapsed family), i.e. 1, ½ or
0 points per example.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearnlab.api import unlearn
from unlearnlab.bench.cache import ModelCache
from unlearnlab.bench.cells import check_finite
from unlearnlab.bench.plan import Plan
from unlearnlab.bench.trained import retrained_model
from unlearnlab.data.forget import ForgetTask
from unlearnlab.errors import UnlearnlabError
from unlearnlab.metrics.accuracy import accuracy
from unlearnlab.metrics.forget_score import (
    BUCKET_WIDTH,
    DELTA,
    EPSILON_CAP,
    FORGET_SCORE_DEFINITIONS,
    final_score,
    forget_score,
    logit_scaled_confidence,
    per_example_epsilon,
)

#: the definition name stored with every result (docs/metrics.md)
DEFINITION = "forget_score_eps"
#: N per family when a protocol switches the metric on without a size: 2 × 8 trainings stay cheap on a CPU
#: (ε̄ = ceil(ln 7) = 2, four scoring buckets)
DEFAULT_N_MODELS = 8
#: the ε histogram: buckets of width 0.5 over [0, 50] (ε = 50 counts in the last bucket)
HISTOGRAM_BUCKETS = round(EPSILON_CAP / BUCKET_WIDTH)

Progress = Callable[[str, float], None]
#: a method name (run with :func:`unlearnlab.api.unlearn`) or a ``seed -> unlearned model`` callable
MethodLike = str | Callable[[int], nn.Module]


def _model_scores(model: nn.Module, task: ForgetTask, batch_size: int = 1024) -> tuple[np.ndarray, float, float]:
    """(logit-scaled confidences on D_f [n_f], RA %, TA %) of one model, in eval mode under ``no_grad``.

    RA/TA use float32 softmax probabilities of the same batches as :func:`~unlearnlab.metrics.predict_probs`,
    so they equal the values :func:`~unlearnlab.evaluation.evaluate` reports. Train/eval flags are restored.
    """
    device = next(model.parameters()).device
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            logits = {}
            for name in ("forget", "retain", "test"):
                x = getattr(task, name).x
                logits[name] = torch.cat([model(x[i:i + batch_size].to(device)).float().cpu()
                                          for i in range(0, len(x), batch_size)]) if len(x) else None
    finally:
        for module, training in modes.items():
            module.training = training
    if logits["forget"] is None or logits["retain"] is None or logits["test"] is None:
        raise UnlearnlabError("forget_quality needs non-empty forget, retain and test sets.")
    scores = logit_scaled_confidence(logits["forget"].numpy(), task.forget.y.cpu().numpy())
    ra = accuracy(torch.softmax(logits["retain"], dim=-1).numpy(), task.retain.y.cpu().numpy())
    ta = accuracy(torch.softmax(logits["test"], dim=-1).numpy(), task.test.y.cpu().numpy())
    return scores, float(ra), float(ta)


def eps_histogram(eps: np.ndarray) -> list[int]:
    """Counts of ε_i per 0.5-wide bucket [0.5j, 0.5j + 0.5), j = 0 … 99; ε = 50 falls in the last bucket."""
    j = np.minimum(np.floor(np.asarray(eps, dtype=np.float64) / BUCKET_WIDTH), HISTOGRAM_BUCKETS - 1).astype(int)
    return np.bincount(j, minlength=HISTOGRAM_BUCKETS).tolist()


def _jsonable(value: Any) -> Any:
    """Tuples → lists, NumPy scalars/arrays → Python values; anything else unknown → ``str``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def forget_quality(
    task: ForgetTask,
    original: nn.Module | None,
    method: MethodLike,
    hparams: Mapping[str, Any] | None,
    n_models: int,
    retrain_fn: Callable[[int], nn.Module],
    seed0: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The NeurIPS 2023 forget score of ``method`` on ``task``: F, ε̄, N, final score and the ε_i summary.

    ``method`` is a registered method name, run as ``unlearn(original, task, method=method, seed=s,
    **hparams)`` for s = ``seed0 … seed0 + n_models − 1`` (each run on a copy of ``original``, which is never
    modified), or a callable ``seed -> nn.Module`` returning the unlearned model of seed s (then ``original``
    and ``hparams`` are not used and ``hparams`` must be empty). ``retrain_fn(seed)`` returns the model retrained
    from scratch on D_r with that seed; it is called exactly once per seed, for the same N seeds, and its models
    are only read. A :class:`~unlearnlab.errors.DivergenceError` of any unlearning run (also an unlearned model
left with non-finite weights) propagates.

    Returns a JSON-serialisable dict: ``definition`` (``"forget_score_eps"``), ``F``, ``eps_bar``,
    ``n_models``, ``final_score``, ``eps_mean``, ``eps_median``, ``eps_max``, ``eps_cap_fraction`` (share of
    examples at ε = 50), ``eps_histogram`` (counts per 0.5-wide bucket up to 50), ``points_histogram``
    (examples scoring 1, ½, ¼, … and 0), the accuracies ``ra_u``, ``ra_r``, ``ta_u``, ``ta_r`` (% means over
    each family) with their per-model lists, the seeds, the method and its resolved hyperparameters,
    ``n_forget``, ``delta``, ``seconds`` and ``definitions``.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 2:
        raise UnlearnlabError(f"n_models must be an integer >= 2 (models per family), got {n_models!r}.")
    n_models = int(n_models)
    if len(task.forget) == 0:
        raise UnlearnlabError("The forget set is empty: the forget score needs at least one forget example.")
    if not callable(retrain_fn):
        raise UnlearnlabError("retrain_fn must be a callable seed -> retrained nn.Module.")
    if callable(method):
        if hparams:
            raise UnlearnlabError("hparams apply to a registered method name; a callable method takes none.")
        method_name = getattr(method, "__name__", type(method).__name__)
    elif isinstance(method, str):
        if original is None:
            raise UnlearnlabError(f"Method {method!r} needs the original model to unlearn from.")
        method_name = method
    else:
        raise UnlearnlabError(f"method must be a method name or a callable seed -> model, got {method!r}.")
    report = progress or (lambda label, fraction: None)
    seeds = list(range(int(seed0), int(seed0) + n_models))
    total = 2 * n_models
    start = time.perf_counter()

    unlearned_scores, ra_u, ta_u, resolved = [], [], [], dict(hparams or {})
    for k, seed in enumerate(seeds):
        label = f"forget quality: {method_name} (seed {seed})"
        report(label, k / total)
        if isinstance(method, str):
            res = unlearn(original, task, method=method, seed=seed, **dict(hparams or {}))
            model, method_name, resolved = res.model, res.method, res.hparams
        else:
            model = method(seed)
        check_finite(model, f"{method_name} (seed {seed})")
        s, ra, ta = _model_scores(model, task)
        unlearned_scores.append(s)
        ra_u.append(ra)
        ta_u.append(ta)
        del model

    retrained_scores, ra_r, ta_r = [], [], []
    for k, seed in enumerate(seeds):
        report(f"forget quality: retrain (seed {seed})", (n_models + k) / total)
        model = retrain_fn(seed)
        if not isinstance(model, nn.Module):
            raise UnlearnlabError(f"retrain_fn({seed}) returned {type(model).__name__}, not an nn.Module.")
        s, ra, ta = _model_scores(model, task)
        retrained_scores.append(s)
        ra_r.append(ra)
        ta_r.append(ta)
        del model

    eps = per_example_epsilon(np.stack(unlearned_scores), np.stack(retrained_scores), DELTA)
    score = forget_score(eps, n_models)
    final = final_score(score["F"], ra_u, ra_r, ta_u, ta_r)
    n_buckets = 2 * score["eps_bar"]
    j = np.floor(eps / BUCKET_WIDTH)
    points = {f"{2.0 ** -b:g}": int((j == b).sum()) for b in range(n_buckets)}
    points["0"] = int((j >= n_buckets).sum())
    report(f"forget quality: {method_name}", 1.0)
    result = {
        "definition": DEFINITION,
        "F": score["F"],
        "eps_bar": score["eps_bar"],
        "n_models": score["n_models"],
        "final_score": final,
        "eps_mean": float(eps.mean()),
        "eps_median": float(np.median(eps)),
        "eps_max": float(eps.max()),
        "eps_cap_fraction": float((eps >= EPSILON_CAP).mean()),
        "eps_histogram": {"bucket_width": BUCKET_WIDTH, "upper": EPSILON_CAP, "counts": eps_histogram(eps)},
        "points_histogram": points,
        "ra_u": float(np.mean(ra_u)), "ra_r": float(np.mean(ra_r)),
        "ta_u": float(np.mean(ta_u)), "ta_r": float(np.mean(ta_r)),
        "per_model": {"ra_u": ra_u, "ta_u": ta_u, "ra_r": ra_r, "ta_r": ta_r},
        "seeds_unlearned": seeds,
        "seeds_retrained": seeds,
        "method": method_name,
        "hparams": resolved,
        "n_forget": len(eps),
        "delta": DELTA,
        "seconds": time.perf_counter() - start,
        "definitions": dict(FORGET_SCORE_DEFINITIONS),
    }
    return _jsonable(result)


def retrain_factory(cache: ModelCache, plan: Plan, task: ForgetTask, progress: Progress | None = None
                    ) -> Callable[[int], nn.Module]:
    """``retrain_fn`` for :func:`forget_quality` served by the benchmark's content-addressed model cache.

    ``retrain_fn(seed)`` is the runner's retrained model (``plan``'s retrain recipe, fresh init with ``seed``)
    on ``task``'s split, so seed s of the grid's own task is the very checkpoint the grid scores against, and
    the other seeds are trained once and cached.
    """

    def retrain_fn(seed: int) -> nn.Module:
        model, _ = retrained_model(cache, task, plan, int(seed), progress)
        return model

    return retrain_fn


__all__ = ["DEFAULT_N_MODELS", "DEFINITION", "HISTOGRAM_BUCKETS", "eps_histogram", "forget_quality",
           "retrain_factory"]
