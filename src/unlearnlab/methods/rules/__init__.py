"""Update rules: how forget and retain objectives become parameter updates."""

from unlearnlab.methods.rules.alternate import Alternate, Interleave
from unlearnlab.methods.rules.base import Job, Rule, Stepper
from unlearnlab.methods.rules.implicit_surgery import ImplicitSurgery
from unlearnlab.methods.rules.joint import Joint
from unlearnlab.methods.rules.min_norm import MinNormLoop
from unlearnlab.methods.rules.noisy_clip import NoisyClip
from unlearnlab.methods.rules.surgery import Surgery

__all__ = ["Alternate", "ImplicitSurgery", "Interleave", "Job", "Joint", "MinNormLoop", "NoisyClip", "Rule", "Stepper",
           "Surgery"]
