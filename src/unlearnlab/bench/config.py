"""The benchmark configuration: a validated pydantic model, loaded from YAML and overridden by CLI flags.

:class:`RunConfig` is the one description of a grid that ``unlearnlab run``, ``unlearnlab tune`` and the Python
API (:func:`unlearnlab.bench.runner.run_grid`) share. Every key is typed; an unknown key or a bad value raises
:class:`~unlearnlab.errors.UnlearnlabError` naming the key and what is allowed (closest known names for a
misspelt key). Values that need the registries (method names, their hyperparameters, dataset files) are checked
when the grid is planned (:func:`unlearnlab.bench.plan.plan`), still before anything is written. Nothing in a
config is evaluated as code: YAML is read with a safe loader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from unlearnlab.data.forget import ForgetSpec
from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.evaluation import DEFAULT_MIAS, PRIMARY_MIAS, SVC_MIA
from unlearnlab.training import Recipe


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 needs ``1.0e-3``, else a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str, what: str) -> Any:
    """``text`` read as YAML with a safe loader; a syntax error or a ``!!python`` tag names ``what`` and fails."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: nothing is evaluated as code
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise UnlearnlabError(f"{what} is not valid YAML ({detail}). Quote text values, e.g. key: 'a b'.") from None


DEFAULT_METHODS = (
    "retrain", "ft", "ga", "rl", "neggrad-plus", "l1-sparse", "salun", "scrub", "eupmu", "dualoptim/salun",
)
EXECUTORS = ("serial", "local", "ray", "torchrun")
PROFILES = ("default", "reference")
#: K resampled attack sets per MIA cell unless a protocol or config says otherwise (measured: bench/README.md,
#: "Attack spread")
DEFAULT_ATTACK_DRAWS = 20
#: the MIAs a grid computes unless a protocol or config says otherwise: the two a plain run always reported (the
#: kit's loss attack costs 10 logistic-regression fits per cell; protocols that use it list it)
GRID_MIAS = (SVC_MIA, "mia_lr_entropy_member_rate")


def parse_seeds(text: str | list | tuple) -> tuple[int, ...]:
    """``"1,2,3"``, ``"1-5"`` or a list → a tuple of distinct seeds ≥ 1."""
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
    """``"retrain,ft"`` or a list → a tuple of distinct method names (checked against the registry later)."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    methods = tuple(dict.fromkeys(str(m).strip() for m in items if str(m).strip()))
    if not methods:
        raise UnlearnlabError("methods: name at least one method (see `unlearnlab methods`).")
    return methods


def check_device(name: str) -> str:
    """``name`` when torch reads it as a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); else a clear error."""
    try:
        torch.device(name)
    except (RuntimeError, TypeError):
        raise UnlearnlabError(f"device {name!r} is not a device name: use cpu, cuda, cuda:N (the N-th GPU) or "
                              "mps.") from None
    return name


class Validated(BaseModel):
    """A frozen, strict pydantic model whose construction errors are :class:`UnlearnlabError` messages that
    name the key (``<what> 'key'``) and what it accepts; an unknown key suggests the closest known ones."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    #: how messages call a key of this model
    what: ClassVar[str] = "key"

    def __init__(self, **data: Any) -> None:
        for key in data:
            if key not in type(self).model_fields:
                raise unknown_name(self.what, key, type(self).model_fields)
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise validation_error(err, type(self)) from None


_RECIPE_KEYS = ("recipe", "retrain_recipe")


class RunConfig(Validated):
    """One benchmark grid: dataset × forget spec × methods × seeds on one model, and where it runs."""

    what: ClassVar[str] = "config key"

    dataset: str = Field("digits", description="dataset name (`unlearnlab datasets`)")
    model: str = Field("mlp", description="model name (`unlearnlab models`)")
    forget: str = Field("random:0.1", description="random:0.1 (fraction) | random:130 (count) | class:3 | "
                                                  "indices:FILE.npy")
    methods: tuple[str, ...] = Field(DEFAULT_METHODS, description="methods; retrain always runs first")
    seeds: tuple[int, ...] = Field((1, 2, 3), description="seeds >= 1 ('1,2,3' or '1-5')")
    out: str = Field("runs/default", description="output folder")
    root: str | None = Field(None, description="folder holding the dataset files")
    cache: bool = Field(True, description="reuse cached original and retrained models")
    cache_dir: str | None = Field(None, description="model cache folder (default $UNLEARNLAB_CACHE)")
    device: str | None = Field(None, description="cpu, cuda, cuda:N (default: CUDA when present)")
    profile: str = Field("default", description="hyperparameter profile: default | reference")
    primary_mia: str = Field("mia_efficacy_svc_conf", description="the MIA of the table's MIA column")
    recipe: dict[str, Any] = Field(default_factory=dict, description="original-model recipe keys")
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict, description="{method: {key: value}}")
    threads: int | None = Field(None, ge=1, description="torch CPU threads")
    retrain_recipe: dict[str, Any] = Field(default_factory=dict, description="retrain recipe keys (default: "
                                                                               "the original recipe)")
    protocol: str | None = Field(None, description="a named protocol (`unlearnlab protocols`)")
    quick: bool = Field(False, description="the protocol's --quick size")
    executor: str | None = Field(None, description="serial | local | ray | torchrun (default: serial, local with "
                                                   "workers > 1, torchrun under torchrun)")
    workers: int | None = Field(None, ge=1, description="concurrent cells")
    ray_address: str | None = Field(None, description="Ray cluster address")
    forget_quality_n: int | None = Field(None, ge=2, description="N of the NeurIPS'23 forget score (>= 2)")
    original: str | None = Field(None, description="your trained original model (a state dict or an unlearnlab "
                                                   "checkpoint) instead of training one")
    save_models: bool = Field(False, description="save every unlearned model to OUT/models/")
    mias: tuple[str, ...] = Field(GRID_MIAS, description="MIA definitions to compute (the primary among them)")
    attack_draws: int = Field(DEFAULT_ATTACK_DRAWS, ge=0, description="K resampled attack sets per MIA (0: off)")
    ulira_shadows: int | None = Field(None, ge=2, description="U-LiRA shadow models K (even; random forgetting)")
    noise_floor: bool = Field(True, description="add a second, independent Retrain row (the noise floor)")
    original_per_seed: bool = Field(False, description="train one original model per seed (its variance counts)")
    test_half: bool = Field(False, description="TA and MIAs on the NeurIPS'23 kit's half of D_test")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> tuple[int, ...]:
        return parse_seeds(value)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> tuple[str, ...]:
        return parse_methods(value)

    @field_validator("mias", mode="before")
    @classmethod
    def _mias(cls, value: Any) -> tuple[str, ...]:
        items = tuple(parse_methods(value)) if value else ()
        unknown = [m for m in items if m not in DEFAULT_MIAS]
        if unknown or not items:
            raise UnlearnlabError(f"mias {value!r}: use some of {', '.join(DEFAULT_MIAS)}.")
        return items

    @field_validator("ulira_shadows")
    @classmethod
    def _shadows(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise UnlearnlabError(f"ulira_shadows must be even (each example in exactly half the shadows), got "
                                  f"{value}.")
        return value

    @field_validator("forget")
    @classmethod
    def _forget(cls, value: str) -> str:
        ForgetSpec.parse(value)
        return value

    @field_validator("original")
    @classmethod
    def _original(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise UnlearnlabError("original: give the path of your trained model's state dict "
                                  "(torch.save(model.state_dict(), PATH)).")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return None if value is None else check_device(value)

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise UnlearnlabError(f"Unknown profile {value!r}: use 'default' (small scale) or 'reference'.")
        return value

    @field_validator("primary_mia")
    @classmethod
    def _mia(cls, value: str) -> str:
        if value not in PRIMARY_MIAS:
            raise UnlearnlabError(f"primary_mia {value!r}: use one of {', '.join(PRIMARY_MIAS)}.")
        return value

    @field_validator("executor")
    @classmethod
    def _executor(cls, value: str | None) -> str | None:
        if value is not None and value not in EXECUTORS:
            raise unknown_name("executor", value, EXECUTORS)
        return value

    @field_validator(*_RECIPE_KEYS, mode="before")
    @classmethod
    def _recipe(cls, value: Any) -> Any:
        value = {} if value is None else value
        if isinstance(value, dict):
            Recipe.from_dict(value)  # unknown keys and bad types, with the recipe's own message
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready values; the optional keys are left out at their defaults (a plain run's
        ``config.yaml`` stays as it was before they existed)."""
        d = self.model_dump()
        d["methods"], d["seeds"], d["mias"] = list(self.methods), list(self.seeds), list(self.mias)
        for key, default in _OPTIONAL.items():
            if d[key] == default:
                del d[key]
        return d

    def updated(self, **changes: Any) -> RunConfig:
        """A validated copy with the non-``None`` ``changes`` applied (CLI flags override config keys)."""
        return RunConfig(**{**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})


_OPTIONAL: dict[str, Any] = {"retrain_recipe": {}, "protocol": None, "quick": False, "executor": None,
                             "workers": None, "ray_address": None, "forget_quality_n": None,
                             "original": None, "save_models": False,
                             "mias": list(GRID_MIAS), "attack_draws": DEFAULT_ATTACK_DRAWS, "ulira_shadows": None,
                             "noise_floor": True, "original_per_seed": False, "test_half": False}
_EXPECTED = {"string_type": "a string", "bool_type": "true or false", "int_type": "an integer",
             "float_type": "a number", "dict_type": "a mapping", "tuple_type": "a list", "list_type": "a list"}


def validation_error(err: ValidationError, model: type[Validated]) -> UnlearnlabError:
    """The first problem of a pydantic ``err`` as one message that names the key and what it accepts."""
    first = err.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, UnlearnlabError):  # our own validators already wrote the message
        return cause
    key = ".".join(str(part) for part in first["loc"])
    field = model.model_fields.get(str(first["loc"][0]))
    bound = next((m.ge for m in (field.metadata if field else []) if hasattr(m, "ge")), None)
    if bound is not None and first["type"] in ("greater_than_equal", "int_type", "int_parsing"):
        expected = f"an integer >= {bound}"
    else:
        expected = _EXPECTED.get(first["type"], first["msg"].removeprefix("Input should be ").lower())
    return UnlearnlabError(f"{model.what} {key!r} must be {expected}, got {first.get('input')!r}.")


def from_dict(data: Any) -> RunConfig:
    """Validate a mapping (e.g. a parsed YAML file) into a :class:`RunConfig`."""
    if not isinstance(data, dict):
        raise UnlearnlabError(f"A config must be a mapping of keys to values, got {type(data).__name__}.")
    return RunConfig(**{str(k): v for k, v in data.items()})


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config with a safe loader and validate it."""
    return from_dict(load_config_dict(path))


def load_config_dict(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML config file, its keys checked (values are checked by :func:`from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise UnlearnlabError(f"Config file {path} does not exist (or is not a file).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UnlearnlabError(f"Config file {path} cannot be read as UTF-8 text ({err}).") from None
    data = parse_yaml(text, f"Config file {path}") or {}
    if not isinstance(data, dict):
        raise UnlearnlabError(f"A config must be a mapping of keys to values, got {type(data).__name__}.")
    for key in data:
        if key not in RunConfig.model_fields:
            raise unknown_name("config key", str(key), RunConfig.model_fields)
    return data


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``method.key=value`` (value read as a YAML scalar) → (method, key, value)."""
    lhs, sep, rhs = text.partition("=")
    method, dot, key = lhs.partition(".")
    if not sep or not dot or not method.strip() or not key.strip():
        raise UnlearnlabError(f"--set {text!r}: use METHOD.KEY=VALUE, e.g. --set salun.lr=0.02.")
    return method.strip(), key.strip(), parse_yaml(rhs, f"--set {text!r}: the value")
