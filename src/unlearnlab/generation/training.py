"""Training the models a generation protocol needs: originals and retrains (the diffusion recipe) and the
evaluation classifier (docs/generation.md, "Models", "Metrics").

Originals and retrains use :func:`unlearnlab.training.train` with the family's ε-loss and :func:`diffusion_recipe`:
Adam 2e-4 (no weight decay), batch 128, constant lr, gradient clip 1.0, as the reference DDPM code (which has no
epochs but iterations: 800k at batch 128 on CIFAR-10, about 2,048 epochs). The noise stream is seeded from the
training seed first, so a model trained twice with one seed is bit-identical on the CPU. ``flip`` adds the
reference's random horizontal flip (CIFAR-10).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from unlearnlab.data.tensors import Batch, TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation.evaluation import EvalClassifier
from unlearnlab.generation.family import GENERATION, flip_images
from unlearnlab.generation.models import Denoiser
from unlearnlab.metrics.accuracy import predict_probs
from unlearnlab.models.registry import create
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import Recipe, TrainStats, train
from unlearnlab.utils import torch_generator


def diffusion_recipe(epochs: int, batch_size: int = 128, lr: float = 2e-4, grad_clip: float | None = 1.0,
                     schedule: str = "constant") -> Recipe:
    """The originals' and retrains' recipe: Adam(``lr``), no decay, lr ``schedule``, clip at ``grad_clip``."""
    return Recipe(optimizer="adam", lr=lr, momentum=0.0, weight_decay=0.0, epochs=epochs, batch_size=batch_size,
                  schedule=schedule, augment=False, grad_clip=grad_clip)


#: the digits tier's scaled recipe: 300 epochs (≈ 3,000 steps), lr 1e-3 decayed to 0 by a cosine (standing in for
#: the reference's weight EMA at this scale); the paper's is diffusion_recipe(epochs=2048)
DIGITS_RECIPE = diffusion_recipe(epochs=300, lr=1e-3, schedule="cosine")


def train_denoiser(model: Denoiser, data: TensorData, recipe: Recipe, seed: int = 1, flip: bool = False,
                   progress: Callable[[int, int], None] | None = None,
                   checkpoint: TrainCheckpoint | None = None) -> TrainStats:
    """Train ``model`` in place on ``data`` (``{"x", "y"}``, images in [0, 1]) with the ε-loss and ``recipe``.
    With ``checkpoint`` the training resumes after its last finished epoch, the noise (and flip) streams
    included, so a resumed model is the one an uninterrupted call gives."""
    if not isinstance(model, Denoiser):
        raise UnlearnlabError(f"train_denoiser trains a Denoiser, got a {type(model).__name__}.")
    if recipe.augment:
        raise UnlearnlabError("The diffusion recipe takes flip=True for the reference's horizontal flip, not "
                              "recipe.augment (crop + flip would shift the images the model learns).")
    model.seed_noise(seed)
    streams = {"diffusion-noise": model.noise}
    loss: Callable[[nn.Module, Batch], torch.Tensor] = GENERATION.loss
    if flip:
        flips = streams["train-flip"] = torch_generator(seed, "train-flip")

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            return GENERATION.loss(m, flip_images(batch, flips))

    return train(model, data, recipe, seed=seed, progress=progress, loss_fn=loss, checkpoint=checkpoint,
                 streams=streams)


def classifier_recipe(epochs: int = 30) -> Recipe:
    """The evaluation classifier's recipe: the project's default SGD recipe (lr 0.05, momentum 0.9, wd 5e-4,
    batch 64, cosine) for ``epochs`` epochs."""
    return Recipe(epochs=epochs)


def eval_classifier_network(train_data: TensorData, num_classes: int, *, seed: int = 1, model: str = "small_cnn",
                            normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> nn.Module:
    """The untrained evaluation classifier (registry model ``model``) for ``train_data``'s images. Refuses training
    data that lack a class (a classifier of other classes than the data would score generated samples wrongly)."""
    present = set(train_data.y.unique().tolist())
    missing = sorted(set(range(num_classes)) - present)
    if missing:
        raise UnlearnlabError(f"The evaluation classifier must be trained on every class; classes {missing} are "
                              "missing from its training data: train it on the full dataset, not on D_r.")
    mean, std = normalisation or ((0.0,), (1.0,))
    return create(model, input_shape=tuple(train_data.x.shape[1:]), num_classes=num_classes, mean=mean, std=std,
                  seed=seed, device=train_data.device)


def classifier_accuracy(net: nn.Module, test_data: TensorData) -> float:
    """Top-1 accuracy (%) of ``net`` on ``test_data``."""
    probs = predict_probs(net, test_data.x)
    return float(100.0 * (probs.argmax(1) == test_data.y.cpu()).float().mean())


def train_eval_classifier(train_data: TensorData, test_data: TensorData, dataset: str, num_classes: int, *,
                          recipe: Recipe | None = None, seed: int = 1, model: str = "small_cnn",
                          normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> EvalClassifier:
    """Train the evaluation classifier (:func:`eval_classifier_network`, the project's small CNN by default) on
    every class of ``train_data`` and measure its top-1 accuracy (%) on ``test_data``."""
    net = eval_classifier_network(train_data, num_classes, seed=seed, model=model, normalisation=normalisation)
    train(net, train_data, recipe or classifier_recipe(), seed=seed)
    return EvalClassifier(net.eval(), dataset, num_classes, tuple(train_data.x.shape[1:]),
                          classifier_accuracy(net, test_data))
