"""Counting the samples a run forwards and backpropagates (the counters every result row carries).

:class:`CountingHooks` watch ``model.forward``: the batch size of each forward is added to ``forward_samples``, and
once a gradient flows back through the forward's output, to ``backward_samples``. :func:`counted_as` covers the
work the hooks cannot size (docs/metrics.md, "RTE" and the counters).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class Counters:
    """Device-independent cost counters, filled by hooks on the model."""

    forward_samples: int = 0
    backward_samples: int = 0
    optimizer_steps: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class CountingHooks:
    """Count samples through ``model.forward`` and through its backward pass.

    A forward hook adds the batch size to ``forward_samples``; when the output requires grad it registers a
    tensor hook that adds the batch size to ``backward_samples`` when a gradient flows back through it. For a
    model returning an output object (Hugging Face), its ``logits`` tensor is the output. Work the hooks cannot
    size (a ``torch.func.vmap`` over samples shows them one sample) is counted with :func:`counted_as`.
    """

    active: ClassVar[list[CountingHooks]] = []

    def __init__(self, model: nn.Module, counters: Counters):
        self.counters = counters
        self.paused = 0
        self.handle = model.register_forward_hook(self._hook)
        CountingHooks.active.append(self)

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> None:
        # Hugging Face models return an output object; its logits stand for the forward, and a loss on the hidden
        # states alone (RMU) is a backward through the model too
        hidden = () if isinstance(output, torch.Tensor) else tuple(getattr(output, "hidden_states", None) or ())
        output = output if isinstance(output, torch.Tensor) else getattr(output, "logits", None)
        if self.paused or not isinstance(output, torch.Tensor):
            return
        n = output.shape[0]
        self.counters.forward_samples += n
        watched = [t for t in (output, *hidden) if isinstance(t, torch.Tensor) and t.requires_grad]
        once = len(watched) > 1  # several outputs of one forward: count its backward once, whichever carried it
        counted: list[bool] = []

        def on_backward(grad: torch.Tensor, n: int = n) -> None:
            if not (once and counted):
                counted.append(True)
                self.counters.backward_samples += n
        for tensor in watched:
            tensor.register_hook(on_backward)

    def remove(self) -> None:
        self.handle.remove()
        if self in CountingHooks.active:
            CountingHooks.active.remove(self)

    def __enter__(self) -> CountingHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


@dataclass
class Count:
    """Samples forwarded and samples through backward, set by the code inside :func:`counted_as`."""

    forward: int = 0
    backward: int = 0


@contextlib.contextmanager
def counted_as() -> Iterator[Count]:
    """Pause every active :class:`CountingHooks` in the block and add the :class:`Count` the block sets instead
    (for work the hooks cannot size: a ``torch.func.vmap`` over samples shows them one sample)."""
    hooks = list(CountingHooks.active)
    count = Count()
    for h in hooks:
        h.paused += 1
    try:
        yield count
    finally:
        for h in hooks:
            h.paused -= 1
            h.counters.forward_samples += count.forward
            h.counters.backward_samples += count.backward
