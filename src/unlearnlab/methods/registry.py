"""The method registry: named presets with their defaults, family and source paper.

``@register_method(name, ...)`` registers a builder ``(hparams, num_classes) -> Unlearner``. ``defaults`` are
the small-scale (CPU, digits-calibrated) hyperparameters; ``reference`` overrides them with the paper's
CIFAR-10/ResNet-18 values (``profile="reference"``). Overrides are validated: an unknown key or a value of
the wrong type is an error that lists the allowed keys.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.methods.base import Unlearner

Builder = Callable[[dict[str, Any], int], Unlearner]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str
    paper: str
    summary: str
    defaults: Mapping[str, Any]
    builder: Builder
    reference: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    #: forget-objective methods must lower forget accuracy (registry tests check it)
    forgets: bool = True

    def resolve(self, overrides: Mapping[str, Any] | None = None, profile: str = "default") -> dict[str, Any]:
        """Defaults ← profile values ← user overrides, type-checked against the defaults."""
        if profile not in ("default", "reference"):
            raise UnlearnlabError(f"Unknown profile {profile!r}: use 'default' (small scale) or 'reference'.")
        params = dict(self.defaults)
        if profile == "reference":
            params.update(self.reference)
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                raise unknown_name(f"{self.name} hyperparameter", key, self.defaults,
                                   f"unlearnlab methods {self.name}")
            params[key] = _coerce(self.name, key, value, self.defaults[key])
        return params

    def build(self, hparams: Mapping[str, Any], num_classes: int) -> Unlearner:
        return self.builder(dict(hparams), num_classes)


def _coerce(method: str, key: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    elif isinstance(value, kind) and not isinstance(value, bool):  # True is an int to Python, not an epoch count
        return value
    raise UnlearnlabError(
        f"{method}: hyperparameter {key!r} expects a {kind.__name__} (default {default!r}), got {value!r}."
    )


#: keyword arguments of :func:`unlearnlab.unlearn`; a preset's hyperparameters may not reuse them
RESERVED_KEYS = frozenset({"task", "method", "forget", "retain", "seed", "profile", "inplace", "progress"})
_REGISTRY: dict[str, MethodInfo] = {}
_ALIASES: dict[str, str] = {}


def register_method(name: str, *, family: str, paper: str, summary: str, defaults: Mapping[str, Any],
                    reference: Mapping[str, Any] | None = None, aliases: tuple[str, ...] = (),
                    forgets: bool = True) -> Callable[[Builder], Builder]:
    """Decorator registering a preset builder under ``name`` (and ``aliases``)."""

    clash = RESERVED_KEYS & set(defaults)
    if clash:
        raise ValueError(f"{name}: hyperparameter names {sorted(clash)} clash with unlearn()'s own arguments.")

    def deco(builder: Builder) -> Builder:
        info = MethodInfo(name, family, paper, summary, dict(defaults), builder, dict(reference or {}),
                          aliases, forgets)
        _REGISTRY[name] = info
        for alias in aliases:
            _ALIASES[alias] = name
        return builder

    return deco


def get_method(name: str) -> MethodInfo:
    """Look up a preset by name or alias."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _REGISTRY:
        raise unknown_name("method", name, list(_REGISTRY) + list(_ALIASES), "unlearnlab methods")
    return _REGISTRY[canonical]


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered preset names (canonical), optionally filtered by a shell-style pattern."""
    return [n for n in _REGISTRY if pattern is None or fnmatch.fnmatch(n, pattern)]
