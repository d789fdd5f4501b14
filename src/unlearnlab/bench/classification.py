"""The work of a classification grid cell: unlearn the cached original, check it, score it against R_s.

:class:`ClassificationCell` is the small picklable description an executor ships to a worker (method, seed,
hyperparameters, the paths and SHA-256 digests of the original and retrained checkpoints, the retrained model's
metrics); calling it rebuilds the task, loads both models — their bytes verified against the digests, then
``torch.load(weights_only=True)`` — unlearns and scores, and returns :class:`~unlearnlab.bench.cells.Scores`.
It never sees the results store nor the output folder: the driver writes the rows and saves the models that
come back as artifacts (:mod:`unlearnlab.bench.cells`). :func:`unlearn_and_score` is the same unlearn → check →
evaluate step for callers that hold the models already (tuning trials). The after-unlearning health warnings
(retain accuracy collapsed, forget accuracy did not move) go into the stats as ``warnings`` rather than to
standard error, so the driver writes them to ``run.log`` and the row.

Every row's stats say how it was timed (``timing``: device type, warm-up steps, precision; the table shows a
run-time ratio to Retrain only between rows timed alike), how long its evaluation took (``eval_seconds``) and how
the attacks were drawn (``evaluation``: shadow-set sizes and cuts, attack draws, U-LiRA counts).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from torch import nn

from unlearnlab.api import WARMUP_STEPS, unlearn
from unlearnlab.bench.cache import load_checkpoint
from unlearnlab.bench.cells import Scores, check_finite
from unlearnlab.bench.plan import NOISE_FLOOR, REFERENCE
from unlearnlab.data.forget import ForgetTask, make_task
from unlearnlab.errors import HealthWarning, UnlearnlabError
from unlearnlab.evaluation import EvalOptions, Evaluation, evaluate
from unlearnlab.models import create

Tick = Callable[[float], None]

#: the retrain checkpoint's metadata carried into the ``retrain`` row's stats
RETRAIN_META_KEYS = ("seconds", "forward_samples", "backward_samples", "optimizer_steps", "device", "warmup_steps",
                     "precision")
#: the arithmetic unlearning runs in (methods do not autocast)
METHOD_PRECISION = "fp32"


def _scored(model: nn.Module, task: ForgetTask, reference: Evaluation | None, primary_mia: str,
            options: EvalOptions | None) -> tuple[Evaluation, float]:
    """The evaluation of ``model`` and the seconds it took."""
    start = time.perf_counter()
    scores = evaluate(model, task, reference, primary_mia, options=options)
    return scores, time.perf_counter() - start


def unlearn_and_score(original: nn.Module, task: ForgetTask, method: str, seed: int, hparams: Mapping[str, Any],
                      reference: Evaluation, primary_mia: str, progress: Tick | None = None,
                      options: EvalOptions | None = None, keep_model: bool = False) -> Scores:
    """Run ``method`` on a copy of ``original``, refuse a non-finite result (a divergence), score it against
    ``reference`` (the retrained model's evaluation on the same task) with ``options``. A certified method's
    model and certificate (and with ``keep_model`` any method's model) come back as the artifact; health warnings
    come back in the stats (``warnings``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HealthWarning)  # recorded in res.stats["warnings"]
        res = unlearn(original, task, method=method, seed=seed, progress=progress, **dict(hparams))
    check_finite(res.model, f"{method} (seed {seed})")
    scores, eval_seconds = _scored(res.model, task, reference, primary_mia, options)
    artifact = None
    if res.certificate is not None or keep_model:  # the driver saves the model (next to its certificate)
        artifact = {"state_dict": _weights(res.model), "certificate": res.certificate}
    device = next(res.model.parameters()).device.type
    stats = {"rte_minutes": res.seconds / 60.0, "seconds": res.seconds, **res.counters.as_dict(), **res.stats,
             "timing": {"device": device, "warmup_steps": WARMUP_STEPS, "precision": METHOD_PRECISION},
             "eval_seconds": eval_seconds, "evaluation": scores.details}
    return Scores(scores.metrics, scores.definitions, stats, artifact)


def _weights(model: nn.Module) -> dict[str, Any]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def trained_scores(model: nn.Module, task: ForgetTask, meta: Mapping[str, Any], reference: Evaluation | None,
                   primary_mia: str, options: EvalOptions | None = None, keep_model: bool = False) -> Scores:
    """The row of a trained model (Retrain, or the noise floor scored against Retrain): its evaluation, and its
    training time and counters from the checkpoint's metadata as the run time; with ``keep_model`` the model
    comes back as the artifact."""
    scores, eval_seconds = _scored(model, task, reference, primary_mia, options)
    counters = {k: meta.get(k) for k in ("forward_samples", "backward_samples", "optimizer_steps")}
    timing = {"device": str(meta.get("device") or "").split(":")[0] or None,
              "warmup_steps": meta.get("warmup_steps"), "precision": meta.get("precision")}
    stats = {"rte_minutes": meta["seconds"] / 60.0, "seconds": meta["seconds"], **counters,
             "cached_retrain_device": meta.get("device"), "timing": timing, "eval_seconds": eval_seconds,
             "evaluation": scores.details}
    return Scores(scores.metrics, scores.definitions, stats,
                  {"state_dict": _weights(model), "certificate": None} if keep_model else None)


@lru_cache(maxsize=1)
def _task(dataset: str, forget: str, seed: int, device: str, root: str | None) -> ForgetTask:
    """The task of a seed, kept for the next cell of the same seed (cells never mutate a task)."""
    return make_task(dataset, forget, seed, device=device, root=root)


def clear_task_cache() -> None:
    """Forget the task kept by :func:`_task` (its tensors may be large)."""
    _task.cache_clear()


@dataclass(frozen=True)
class ClassificationCell:
    """Everything one classification cell needs, and nothing that lets it write results."""

    method: str
    seed: int
    hparams: dict[str, Any]
    dataset: str
    model: str
    forget: str
    root: str | None
    device: str
    primary_mia: str
    #: the split the driver planned for this seed; a worker whose data differ refuses to run
    split_hash: str
    #: checkpoints (paths on the driver; the Ray executor ships their bytes) and the SHA-256 each must have: the
    #: original and, for the ``retrain`` and noise-floor rows, the model they score (Retrain's, or the independent
    #: second retrain)
    original: str
    retrain: str
    original_sha256: str
    retrain_sha256: str
    #: seconds, counters, device, warm-up and precision of that retrained model's training (the row's RTE)
    retrain_meta: dict[str, Any] = field(default_factory=dict)
    #: what the evaluation computes (MIAs, attack draws, U-LiRA reference of this seed)
    options: EvalOptions | None = None
    #: metrics of the retrained model, the per-seed gap's reference (computed once by the driver)
    reference: dict[str, float] = field(default_factory=dict)
    reference_definitions: dict[str, str] = field(default_factory=dict)
    #: return the unlearned (or retrained) model as the artifact, for ``--save-models``
    save_model: bool = False

    def files(self) -> tuple[str, ...]:
        """The checkpoint files this cell reads."""
        return (self.original, self.retrain)

    def _load(self, task: ForgetTask, path: str, digest: str, files: Mapping[str, bytes] | None) -> nn.Module:
        model = create(self.model, task, seed=self.seed, device=self.device)
        source = files[path] if files and path in files else path
        load_checkpoint(source, model, digest)  # checksum, then weights_only=True; refuses another architecture
        return model.to(self.device).eval()

    def __call__(self, files: Mapping[str, bytes] | None = None, progress: Tick | None = None,
                 shared: Any = None) -> Scores:
        """Score the cell. ``files`` maps a checkpoint path to its bytes (Ray; missing paths are read from
        disk); ``shared`` is the driver's task of this seed (serial executor), used when its split matches."""
        task = shared if getattr(shared, "split_hash", None) == self.split_hash else None
        if task is None:
            task = _task(self.dataset, self.forget, self.seed, self.device, self.root)
        if task.split_hash != self.split_hash:
            raise UnlearnlabError(f"This worker's {self.dataset} split ({task.split_hash}) differs from the "
                                  f"driver's ({self.split_hash}): give every node the same dataset files.")
        reference = Evaluation(dict(self.reference), dict(self.reference_definitions))
        if self.method not in (REFERENCE, NOISE_FLOOR):
            original = self._load(task, self.original, self.original_sha256, files)
            return unlearn_and_score(original, task, self.method, self.seed, self.hparams, reference,
                                     self.primary_mia, progress, self.options, self.save_model)
        model = self._load(task, self.retrain, self.retrain_sha256, files)
        return trained_scores(model, task, self.retrain_meta, reference if self.method == NOISE_FLOOR else None,
                              self.primary_mia, self.options, self.save_model)
