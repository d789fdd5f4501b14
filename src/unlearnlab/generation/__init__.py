"""Image generation: class-wise forgetting in class-conditional diffusion models (docs/generation.md).

Importing the package registers the ``generation`` task family (batches ``{"x": images in [0, 1], "y": class}``,
ε-loss, ``random_labels`` for diffusion) and the ``ddpm/*`` presets. The digits tier needs only torch; the UNet
models need the optional extra ``unlearnlab[gen]`` (diffusers), imported when one is built. Sample grids and
comparison figures are in :mod:`unlearnlab.generation.pictures` (matplotlib, imported on use).
"""

from unlearnlab.generation.diffusion import ScheduleSpec, antithetic_timesteps, drop_classes, q_sample
from unlearnlab.generation.evaluation import (
    EvalClassifier,
    GateReport,
    GenerationEvaluation,
    RealStatistics,
    evaluate_generator,
    real_statistics,
    validity_gates,
)
from unlearnlab.generation.family import GENERATION, Generation
from unlearnlab.generation.models import Denoiser, DigitsNet, digits_denoiser
from unlearnlab.generation.sampler import SamplerSettings, sample
from unlearnlab.generation.training import diffusion_recipe, train_denoiser, train_eval_classifier
from unlearnlab.generation.unet import ConditionalUNet, unet_denoiser

from unlearnlab.generation import presets as _presets  # noqa: F401  isort: skip  (registers the ddpm/* presets)

__all__ = [
    "GENERATION", "ConditionalUNet", "Denoiser", "DigitsNet", "EvalClassifier", "GateReport", "Generation",
    "GenerationEvaluation", "RealStatistics", "SamplerSettings", "ScheduleSpec", "antithetic_timesteps",
    "diffusion_recipe", "digits_denoiser", "drop_classes", "evaluate_generator", "q_sample", "real_statistics",
    "sample", "train_denoiser", "train_eval_classifier", "unet_denoiser", "validity_gates",
]
