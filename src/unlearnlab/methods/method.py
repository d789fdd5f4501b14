"""Methods as compositions: forget objective × retain objective × update rule + modifiers + optimisation.

:func:`compose` builds a :class:`Method` from parts, each given as

* an instance (an :class:`~unlearnlab.objectives.Objective`, a rule, a modifier, an
  :class:`~unlearnlab.methods.optimization.Optimization`): its hyperparameters (dataclass fields) become the
  method's, with their current values as defaults;
* for an objective, a name (``"loss"``, ``"random_labels"``, …) that the task family resolves when the method
  runs, so one method serves every family that defines its objectives;
* a :class:`Derived` factory ``Derived(keys, make)`` for parts whose hyperparameters are named or derived
  differently (NegGrad+'s β sets both weights): ``make(params)`` builds the part from the declared ``keys``,
  whose defaults are given as ``compose(..., key=default)``.

``ul.unlearn`` accepts a :class:`Method` in place of a registered name; registered presets are built the same way.
Every value is checked when the method is built for a run (and once with its defaults at composition), so a bad
option fails before any model is trained. docs/extending.md shows each kind of part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from unlearnlab.components import Component
from unlearnlab.distributed.unlearning import prepare
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families import TaskFamily, get_family
from unlearnlab.methods.base import RunContext, UnlearnData, Unlearner
from unlearnlab.methods.modifiers.base import Modifier
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.rules.base import Job, Rule, Stepper
from unlearnlab.methods.rules.joint import Joint
from unlearnlab.objectives import Objective
from unlearnlab.training import Precision, lr_multiplier

Part = Any  # a component instance, a Derived factory, or (objectives) a name


@dataclass(frozen=True)
class Derived:
    """A part built from hyperparameters ``keys`` by ``make(params)`` (see module docstring)."""

    keys: tuple[str, ...]
    make: Callable[[Mapping[str, Any]], Any]

    def __call__(self, params: Mapping[str, Any]) -> Any:
        missing = [k for k in self.keys if k not in params]
        if missing:
            raise UnlearnlabError(f"A derived part reads {missing}, which the method does not declare: pass "
                                  "them to compose(..., key=default).")
        return self.make({k: params[k] for k in self.keys})


@dataclass(frozen=True)
class ObjectiveRef:
    """A named objective with fixed structural settings (e.g. ``ObjectiveRef("random_labels", per="epoch")``)."""

    name: str
    settings: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **settings: Any) -> ObjectiveRef:
        return cls(name, tuple(sorted(settings.items())))

    def resolve(self, family: TaskFamily) -> Objective:
        objective = family.objective(self.name)()
        return dataclasses.replace(objective, **dict(self.settings)) if self.settings else objective


def _as_ref(part: Part) -> Part:
    return ObjectiveRef(part) if isinstance(part, str) else part


def _instantiate(part: Part, params: Mapping[str, Any], family: TaskFamily) -> Any:
    """A fresh part for one run: a resolved name, a configured instance, or the factory's product."""
    if part is None:
        return None
    if isinstance(part, ObjectiveRef):
        return part.resolve(family).configured(params)
    if isinstance(part, Component):
        return part.configured(params)
    if isinstance(part, Derived):
        return part(params)
    raise UnlearnlabError(f"A method part must be a component instance, a Derived factory or (for objectives) a "
                          f"name, got {part!r}.")


@dataclass
class Method:
    """A composed iterative method: parts plus the flat hyperparameter defaults they read."""

    forget: Part = None
    retain: Part = None
    rule: Part = field(default_factory=Joint)
    modifiers: tuple[Part, ...] = ()
    optimization: Part = field(default_factory=Optimization)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the forget objective draws its labels once per epoch (surgery rules); see Objective.per_epoch
    relabel_per_epoch: bool = False
    #: run the rule with separate forget and retain phases even with one optimizer (DualOptim's shared ablation)
    phased: bool = False
    #: how results name the method when it is not registered (compose(..., name=...))
    name: str = "composed"
    #: the task families the method is limited to (None: every family that defines its named objectives); presets
    #: whose values only make sense for one modality (the ``ddpm/*`` budgets) set it
    families: tuple[str, ...] | None = None

    def parts(self, params: Mapping[str, Any], family: TaskFamily | str = "classification"
              ) -> tuple[Objective | None, Objective | None, Rule, list[Modifier], Optimization]:
        """Fresh parts for one run with ``params`` (defaults ← overrides already merged)."""
        fam = get_family(family)
        forget = _instantiate(self.forget, params, fam)
        if forget is not None and self.relabel_per_epoch:
            forget = forget.per_epoch()
        retain = _instantiate(self.retain, params, fam)
        rule = _instantiate(self.rule, params, fam)
        modifiers = [m for m in (_instantiate(m, params, fam) for m in self.modifiers) if m is not None]
        optimization = _instantiate(self.optimization, params, fam)
        if optimization.dual or self.phased:
            rule = rule.phased(forget is not None, retain is not None)
        return forget, retain, rule, modifiers, optimization

    def build(self, params: Mapping[str, Any], family: TaskFamily | str = "classification") -> IterativeUnlearner:
        return IterativeUnlearner(*self.parts({**self.defaults, **params}, family))

    def objectives_named(self) -> list[str]:
        return [p.name for p in (self.forget, self.retain) if isinstance(p, ObjectiveRef)]

    def supports(self, family: TaskFamily | str) -> bool:
        """Whether ``family`` is allowed (:attr:`families`) and defines every objective this method names."""
        fam = get_family(family)
        if self.families is not None and fam.name not in self.families:
            return False
        return fam.defines(self.objectives_named())

    def replace(self, **changes: Any) -> Method:
        return dataclasses.replace(self, **changes)


def part_keys(part: Part, family: TaskFamily) -> set[str]:
    """The hyperparameter names a part reads."""
    if isinstance(part, Derived):
        return set(part.keys)
    instance = part.resolve(family) if isinstance(part, ObjectiveRef) else part
    return set(instance.options()) if isinstance(instance, Component) else set()


def collect_options(parts: Sequence[Part], family: TaskFamily) -> dict[str, Any]:
    """The hyperparameters of the instance parts (named objectives resolved in ``family``), checked for clashes."""
    options: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for part in parts:
        instance = part.resolve(family) if isinstance(part, ObjectiveRef) else part
        if not isinstance(instance, Component):
            continue
        for key, value in instance.options().items():
            if key in options and options[key] != value:
                raise UnlearnlabError(
                    f"{owner[key]} and {type(instance).__name__} both take {key!r} with different defaults "
                    f"({options[key]!r}, {value!r}): give {key}=... to compose() to set one value for both.")
            options[key], owner[key] = value, type(instance).__name__
    return options


def compose(forget: Part = None, retain: Part = None, rule: Part = None, modifiers: Sequence[Part] = (),
            optimization: Part = None, *, family: TaskFamily | str = "classification", name: str = "composed",
            **hparams: Any) -> Method:
    """A :class:`Method` from its parts (see module docstring); ``hparams`` set or declare hyperparameters.

    Example (NPO for classification, composed outside the package, docs/extending.md)::

        method = ul.methods.compose(forget=MyNPO(beta=0.1), retain="loss", rule=Joint(), lr=0.01, epochs=5)
        ul.unlearn(model, forget=..., retain=..., method=method)
    """
    if forget is None and retain is None:
        raise UnlearnlabError("compose() needs a forget objective, a retain objective, or both.")
    fam = get_family(family)
    method = Method(forget=_as_ref(forget), retain=_as_ref(retain), rule=rule if rule is not None else Joint(),
                    modifiers=tuple(modifiers),
                    optimization=optimization if optimization is not None else Optimization(), name=name)
    parts = [method.forget, method.retain, method.rule, *method.modifiers, method.optimization]
    options = collect_options(parts, fam)
    known = set().union(*(part_keys(p, fam) for p in parts))
    unknown = set(hparams) - known
    if unknown:
        raise UnlearnlabError(f"compose(): {sorted(unknown)} are not options of any part; the parts take: "
                              f"{', '.join(sorted(known))}.")
    undeclared = known - set(options) - set(hparams)
    if undeclared:
        raise UnlearnlabError(f"compose(): give defaults for the derived parts' keys {sorted(undeclared)}.")
    method.defaults = {**options, **hparams}
    method.build({}, fam)  # every value checked now, not after a model was trained
    return method


class IterativeUnlearner(Unlearner):
    """Runs one composed method: binds objectives, sets modifiers up, (in a distributed run) prepares the job for
    its rank (:func:`unlearnlab.distributed.unlearning.prepare`), builds optimizers, runs the rule."""

    def __init__(self, forget: Objective | None, retain: Objective | None, rule: Rule, modifiers: list[Modifier],
                 optimization: Optimization):
        self.forget, self.retain, self.rule = forget, retain, rule
        self.modifiers, self.optimization = modifiers, optimization
        self.batch_size = optimization.batch_size
        self.precision = optimization.precision

    def run(self, model: nn.Module, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        opt = self.optimization
        job = Job(model=model, data=data, ctx=ctx, stepper=None, forget=self.forget, retain=self.retain,  # type: ignore[arg-type]
                  rule=self.rule, epochs=opt.epochs, batch_size=opt.batch_size,
                  forget_batch_size=opt.forget_batch_size or opt.batch_size,
                  schedule=lambda e: lr_multiplier(opt.schedule, e, opt.epochs, 1, opt.milestones),
                  modifiers=self.modifiers, milestones=tuple(opt.milestones))
        for objective in (self.forget, self.retain):
            if objective is not None:
                objective.bind(job)
        for m in self.modifiers:
            m.setup(job)
        replica = None if ctx.dist is None else prepare(job, ctx.dist, opt.precision)
        model = job.model  # under FSDP, the sharded copy the optimizers step
        optimizers = opt.build(model)
        phases = list(optimizers)
        precision = Precision(opt.precision, next(model.parameters()).device)
        if precision.scaler is not None and not self.rule.loss_scaling:
            raise UnlearnlabError(f"precision fp16 needs loss scaling, which the {self.rule.name} rule cannot use "
                                  "(it builds its steps itself): use precision='bf16' or 'fp32'.")
        job.stepper = Stepper(model, optimizers, opt.base_lrs(phases), ctx, self.modifiers, precision)
        job.schedules = opt.schedules(phases)
        model.train()
        for m in self.modifiers:
            m.start(job)
        with precision.autocast():
            self.rule.run(job)
        if replica is not None:
            replica.finish()
        stats: dict[str, Any] = {}
        for part in (self.forget, self.retain, self.rule, *self.modifiers):
            if part is not None:
                stats.update(part.stats())
        stats["steps"] = dict(job.stepper.steps)
        return stats
