"""Generic wrappers: ``host+dualoptim``, ``host+eupmu``, ``host+eupmu-fast``, ``host+ungrad`` for any composed host.

A wrapper keeps the host's objectives, modifiers (a mask) and optimisation settings and changes one thing:

* ``dualoptim``: the optimizer split. The host's optimizer becomes the retain optimizer (its lr, momentum and
  decay unchanged); an AdamW forget optimizer (decay 0.05, lr ``forget_lr``, which has no default) takes the
  forget steps. A rule that mixes both losses in one step (``joint``) runs as ``interleave(1, 1)`` with the same
  weights; a forget-only host (GA) steps the forget optimizer only.
* ``eupmu`` / ``eupmu-fast``: the rule becomes implicit gradient surgery (one backward per step), with the host's
  rule options dropped; a forget objective that draws random labels draws them once per epoch (as EUPMU's code),
  and one that can be negative (GA's −L, SCRUB's −KL) gets the identity objective transform.
* ``ungrad``: explicit surgery with the closed-form multiplier (two backward passes per step).

Hosts declare what they need through their objectives (``relabels``, ``can_be_negative``); there is no per-host
table. docs/methods.md ("Wrappers") gives the math of each rule.
"""

from __future__ import annotations

from typing import Any

from unlearnlab.components import Component
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families import TaskFamily, get_family, list_families
from unlearnlab.methods.method import Method, ObjectiveRef, part_keys
from unlearnlab.methods.modifiers.gradients import GradientClip
from unlearnlab.methods.registry import WRAPPERS, MethodInfo
from unlearnlab.methods.rules import ImplicitSurgery, Surgery

EUPMU = "EUPMU (NeurIPS 2025, arXiv 2510.22124)"
DUALOPTIM = "DualOptim (Zhong et al., NeurIPS 2025)"
#: EUPMU-fast's settings (convex weighting, λ from consecutive training losses)
FAST: dict[str, Any] = {"fast": True, "weighting": "convex", "objective_transform": "identity", "epsilon": -0.06,
                        "lambda_lr": 0.5, "lambda_init": 1.0}
#: the EUPMU paper's CIFAR-10 / ResNet-18 values (random 10 %)
EUPMU_REFERENCE: dict[str, Any] = {"epochs": 5, "lr": 1e-3, "batch_size": 256}
#: AdamW's decoupled weight decay in DualOptim's forget optimizer
FORGET_DECAY = 0.05
#: UNGrad as the EUPMU code runs it: losses scaled by their batch share, the direction clipped to norm 1
UNGRAD_REFERENCE: dict[str, Any] = {"loss_scale": "batch_share"}
UNGRAD_CLIP = 1.0
_REFERENCE = get_family("classification")


def _host(info: MethodInfo, wrapper: str) -> Method:
    if not isinstance(info.method, Method):
        raise UnlearnlabError(f"{info.name} is a one-shot method: +{wrapper} wraps composed methods only.")
    return info.method.replace(name=info.name)


def _forget_instance(method: Method) -> Any:
    """The host's forget objective as an instance (a named one resolved in the first family defining it)."""
    part = method.forget
    if isinstance(part, ObjectiveRef):
        family = next((f for f in list_families() if part.name in get_family(f).objectives), None)
        return part.resolve(get_family(family)) if family else None
    return part if isinstance(part, Component) else None


def _family(method: Method) -> TaskFamily:
    """The family a host's parts are read in: its own when it is limited to some, else the first family (the
    reference one first) that defines every objective it names."""
    if method.families:
        return get_family(method.families[0])
    names = {p.name for p in (method.forget, method.retain) if isinstance(p, ObjectiveRef)}
    for family in [_REFERENCE, *(get_family(f) for f in list_families())]:
        if names <= set(family.objectives):
            return family
    return _REFERENCE


def _without_rule_options(method: Method) -> dict[str, Any]:
    """The host's defaults without the keys only its rule reads (a key another part also reads is kept)."""
    family = _family(method)
    others = [p for p in (method.forget, method.retain, method.optimization, *method.modifiers) if p is not None]
    shared = set().union(*(part_keys(p, family) for p in others))
    rule_only = part_keys(method.rule, family) - shared
    return {k: v for k, v in method.defaults.items() if k not in rule_only}


def surgery_method(host: Method, rule: Component, suffix: str, clip: float | None = None,
                   **overrides: Any) -> Method:
    """``host`` with ``rule`` (a surgery rule) in place of its own, labels per epoch, the right transform, and a
    gradient clip (``clip``; None: off) unless the host already clips."""
    if host.forget is None:
        raise UnlearnlabError(f"{host.name} has no forget objective: +{suffix} needs one.")
    forget = _forget_instance(host)
    options = rule.options()
    if forget is not None and forget.can_be_negative and "objective_transform" in options:
        options["objective_transform"] = "identity"
    kept = _without_rule_options(host)
    # a host option the new rule also has (SCRUB's forget budget max_epochs) keeps its host value
    carried = {k: v for k, v in host.defaults.items() if k in options and k in part_keys(host.rule, _family(host))}
    modifiers = host.modifiers
    if "clip" not in host.defaults:
        modifiers = (*modifiers, GradientClip(clip))
        options["clip"] = clip
    unknown = set(overrides) - set(kept) - set(options)
    if unknown:
        raise UnlearnlabError(f"+{suffix}: {sorted(unknown)} are not options of {host.name} or the rule.")
    defaults = {**kept, **options, **carried, **overrides}
    return host.replace(rule=rule, modifiers=modifiers, relabel_per_epoch=True, defaults=defaults,
                        name=f"{host.name}+{suffix}")


def dualoptim_method(host: Method, **overrides: Any) -> Method:
    """``host`` with an AdamW forget optimizer next to its own (which becomes the retain optimizer)."""
    if host.forget is None:
        raise UnlearnlabError(f"{host.name} has no forget objective: +dualoptim needs one.")
    kind = host.defaults.get("optimizer", "sgd")
    defaults = {**host.defaults, "optimizers": f"adamw+{kind}", "forget_lr": None,
                "forget_weight_decay": FORGET_DECAY, **overrides}
    unknown = set(overrides) - set(host.defaults)
    if unknown:
        raise UnlearnlabError(f"+dualoptim: {sorted(unknown)} are not options of {host.name}.")
    return host.replace(defaults=defaults, phased=True, name=f"{host.name}+dualoptim")


def with_dualoptim(method: Method, forget_lr: float, **overrides: Any) -> Method:
    """``method`` with DualOptim's two optimizers (its own optimizer keeps the retain steps); ``forget_lr`` is the
    AdamW forget optimizer's lr. The result is checked by one build."""
    wrapped = dualoptim_method(method, forget_lr=forget_lr, **overrides)
    wrapped.build({})
    return wrapped


def with_eupmu(method: Method, fast: bool = False, **overrides: Any) -> Method:
    """``method``'s objectives under EUPMU's implicit gradient surgery (``fast``: EUPMU-fast)."""
    wrapped = surgery_method(method, ImplicitSurgery(**(FAST if fast else {"epsilon": -0.01})),
                             "eupmu-fast" if fast else "eupmu", **overrides)
    wrapped.build({})
    return wrapped


def with_ungrad(method: Method, **overrides: Any) -> Method:
    """``method``'s objectives under UNGrad's explicit surgery, as the EUPMU code runs it (losses scaled by batch
    share, the direction clipped to norm 1)."""
    wrapped = surgery_method(method, Surgery(epsilon=0.0, **UNGRAD_REFERENCE), "ungrad", UNGRAD_CLIP, **overrides)
    wrapped.build({})
    return wrapped


def _wrapped(info: MethodInfo, name: str, method: Method, composition: str, paper: str, summary: str,
             reference: dict[str, Any]) -> MethodInfo:
    return MethodInfo(name, f"{info.composition} × {composition}", paper, summary, method,
                      {**info.reference, **reference}, (), info.forgets)


def eupmu(info: MethodInfo, name: str, fast: bool = False, **overrides: Any) -> MethodInfo:
    method = surgery_method(_host(info, "eupmu"), ImplicitSurgery(**(FAST if fast else {"epsilon": -0.01})),
                            "eupmu-fast" if fast else "eupmu", **overrides)
    kind = "implicit_surgery[fast] (convex, ε = −0.06)" if fast else "implicit_surgery (ε = −0.01)"
    return _wrapped(info, name, method, kind, EUPMU,
                    f"{info.name}'s objectives with implicit gradient surgery: one backward of L_f + λ·L_r per step, "
                    "λ learned from the retain-loss change.", EUPMU_REFERENCE)


def ungrad(info: MethodInfo, name: str, **overrides: Any) -> MethodInfo:
    method = surgery_method(_host(info, "ungrad"), Surgery(epsilon=0.0, **UNGRAD_REFERENCE), "ungrad", UNGRAD_CLIP,
                            **overrides)
    return _wrapped(info, name, method, "surgery (ε = 0)", EUPMU,
                    f"{info.name}'s objectives with explicit unilateral surgery: d = g_u + λ*·g_r, closed-form λ* "
                    "(two backward passes).", EUPMU_REFERENCE)


def dualoptim(info: MethodInfo, name: str, **overrides: Any) -> MethodInfo:
    method = dualoptim_method(_host(info, "dualoptim"), **overrides)
    kind = method.defaults["optimizers"]
    return _wrapped(info, name, method, f"alternate[dual] ({kind}: AdamW forget, host optimizer retain)", DUALOPTIM,
                    f"{info.name} with two optimizers over the same parameters: forget steps feed only an AdamW "
                    "forget optimizer, retain steps only the host's own optimizer (its settings unchanged).", {})


WRAPPERS.update({
    "dualoptim": dualoptim,
    "eupmu": eupmu,
    "eupmu-fast": lambda info, name: eupmu(info, name, fast=True),
    "ungrad": ungrad,
})

