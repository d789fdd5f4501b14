"""Unlearning methods: registry, objectives, update rules, masks and presets."""

from unlearnlab.methods import presets as _presets  # noqa: F401  (registers the presets)
from unlearnlab.methods import presets_dualoptim as _presets_dualoptim  # noqa: F401
from unlearnlab.methods import presets_eupmu as _presets_eupmu  # noqa: F401
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.methods.registry import MethodInfo, get_method, list_methods, register_method

__all__ = ["MethodInfo", "RunContext", "UnlearnData", "Unlearner", "get_method", "list_methods", "register_method"]
from unlearnlab.methods import presets_certified as _presets_certified  # noqa: F401
from unlearnlab.methods import presets_minnorm as _presets_minnorm  # noqa: F401
from unlearnlab.methods import presets_more as _presets_more  # noqa: F401
