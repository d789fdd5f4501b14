"""Components of a method (objectives, rules, modifiers, optimisation settings) and their hyperparameters.

A component is a dataclass; its init fields are its hyperparameters, except the ``internal`` ones (structure
fixed by the method, e.g. the sign of a loss) and fields starting with ``_``. :func:`unlearnlab.methods.compose`
collects the hyperparameters of every component into the method's flat defaults (a key shared by two
components must have one meaning and one default), and :meth:`Component.configured` builds a fresh component
from a resolved parameter set for each run, so no state leaks from one run to the next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="Component")


class Component:
    """Mixin for dataclass components: hyperparameters = init fields minus :attr:`internal`."""

    #: init fields that are structure, not hyperparameters
    internal: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                     if f.init and f.name not in cls.internal and not f.name.startswith("_"))

    def options(self) -> dict[str, Any]:
        """This component's hyperparameters and their current values."""
        return {name: getattr(self, name) for name in self.option_names()}

    def stats(self) -> dict[str, Any]:
        """Statistics of the last run (JSON-serialisable)."""
        return {}

    def configured(self: C, params: Mapping[str, Any]) -> C:
        """A fresh copy with the hyperparameters found in ``params`` set."""
        return dataclasses.replace(self, **{k: params[k] for k in self.option_names() if k in params})  # type: ignore[type-var]
