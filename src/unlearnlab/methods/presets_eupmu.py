"""Registered EUPMU and UNGrad presets: the generic wrappers over their hosts with digits-calibrated values.

``defaults`` are the digits values (``scripts/calibrate_digits.py``, docs/methods.md); ``reference`` holds the
paper's CIFAR-10 / ResNet-18 values (SGD 0.9, wd 5e-4, batch 256, 5 epochs, lr 1e-3 for random 10 %).
"""

from __future__ import annotations

from typing import Any

from unlearnlab.methods.registry import get_method, register
from unlearnlab.methods.wrappers import FAST, eupmu, ungrad


def _register(name: str, host: str, wrap, aliases: tuple[str, ...] = (), reference: dict[str, Any] | None = None,
              **defaults: Any) -> None:
    """``defaults``: digits values; ``reference``: paper values of keys whose digits value differs from the paper's."""
    info = wrap(get_method(host), name)
    method = info.method.replace(defaults={**info.method.defaults, **defaults})
    register(name, method, composition=info.composition, paper=info.paper, summary=info.summary,
             reference={**info.reference, **(reference or {})}, aliases=aliases, forgets=info.forgets)


_register("eupmu", "rl", eupmu, aliases=("rl+eupmu",), lr=0.01 / 3)
#: every compatibility option of the EUPMU code on: one forward over the mixed batch, losses scaled by their batch
#: share, the post-step signal forward updating BatchNorm statistics, λ used as max(λ, 0) but never projected
_register("eupmu-reference", "rl", eupmu, lr=0.01 / 3, joint_forward=True, loss_scale="batch_share",
          signal_mode="reference", lambda_projection="use_only")
#: lr-normalised EUPMU: Δ divided by the step's lr; ε and β have no validated classification values
_register("eupmu-normalised", "rl", eupmu, lr=0.01 / 3, lr_normalised=True, epsilon=None, lambda_lr=None)
_register("salun+eupmu", "salun", eupmu, lr=0.01 / 3, epsilon=-0.003, reference={"epsilon": -0.01})
_register("ga+eupmu", "ga", eupmu, epochs=10, lr=1e-3)
_register("scrub+eupmu", "scrub", eupmu, epochs=10, lr=0.01 / 3)
_register("eupmu-fast", "rl", lambda info, name: eupmu(info, name, fast=True), lr=0.01 / 9, epsilon=-0.1,
          reference={"epsilon": FAST["epsilon"]})
_register("ungrad", "rl", ungrad, aliases=("rl+ungrad",), lr=1e-3 / 3)
