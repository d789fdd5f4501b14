"""The method registry: named presets with their defaults, composition and source paper.

A preset is a composed :class:`~unlearnlab.methods.method.Method` (or a one-shot builder, :class:`OneShot`) with
metadata. ``defaults`` are the small-scale (CPU, digits-calibrated) hyperparameters; ``reference`` overrides them
with the paper's CIFAR-10/ResNet-18 values (``profile="reference"``). Overrides are validated: an unknown key or a
value of the wrong type is an error that lists the allowed keys, and the method is built once so that a bad value
(a mask fraction outside (0, 1], ``epochs=0``) fails before any model is trained.

A name ``host+wrapper`` that is not registered is composed on the fly from a registered host and a wrapper
(``dualoptim``, ``eupmu``, ``eupmu-fast``, ``ungrad``; :mod:`unlearnlab.methods.wrappers`).
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.families import TaskFamily, get_family, list_families
from unlearnlab.methods.base import Unlearner
from unlearnlab.methods.method import Method
from unlearnlab.methods.optimization import parse_optimizers

Builder = Callable[[dict[str, Any], TaskFamily], Unlearner]


@dataclass
class OneShot:
    """A method that is not a composition (retrain, IU, ...): a builder ``(params, family) -> Unlearner``."""

    builder: Builder
    defaults: dict[str, Any]
    families: tuple[str, ...] = ("classification",)

    def build(self, params: Mapping[str, Any], family: TaskFamily | str = "classification") -> Unlearner:
        return self.builder({**self.defaults, **params}, get_family(family))

    def supports(self, family: TaskFamily | str) -> bool:
        return get_family(family).name in self.families


@dataclass(frozen=True)
class MethodInfo:
    name: str
    composition: str
    paper: str
    summary: str
    method: Method | OneShot
    reference: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    #: forget-objective methods must lower forget accuracy (registry tests check it)
    forgets: bool = True

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.method.defaults)

    @property
    def families(self) -> list[str]:
        """The task families this method runs on."""
        return [f for f in list_families() if self.method.supports(f)]

    def resolve(self, overrides: Mapping[str, Any] | None = None, profile: str = "default",
                family: TaskFamily | str | None = None, build: bool = True) -> dict[str, Any]:
        """Defaults ← profile values ← user overrides, type-checked against the defaults and (``build``) built
        once, so a bad value fails here, before any model is trained."""
        if profile not in ("default", "reference"):
            raise UnlearnlabError(f"Unknown profile {profile!r}: use 'default' (small scale) or 'reference'.")
        defaults = self.defaults
        params = dict(defaults)
        if profile == "reference":
            params.update(self.reference)
        for key, value in (overrides or {}).items():
            if key not in defaults:
                raise unknown_name(f"{self.name} hyperparameter", key, defaults, f"unlearnlab methods {self.name}")
            params[key] = _coerce(self.name, key, value, defaults[key])
        _check_lr_transfer(self.name, defaults, overrides or {})
        if build:
            self.check(params, family)
        return params

    def check(self, params: Mapping[str, Any], family: TaskFamily | str | None = None) -> None:
        """Build the method with ``params`` (no model needed): every invalid value raises here."""
        families = self.families
        if not families:
            raise UnlearnlabError(f"{self.name}: no registered task family defines its objectives.")
        try:
            self.build(params, family or families[0])
        except UnlearnlabError as err:
            raise UnlearnlabError(f"{self.name}: {err}") from None

    def build(self, hparams: Mapping[str, Any], family: TaskFamily | str = "classification") -> Unlearner:
        fam = get_family(family)
        if not self.method.supports(fam):
            raise UnlearnlabError(
                f"Method {self.name!r} does not run on the {fam.name} family (it runs on: "
                f"{', '.join(self.families) or 'none'}); `unlearnlab methods` lists each method's families.")
        return self.method.build(dict(hparams), fam)


def _check_lr_transfer(method: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Learning rates do not transfer across optimizer kinds (an AdamW-tuned lr collapses a model under Lion): a run
    that changes a side's optimizer kind must give that side's lr, unless the preset fills it per kind (None)."""
    if "optimizers" not in overrides or "optimizers" not in defaults:
        return
    before = parse_optimizers(defaults["optimizers"], defaults.get("optimizer", "sgd"))
    after = parse_optimizers(overrides["optimizers"], overrides.get("optimizer", defaults.get("optimizer", "sgd")))
    for side, key in ((0, "forget_lr"), (1, "lr")):
        if before[side] != after[side] and key not in overrides and defaults.get(key) is not None:
            kind = ("forget", "retain")[side]
            raise UnlearnlabError(
                f"{method}: the {kind} optimizer changes from {before[side]} to {after[side]} but {key} keeps the "
                f"value tuned for {before[side]} ({defaults[key]}); learning rates do not transfer across optimizer "
                f"kinds (Lion needs about a third of AdamW's, per the DualOptim paper). Pass {key}=... .")


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
RESERVED_KEYS = frozenset({"task", "method", "forget", "retain", "seed", "profile", "inplace", "progress", "family",
                           "original", "parallel"})
_REGISTRY: dict[str, MethodInfo] = {}
_ALIASES: dict[str, str] = {}
#: wrapper name → function (host info, wrapped name) -> MethodInfo; filled by unlearnlab.methods.wrappers
WRAPPERS: dict[str, Callable[[MethodInfo, str], MethodInfo]] = {}


def register(name: str, method: Method | OneShot, *, composition: str, paper: str, summary: str,
             reference: Mapping[str, Any] | None = None, aliases: tuple[str, ...] = (),
             forgets: bool = True) -> MethodInfo:
    """Register ``method`` under ``name`` (and ``aliases``); its defaults are checked by one build."""
    clash = RESERVED_KEYS & set(method.defaults)
    if clash:
        raise ValueError(f"{name}: hyperparameter names {sorted(clash)} clash with unlearn()'s own arguments.")
    info = MethodInfo(name, composition, paper, summary, method, dict(reference or {}), aliases, forgets)
    _REGISTRY[name] = info
    for alias in aliases:
        _ALIASES[alias] = name
    return info


def register_method(name: str, *, composition: str, paper: str, summary: str, defaults: Mapping[str, Any],
                    reference: Mapping[str, Any] | None = None, aliases: tuple[str, ...] = (),
                    forgets: bool = True, families: tuple[str, ...] = ("classification",)
                    ) -> Callable[[Builder], Builder]:
    """Decorator registering a one-shot builder ``(params, family) -> Unlearner`` under ``name``."""

    def deco(builder: Builder) -> Builder:
        register(name, OneShot(builder, dict(defaults), families), composition=composition, paper=paper,
                 summary=summary, reference=reference, aliases=aliases, forgets=forgets)
        return builder

    return deco


#: name prefixes of presets registered by an optional package (imported on first use; its extra must be installed)
OPTIONAL_PRESETS: dict[str, str] = {"llm/": "unlearnlab.language", "dualoptim/llm/": "unlearnlab.language"}


def load_optional(name: str | None = None) -> None:
    """Import the optional package that registers ``name`` (a clear error naming its extra when it is missing);
    without a name, every optional package whose dependencies are installed (for listings)."""
    for prefix, module in OPTIONAL_PRESETS.items():
        if name is None:
            try:
                importlib.import_module(module)
            except UnlearnlabError:  # its extra is not installed: its presets are simply not listed
                continue
        elif name.startswith(prefix):
            importlib.import_module(module)


def get_method(name: str) -> MethodInfo:
    """Look up a preset by name or alias; ``host+wrapper`` is composed when not registered; a preset of an
    optional package (``llm/…``) imports that package first."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _REGISTRY:
        load_optional(name)
    if canonical in _REGISTRY:
        return _REGISTRY[canonical]
    host, sep, wrapper = name.rpartition("+")
    if sep and host and wrapper in WRAPPERS:
        host_info = get_method(host)
        composed = f"{host_info.name}+{wrapper}"
        composed = _ALIASES.get(composed, composed)
        return _REGISTRY[composed] if composed in _REGISTRY else WRAPPERS[wrapper](host_info, composed)
    raise unknown_name("method", name, list(_REGISTRY) + list(_ALIASES), "unlearnlab methods")


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered preset names (canonical), optionally filtered by a shell-style pattern."""
    return [n for n in _REGISTRY if pattern is None or fnmatch.fnmatch(n, pattern)]
