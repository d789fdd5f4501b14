"""Evaluate a class-conditional generator on a class-wise forget task (docs/generation.md, "Metrics", "Gates").

:func:`evaluate_generator` samples n_forget images of the forgotten class c and n_per_class images of every retained
class with the DDIM sampler (one seeded noise stream, so every model sees the same initial noise), scores them with
the :class:`EvalClassifier` and returns a :class:`GenerationEvaluation`: UA, mean p(c), mean entropy, fidelity,
``fd_clf``, ``kid_clf``, the real-vs-real ``fd_clf_floor`` and per-class recognition, each with its definition, plus
the sampler settings and sample counts it used and the first images of each class (for the sample grids).
:func:`validity_gates` checks a protocol run's original and Retrain evaluations against the gates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearnlab.data.forget import ForgetTask
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import Evaluation
from unlearnlab.generation import metrics as gm
from unlearnlab.generation.models import Denoiser
from unlearnlab.generation.sampler import SamplerSettings, sample
from unlearnlab.models.registry import output_layer
from unlearnlab.utils import eval_mode, numpy_rng, torch_generator

#: the reference DDPM code's sampling seed
SAMPLING_SEED = 1234


@dataclass
class EvalClassifier:
    """The evaluation classifier of one dataset: trained once on every class, with its test accuracy (%)."""

    model: nn.Module
    dataset: str
    num_classes: int
    image_shape: tuple[int, ...]
    test_accuracy: float
    classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = tuple(range(self.num_classes))

    def check(self, task: ForgetTask) -> None:
        """Refuse a classifier of another dataset, class set or image shape than ``task``."""
        if self.dataset != task.dataset:
            raise UnlearnlabError(f"The evaluation classifier was trained on {self.dataset!r}, the task is "
                                  f"{task.dataset!r}: train one on this dataset (train_eval_classifier).")
        if self.classes != tuple(range(task.num_classes)):
            raise UnlearnlabError(f"The evaluation classifier was trained on classes {list(self.classes)}, but the "
                                  f"task has classes 0 … {task.num_classes - 1}: train it on every class of the data.")
        if self.image_shape != tuple(task.input_shape):
            raise UnlearnlabError(f"The evaluation classifier takes images {self.image_shape}, the task's are "
                                  f"{tuple(task.input_shape)}: train it on the images the generator produces.")

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "classes": list(self.classes), "test_accuracy": self.test_accuracy,
                "image_shape": list(self.image_shape)}


def classify(classifier: EvalClassifier, images: torch.Tensor, batch_size: int = 1000
             ) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities [n, C], penultimate features [n, d]) of ``images``; the features are the input of the
    classifier's last linear layer. Eval mode, no gradient."""
    model = classifier.model
    head = output_layer(model)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().float().cpu()))
    probs = []
    try:
        with torch.no_grad(), eval_mode(model):
            for chunk in images.split(batch_size):
                probs.append(torch.softmax(model(chunk.to(device)).float(), dim=-1).cpu())
    finally:
        handle.remove()
    return torch.cat(probs).numpy(), torch.cat(captured).flatten(1).numpy()


@dataclass
class RealStatistics:
    """Classifier features of the held-out real images of the retained classes, and the real-vs-real floor."""

    features: np.ndarray
    floor: float
    count: int
    floor_count: int


def forget_class(task: ForgetTask) -> int:
    """The single forgotten class of a class-wise task (an error otherwise)."""
    classes = tuple(task.forgotten_classes)
    if len(classes) != 1:
        raise UnlearnlabError(f"The generation protocol forgets exactly one class, the task forgets {task.forget_spec}"
                              ": build it with forget='class:K'.")
    return int(classes[0])


def real_statistics(task: ForgetTask, classifier: EvalClassifier, n_per_class: int, seed: int = SAMPLING_SEED
                    ) -> RealStatistics:
    """Features of ``task.test`` (held-out images of the retained classes) and ``fd_clf_floor``: fd_clf between up to
    ``n_per_class`` training images per retained class (drawn without replacement) and those held-out images."""
    classifier.check(task)
    _, test_features = classify(classifier, task.test.x)
    rng = numpy_rng(seed, "fd-floor")
    labels = task.retain.y.cpu().numpy()
    picks = [rng.choice(np.flatnonzero(labels == k), min(n_per_class, int((labels == k).sum())), replace=False)
             for k in np.unique(labels)]
    train_images = task.retain.x[torch.as_tensor(np.concatenate(picks), device=task.retain.device)]
    _, train_features = classify(classifier, train_images)
    return RealStatistics(test_features, gm.fd_clf(train_features, test_features), len(test_features),
                          len(train_features))


@dataclass
class GenerationEvaluation(Evaluation):
    """Metric values with their definitions, the settings that produced them, per-class recognition (%) and the
    first ``grid_per_class`` generated images of every class ([C, k, channels, H, W], for the sample grids)."""

    settings: dict[str, Any] = field(default_factory=dict)
    per_class: dict[int, float] = field(default_factory=dict)
    grid: torch.Tensor | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "settings": dict(self.settings),
                "per_class": {str(k): v for k, v in self.per_class.items()}, "seconds": self.seconds}


def evaluate_generator(model: Denoiser, task: ForgetTask, *, classifier: EvalClassifier,
                       sampler: SamplerSettings | None = None, n_forget: int = 500, n_per_class: int = 500,
                       seed: int = SAMPLING_SEED, grid_per_class: int = 8, real: RealStatistics | None = None,
                       reference: GenerationEvaluation | None = None) -> GenerationEvaluation:
    """Sample, classify and score ``model`` on ``task`` (module docstring). ``real`` (from :func:`real_statistics`)
    is computed when not given; ``reference`` (Retrain's evaluation) adds the gaps."""
    if not isinstance(classifier, EvalClassifier):
        raise UnlearnlabError("Generation metrics need the evaluation classifier: pass classifier="
                              "train_eval_classifier(...) (unlearnlab.generation).")
    if n_forget < 1 or n_per_class < 2:
        raise UnlearnlabError(f"Sample counts must be n_forget >= 1 and n_per_class >= 2, got {n_forget}, "
                              f"{n_per_class}.")
    classifier.check(task)
    c = forget_class(task)
    if model.num_classes != task.num_classes:
        raise UnlearnlabError(f"The model generates {model.num_classes} classes, the task has {task.num_classes}.")
    sampler = sampler or SamplerSettings()
    start = time.perf_counter()
    real = real or real_statistics(task, classifier, n_per_class, seed)
    retained = [k for k in range(task.num_classes) if k != c]
    counts = {k: (n_forget if k == c else n_per_class) for k in range(task.num_classes)}
    classes = torch.cat([torch.full((counts[k],), k, dtype=torch.long) for k in [c, *retained]])
    generator = torch_generator(seed, "sampling", next(model.parameters()).device)
    images = sample(model, classes, sampler, generator)
    probs, features = classify(classifier, images)
    labels = classes.numpy()
    is_forget = labels == c
    metrics = {
        "ua": gm.unlearning_accuracy(probs[is_forget], c),
        "p_forget": gm.mean_class_probability(probs[is_forget], c),
        "entropy_forget": gm.mean_entropy(probs[is_forget]),
        "fidelity": gm.conditional_accuracy(probs[~is_forget], labels[~is_forget]),
        "fd_clf": gm.fd_clf(features[~is_forget], real.features),
        "kid_clf": gm.kid_clf(features[~is_forget], real.features),
        "fd_clf_floor": real.floor,
    }
    if reference is not None:
        metrics["ua_gap"] = abs(metrics["ua"] - reference.metrics["ua"])
        metrics["fd_gap"] = abs(metrics["fd_clf"] - reference.metrics["fd_clf"])
        metrics["avg_gap"] = (metrics["ua_gap"] + metrics["fd_gap"]) / 2.0
    k = min(grid_per_class, n_forget, n_per_class)
    grid = torch.stack([images[torch.from_numpy(labels == cls)][:k] for cls in range(task.num_classes)])
    settings = {**sampler.as_dict(), **model.settings(), "sampling_seed": seed, "forget_class": c,
                "n_forget": n_forget, "n_per_class": n_per_class, "n_real": real.count,
                "n_real_floor": real.floor_count, "classifier": classifier.describe()}
    return GenerationEvaluation(metrics, {name: gm.DEFINITIONS[name] for name in metrics}, settings,
                                gm.per_class_accuracy(probs, labels), grid, time.perf_counter() - start)


@dataclass(frozen=True)
class Gate:
    """One validity check: what was measured against which threshold."""

    name: str
    passed: bool
    value: float
    threshold: float
    rule: str


@dataclass
class GateReport:
    """The validity gates of one protocol run; a failed gate marks the run invalid."""

    gates: list[Gate]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "gates": [g.__dict__ for g in self.gates]}

    def lines(self) -> list[str]:
        """One line per gate, for printing under a table."""
        return [f"{'PASS' if g.passed else 'FAIL'} {g.name}: {g.value:.3g} ({g.rule})" for g in self.gates]


def validity_gates(original: GenerationEvaluation, retrain: GenerationEvaluation, recognition: float,
                   retrain_ua: float = 90.0, fd_factor: float = 2.0) -> GateReport:
    """The gates: every class of the original recognised at ≥ ``recognition`` %, Retrain's UA ≥ ``retrain_ua`` %,
    the original's fd_clf ≤ ``fd_factor`` × the real-vs-real floor."""
    worst = min(original.per_class, key=original.per_class.get)
    floor = original.metrics["fd_clf_floor"]
    return GateReport([
        Gate("original_recognition", original.per_class[worst] >= recognition, original.per_class[worst],
             recognition, f"lowest per-class recognition (class {worst}) >= {recognition:g} %"),
        Gate("retrain_ua", retrain.metrics["ua"] >= retrain_ua, retrain.metrics["ua"], retrain_ua,
             f"Retrain's UA >= {retrain_ua:g} %"),
        Gate("original_fd_clf", original.metrics["fd_clf"] <= fd_factor * floor, original.metrics["fd_clf"],
             fd_factor * floor, f"original fd_clf <= {fd_factor:g} × floor {floor:.3g}"),
    ])
