"""Unlearning methods: composition (objectives × rule + modifiers), registry, wrappers and presets.

``compose`` builds a method from parts; ``get_method`` looks up a registered preset (or composes ``host+wrapper``);
``dualoptim``/``eupmu``/``ungrad`` wrap composed methods. docs/extending.md shows how to add each kind of part.
"""

from unlearnlab.methods import presets as _presets  # noqa: F401  (registers the presets, hosts first)
from unlearnlab.methods import presets_certified as _presets_certified  # noqa: F401
from unlearnlab.methods import presets_eupmu as _presets_eupmu  # noqa: F401
from unlearnlab.methods import presets_minnorm as _presets_minnorm  # noqa: F401
from unlearnlab.methods import presets_more as _presets_more  # noqa: F401

from unlearnlab.methods import presets_dualoptim as _presets_dualoptim  # noqa: F401  isort: skip
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.methods.method import Derived, IterativeUnlearner, Method, ObjectiveRef, compose
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import MethodInfo, OneShot, get_method, list_methods, register, register_method
from unlearnlab.methods.wrappers import with_dualoptim, with_eupmu, with_ungrad

__all__ = ["Derived", "IterativeUnlearner", "Method", "MethodInfo", "ObjectiveRef", "OneShot", "Optimization",
           "RunContext", "UnlearnData", "Unlearner", "compose", "get_method", "list_methods", "register",
           "register_method", "with_dualoptim", "with_eupmu", "with_ungrad"]
