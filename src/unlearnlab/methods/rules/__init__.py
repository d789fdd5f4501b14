"""Update rules: how forget and retain objectives become parameter updates."""

from unlearnlab.methods.rules.alternate import Alternate
from unlearnlab.methods.rules.base import Job, Rule, Stepper
from unlearnlab.methods.rules.joint import Joint

__all__ = ["Alternate", "Job", "Joint", "Rule", "Stepper"]

from unlearnlab.methods.rules.implicit_surgery import ImplicitSurgery
from unlearnlab.methods.rules.surgery import Surgery

__all__ += ["ImplicitSurgery", "Surgery"]
