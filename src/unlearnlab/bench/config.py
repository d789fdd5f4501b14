"""The benchmark configuration: a typed object, loaded from YAML and overridden by CLI flags.

Unknown keys and bad values fail with a message that names the key and what is allowed. Nothing in a config
is evaluated as code.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unlearnlab.errors import UnlearnlabError, unknown_name


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 needs ``1.0e-3``, else a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: nothing is evaluated as code


DEFAULT_METHODS = (
    "retrain", "ft", "ga", "rl", "neggrad-plus", "l1-sparse", "salun", "scrub", "eupmu", "salun+dualoptim",
)


@dataclass
class RunConfig:
    """One benchmark grid: dataset × forget spec × methods × seeds on one model."""

    dataset: str = "digits"
    model: str = "mlp"
    forget: str = "random:0.1"
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (1, 2, 3)
    out: str = "runs/default"
    root: str | None = None
    cache: bool = True
    cache_dir: str | None = None
    device: str | None = None
    profile: str = "default"
    primary_mia: str = "mia_efficacy_svc_conf"
    recipe: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | None = None
    #: recipe of the retrained models (keys as ``recipe``); empty: the original recipe on D_r
    retrain_recipe: dict[str, Any] = field(default_factory=dict)
    #: a named protocol (:mod:`unlearnlab.protocols`) that pins dataset, model, forget, recipes and primary MIA
    protocol: str | None = None
    #: the protocol's ``--quick`` size
    quick: bool = False
    #: where grid cells run: ``serial`` (in this process), ``local`` (process pool) or ``ray``; ``None``: serial
    #: with one worker, else local (:mod:`unlearnlab.bench.executors`)
    executor: str | None = None
    #: concurrent cells (local: pool size, default min(2, CPUs); ray: tasks in flight, default the cluster's)
    workers: int | None = None
    #: Ray cluster address (``ray.init(address=...)``); ``None``: ``$RAY_ADDRESS``, else a local instance
    ray_address: str | None = None
    #: the NeurIPS 2023 forget score with N unlearned vs N retrained models on the first seed; ``None``: off
    forget_quality_n: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["methods"], d["seeds"] = list(self.methods), list(self.seeds)
        for key in _OPTIONAL:  # left out at their defaults: a plain run's config.yaml is unchanged
            if d[key] == _OPTIONAL[key]:
                del d[key]
        return d

    def updated(self, **changes: Any) -> RunConfig:
        """A copy with the non-``None`` ``changes`` applied (CLI flags override config keys)."""
        return from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})


def parse_seeds(text: str | list | tuple) -> tuple[int, ...]:
    """``"1,2,3"``, ``"1-5"`` or a list → a tuple of seeds ≥ 1."""
    if isinstance(text, (list, tuple)):
        items = [str(x) for x in text]
    else:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
    seeds: list[int] = []
    try:
        for item in items:
            if "-" in item[1:]:
                lo, hi = item.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(item))
    except ValueError:
        raise UnlearnlabError(f"seeds {text!r}: use integers like '1,2,3' or a range '1-5'.") from None
    if not seeds or min(seeds) < 1:
        raise UnlearnlabError(f"seeds {text!r}: give at least one seed, all >= 1.")
    return tuple(dict.fromkeys(seeds))


def parse_methods(text: str | list | tuple) -> tuple[str, ...]:
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    methods = tuple(dict.fromkeys(m.strip() for m in items if str(m).strip()))
    if not methods:
        raise UnlearnlabError("methods: name at least one method (see `unlearnlab methods`).")
    return methods


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_OPTIONAL: dict[str, Any] = {"retrain_recipe": {}, "protocol": None, "quick": False, "executor": None,
                             "workers": None, "ray_address": None, "forget_quality_n": None}
EXECUTORS = ("serial", "local", "ray")


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a mapping into a :class:`RunConfig`."""
    if not isinstance(data, dict):
        raise UnlearnlabError(f"A config must be a mapping of keys to values, got {type(data).__name__}.")
    for key in data:
        if key not in _FIELDS:
            raise unknown_name("config key", key, _FIELDS)
    values = dict(data)
    if "seeds" in values:
        values["seeds"] = parse_seeds(values["seeds"])
    if "methods" in values:
        values["methods"] = parse_methods(values["methods"])
    for key in ("recipe", "hparams", "retrain_recipe"):
        if key in values and not isinstance(values[key] or {}, dict):
            raise UnlearnlabError(f"config key {key!r} must be a mapping, got {values[key]!r}.")
        values[key] = dict(values.get(key) or {})
    for key in ("cache", "quick"):
        if key in values and not isinstance(values[key], bool):
            raise UnlearnlabError(f"config key {key!r} must be true or false, got {values[key]!r}.")
    for key in ("dataset", "model", "forget", "out", "profile", "primary_mia"):
        if key in values and not isinstance(values[key], str):
            raise UnlearnlabError(f"config key {key!r} must be a string, got {values[key]!r}.")
    if values.get("protocol") is not None and not isinstance(values["protocol"], str):
        raise UnlearnlabError(f"config key 'protocol' must be a protocol name, got {values['protocol']!r}.")
    if values.get("executor") is not None and values["executor"] not in EXECUTORS:
        raise unknown_name("executor", str(values["executor"]), EXECUTORS)
    workers = values.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UnlearnlabError(f"config key 'workers' must be an integer >= 1, got {workers!r}.")
    fq = values.get("forget_quality_n")
    if fq is not None and (isinstance(fq, bool) or not isinstance(fq, int) or fq < 2):
        raise UnlearnlabError(f"config key 'forget_quality_n' must be an integer >= 2 (models per family), got {fq!r}.")
    if values.get("ray_address") is not None and not isinstance(values["ray_address"], str):
        raise UnlearnlabError(f"config key 'ray_address' must be a string, got {values['ray_address']!r}.")
    return RunConfig(**values)


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config with ``yaml.safe_load`` and validate it."""
    return from_dict(load_config_dict(path))


def load_config_dict(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file (keys validated, values not yet)."""
    path = Path(path)
    if not path.exists():
        raise UnlearnlabError(f"Config file {path} does not exist.")
    try:
        data = _yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UnlearnlabError(f"Config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise UnlearnlabError(f"A config must be a mapping of keys to values, got {type(data).__name__}.")
    for key in data:
        if key not in _FIELDS:
            raise unknown_name("config key", key, _FIELDS)
    return data


def protocol_config(name: str, quick: bool = False, data: dict[str, Any] | None = None) -> RunConfig:
    """The protocol's config with the keys of ``data`` (e.g. a config file) on top; pinned keys are checked
    by :func:`unlearnlab.bench.runner.plan`."""
    from unlearnlab.protocols import get_protocol

    return get_protocol(name).run_config(quick, **{k: v for k, v in (data or {}).items()
                                                   if k not in ("protocol", "quick")})


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``method.key=value`` (value parsed as YAML scalar) → (method, key, value)."""
    lhs, sep, rhs = text.partition("=")
    method, dot, key = lhs.partition(".")
    if not sep or not dot or not method or not key:
        raise UnlearnlabError(f"--set {text!r}: use METHOD.KEY=VALUE, e.g. --set salun.lr=0.02.")
    return method.strip(), key.strip(), _yaml(rhs)
