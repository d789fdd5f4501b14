"""Errors that name the problem and the fix, and the health warning of an unlearned model.

Every user-facing failure in unlearnlab raises :class:`UnlearnlabError` (a ``ValueError``) or one of its
subclasses, with a message that says what was wrong and what to do instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnlearnlabError(ValueError):
    """Bad input or state; the message names the problem and the fix."""


class DivergenceError(UnlearnlabError):
    """A loss became NaN or infinite during an optimisation loop."""


class HealthWarning(UserWarning):
    """After unlearning, the model looks unhealthy: retain accuracy collapsed or forget accuracy did not move.

    :func:`unlearnlab.unlearn` warns with this category and also returns the messages in the result's
    ``stats["warnings"]``, so a caller can log them instead of letting them reach standard error."""


class UnknownNameError(UnlearnlabError, KeyError):
    """A dataset, model, method or metric name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unknown_name(kind: str, name: str, known: Iterable[str], listing: str | None = None) -> UnknownNameError:
    """Build an :class:`UnknownNameError` that suggests the closest registered names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    where = f" Run `{listing}` to list them." if listing else ""
    return UnknownNameError(
        f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}.{where}"
    )
