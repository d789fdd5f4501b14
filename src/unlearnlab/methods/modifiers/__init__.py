"""Modifiers: masks, gradient clip and noise, norm penalties, frozen BatchNorm, re-initialisation, a retain
subset, and MinNorm-OG's projection — each usable with any update rule."""

from unlearnlab.methods.modifiers.base import Modifier
from unlearnlab.methods.modifiers.gradients import GradientClip, GradientNoise
from unlearnlab.methods.modifiers.masking import FisherMask, GivenMask, MaskModifier, MedianMask, SaliencyMask
from unlearnlab.methods.modifiers.penalties import Penalty
from unlearnlab.methods.modifiers.projection import Projection
from unlearnlab.methods.modifiers.state import FrozenBatchNorm, Reinitialise, RetainSubset

__all__ = ["FisherMask", "FrozenBatchNorm", "GivenMask", "GradientClip", "GradientNoise", "MaskModifier", "MedianMask",
           "Modifier", "Penalty", "Projection", "Reinitialise", "RetainSubset", "SaliencyMask"]
