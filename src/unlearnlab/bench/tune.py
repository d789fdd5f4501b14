"""Hyperparameter search with Optuna, selecting on D_val against the retrained reference (docs/tuning.md).

One trial = one hyperparameter point, run on every seed s of ``seeds``: the method unlearns the cached original
(shared with ``unlearnlab run``) and is scored against the retrained model R_s of the same seed. The trial's value
is the matched Avg.Gap with **D_val in the place of D_test** (:func:`validation_task`): the test set is never
looked at. ``select_on="test"`` (papers that tuned on test) is a compatibility option recorded in the study, the
result and the YAML written. Lower is better. Studies live in an Optuna storage (``sqlite:///OUT/tune.sqlite`` by
default, or any RDB URL); calling :func:`tune` again with the same study name resumes it (its identity — task,
method, space, seeds, selection split — must match). The sampler is TPE, seeded. Outputs in ``out``:
``trials.csv``, ``best.yaml`` (a runnable ``unlearnlab run`` config with the chosen values),
``sensitivity-<param>`` plots and ``tune.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unlearnlab.bench.cells import attempt
from unlearnlab.bench.classification import unlearn_and_score
from unlearnlab.bench.config import RunConfig, parse_seeds, parse_yaml
from unlearnlab.bench.plan import Plan, plan
from unlearnlab.bench.plots import sensitivity_plot
from unlearnlab.bench.trained import model_cache, original_model, original_seed, retrained_model
from unlearnlab.data.forget import ForgetTask, make_task
from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.evaluation import EvalOptions, evaluate
from unlearnlab.methods import get_method
from unlearnlab.methods.registry import MethodInfo
from unlearnlab.utils import atomic_write_text
from unlearnlab.version import __version__

SELECT_ON = ("val", "test")


class NoFiniteTrial(UnlearnlabError):
    """Every trial of a study diverged or failed: there is no value to select."""

#: metric means recorded per trial (on the selection split), besides the objective
TRIAL_METRICS = ("ua", "ra", "ta", "mia")

# ------------------------------------------------------------------------------------------------ spaces

#: A space maps a hyperparameter to ``{"low", "high", "log"[, "int"]}`` or to a list of choices. A log range with
#: two negative bounds samples the magnitude log-uniformly and negates it (EUPMU's ε < 0 in the default mode).
Space = dict[str, Any]

_DUALOPTIM_FORGET_LR = {"low": 1e-5, "high": 3e-2, "log": True}  # DualOptim's η_f grid, widened (docs/tuning.md)
#: EUPMU's |ε| ≈ 0.01–0.06, log scale, widened (docs/tuning.md)
_EUPMU_EPSILON = {"low": -0.1, "high": -0.001, "log": True}
_EUPMU_EPSILON_NORMALISED = {"low": 10.0, "high": 5000.0, "log": True}  # eupmu: paper range, lr_normalised
_LAMBDA_LR = {"low": 0.1, "high": 10.0, "log": True}  # EUPMU's λ step size (β in the paper)

#: Per-method ranges from the specs; every other preset with a float ``lr`` gets a log-uniform lr range
#: of a decade either side of its (calibrated) default. Explicit entries override that default.
SEARCH_SPACES: dict[str, Space] = {
    # the range the baselines' maintainers searched (docs/tuning.md)
    "ga": {"lr": {"low": 1e-5, "high": 1e-1, "log": True}},
    "neggrad-plus": {"beta": {"low": 0.9, "high": 0.999, "log": False}},  # β 0.95 → 0.999 (docs/tuning.md)
    # the reference grids {5e-5 … 2e-3}, widened (docs/tuning.md)
    "l1-sparse": {"alpha": {"low": 3e-5, "high": 1e-2, "log": True}},
    "iu": {"alpha": {"low": 0.01, "high": 10.0, "log": True}},  # the reference grids {0.03 … 10} (docs/tuning.md)
    "scrub": {"forget_lr": {"low": 1e-4, "high": 0.1, "log": True}},  # baselines table: forget lr searched
    "scrub-original": {"forget_lr": {"low": 5e-5, "high": 5e-3, "log": True}},
}


def _family_space(info: MethodInfo) -> Space:
    """The built-in space of ``info``: lr for SGD-style presets, then the family's own keys, then overrides."""
    d = info.defaults
    space: Space = {}
    dual = d.get("optimizers", "shared") != "shared"  # two optimizers, or their shared-state ablation
    if dual:  # DualOptim: η_r fixed, η_f searched (docs/methods.md, "DualOptim")
        space["forget_lr"] = dict(_DUALOPTIM_FORGET_LR)
    elif isinstance(d.get("lr"), float) and d["lr"] > 0:
        space["lr"] = {"low": d["lr"] / 10, "high": d["lr"] * 10, "log": True}
    if "epsilon" in d and "lambda_lr" in d:  # EUPMU family (implicit surgery): ε and the λ lr
        space["epsilon"] = dict(_EUPMU_EPSILON_NORMALISED if d.get("lr_normalised") else _EUPMU_EPSILON)
        space["lambda_lr"] = dict(_LAMBDA_LR)
    if "beta" in d and "neggrad" in info.name:
        space["beta"] = dict(SEARCH_SPACES["neggrad-plus"]["beta"])
    for key, spec in SEARCH_SPACES.get(info.name, {}).items():
        space[key] = dict(spec)
    return space


def default_space(method: str) -> Space:
    """The built-in search space of ``method`` (name or alias)."""
    info = get_method(method)
    if info.name == "retrain":
        raise UnlearnlabError("retrain is the reference every trial is scored against; there is nothing to tune. "
                              "Tune an unlearning method (see `unlearnlab methods`).")
    space = _family_space(info)
    if not space:
        raise UnlearnlabError(f"{info.name} has no built-in search space; pass one with --space FILE.yaml "
                              f"(keys: {', '.join(info.defaults)}).")
    return space


def load_space(path: str | Path) -> Space:
    """Read a space from YAML: ``{key: {low: …, high: …, log: true}}`` or ``{key: [choice, …]}``."""
    path = Path(path)
    if not path.is_file():
        raise UnlearnlabError(f"Space file {path} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UnlearnlabError(f"Space file {path} cannot be read as UTF-8 text ({err}).") from None
    data = parse_yaml(text, f"Space file {path}")
    if not isinstance(data, dict) or not data:
        raise UnlearnlabError(f"Space file {path} must map hyperparameters to ranges, e.g. "
                              "'lr: {low: 1.0e-4, high: 1.0e-1, log: true}' or 'beta: [0.95, 0.99]'.")
    return data


def validate_space(method: str, space: Mapping[str, Any]) -> Space:
    """Check every key against the method's hyperparameters and every range; returns a normalised copy."""
    info = get_method(method)
    if not space:
        raise UnlearnlabError(f"The search space for {info.name} is empty.")
    out: Space = {}
    for key, spec in space.items():
        if key not in info.defaults:
            raise unknown_name(f"{info.name} hyperparameter", key, info.defaults, f"unlearnlab methods {info.name}")
        default = info.defaults[key]
        if isinstance(spec, (list, tuple)):
            if not spec:
                raise UnlearnlabError(f"space {key!r}: give at least one choice.")
            choices = [tuple(c) if isinstance(c, list) else c for c in spec]
            for c in choices:
                info.resolve({key: c})  # type-checks each choice against the default
            out[key] = {"choices": choices}
            continue
        if not isinstance(spec, Mapping):
            raise UnlearnlabError(f"space {key!r}: use {{low: …, high: …, log: true}} or a list of choices, "
                                  f"got {spec!r}.")
        if "choices" in spec:
            out.update(validate_space(method, {key: list(spec["choices"])}))
            continue
        extra = set(spec) - {"low", "high", "log", "int", "step"}
        if extra:
            raise UnlearnlabError(f"space {key!r}: unknown fields {sorted(extra)}; use low, high, log, int, step.")
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise UnlearnlabError(f"space {key!r}: give numeric 'low' and 'high', got {dict(spec)!r}.") from None
        is_int = bool(spec.get("int", isinstance(default, int) and not isinstance(default, bool)))
        log = bool(spec.get("log", False))
        if not low < high:
            raise UnlearnlabError(f"space {key!r}: low ({low}) must be below high ({high}).")
        if log and low * high <= 0:
            raise UnlearnlabError(f"space {key!r}: a log range needs both bounds of one sign, got [{low}, {high}].")
        if log and is_int and low < 0:
            raise UnlearnlabError(f"space {key!r}: integer log ranges must be positive.")
        if (default is not None and not isinstance(default, (int, float))) or isinstance(default, bool):
            raise UnlearnlabError(f"space {key!r}: {info.name}.{key} is a {type(default).__name__} "
                                  f"(default {default!r}); give a list of choices instead of a range.")
        norm: dict[str, Any] = {"low": low, "high": high, "log": log}
        if is_int:
            norm.update(int=True, low=int(low), high=int(high))
        if "step" in spec and not log:
            norm["step"] = float(spec["step"])
        out[key] = norm
    return out


def _suggest(trial: Any, key: str, spec: Mapping[str, Any]) -> Any:
    if "choices" in spec:
        choices = spec["choices"]
        index = trial.suggest_categorical(key, list(range(len(choices)))) if _unhashable(choices) else None
        return choices[index] if index is not None else trial.suggest_categorical(key, list(choices))
    if spec.get("int"):
        return trial.suggest_int(key, spec["low"], spec["high"], log=spec["log"])
    low, high = spec["low"], spec["high"]
    if spec["log"] and high < 0:  # negative log range: log-uniform magnitude, negated
        return -trial.suggest_float(f"neg_{key}", -high, -low, log=True)
    return trial.suggest_float(key, low, high, log=spec["log"], step=spec.get("step"))


def _unhashable(choices: Sequence[Any]) -> bool:
    return any(not isinstance(c, (str, int, float, bool, type(None))) for c in choices)


# ------------------------------------------------------------------------------------------------ selection


def validation_task(task: ForgetTask) -> ForgetTask:
    """The task with D_val in the place of D_test, so selection never looks at the test set."""
    if task.val is None or len(task.val) == 0:
        raise UnlearnlabError(f"{task.dataset} has no validation split: select on it is impossible. Pass "
                              "select_on='test' (--select-on test) to reproduce a paper that tuned on test.")
    return dataclasses.replace(task, test=task.val)


@dataclass
class TuneResult:
    """The chosen hyperparameters, their objective (Avg.Gap on the selection split) and every trial."""

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    method: str = ""
    #: fixed hyperparameters merged with ``best_params``: what a run should use
    hparams: dict[str, Any] = field(default_factory=dict)
    select_on: str = "val"
    compat: list[str] = field(default_factory=list)
    study_name: str = ""
    storage: str = ""
    files: dict[str, str] = field(default_factory=dict)


def _storage_url(storage: str | None, out: Path) -> str:
    if storage is None:
        return f"sqlite:///{(out / 'tune.sqlite').resolve()}"
    if "://" not in storage:  # a plain path: an SQLite file
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def _json_safe(obj: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(_plain(obj)))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def tune(
    dataset: str,
    model: str,
    forget: str,
    method: str,
    seeds: Sequence[int] | str = (1,),
    n_trials: int = 20,
    *,
    out: str | Path = "runs/tune",
    storage: str | None = None,
    study_name: str | None = None,
    space: Mapping[str, Any] | None = None,
    hparams: Mapping[str, Any] | None = None,
    select_on: str = "val",
    sampler_seed: int = 0,
    profile: str = "default",
    primary_mia: str = "mia_efficacy_svc_conf",
    recipe: Mapping[str, Any] | None = None,
    original_per_seed: bool = False,
    root: str | None = None,
    device: str | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search ``method``'s hyperparameters for the lowest matched Avg.Gap on D_val; resume a stored study.

    ``space`` overrides the built-in :data:`SEARCH_SPACES` entry (see :func:`validate_space`); ``hparams`` fixes
    other hyperparameters for every trial. ``recipe`` overrides the original/retrain recipe (as in a run config);
    ``original_per_seed`` unlearns seed s's own original, as a protocol with one original per seed does.
    ``n_trials`` more trials are run on each call; the result covers all trials of the study.
    """
    try:
        import optuna
    except ImportError:  # pragma: no cover - the `tune` extra
        raise UnlearnlabError("unlearnlab tune needs Optuna: pip install 'unlearnlab[tune]'.") from None
    if select_on not in SELECT_ON:
        raise UnlearnlabError(f"select_on {select_on!r}: use 'val' (default) or 'test' (compatibility only).")
    if n_trials < 0:
        raise UnlearnlabError(f"n_trials must be >= 0, got {n_trials}.")
    seeds = parse_seeds(seeds)
    info = get_method(method)
    name = info.name
    space_n = validate_space(name, space if space is not None else default_space(name))
    fixed = dict(hparams or {})
    clash = set(fixed) & set(space_n)
    if clash:
        raise UnlearnlabError(f"{sorted(clash)} are both fixed (hparams) and searched (space); choose one.")
    info.resolve(fixed, profile)  # unknown keys and bad types fail before anything runs
    out = Path(out)
    config = RunConfig(dataset=dataset, model=model, forget=forget, methods=(name,), seeds=seeds, out=str(out),
                       root=root, cache=cache, cache_dir=cache_dir, device=device, profile=profile,
                       primary_mia=primary_mia, recipe=dict(recipe or {}), hparams={name: fixed},
                       mias=(primary_mia,), original_per_seed=original_per_seed)
    p = plan(config)  # validates dataset, model, forget spec, recipe (raises before any file is written)
    compat = ["select_on=test"] if select_on == "test" else []
    identity = _json_safe({"dataset": dataset, "model": model, "forget": forget, "method": name,
                           "seeds": list(seeds), "space": space_n, "hparams": fixed, "select_on": select_on,
                           "profile": profile, "primary_mia": primary_mia, "recipe": p.recipe.to_dict(),
                           **({"original_per_seed": True} if original_per_seed else {})})
    out.mkdir(parents=True, exist_ok=True)
    url = _storage_url(storage, out)
    study_name = study_name or re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{dataset}-{forget}-{model}-{name}-{select_on}")
    log = log or (lambda msg: None)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(study_name=study_name, storage=url, direction="minimize", load_if_exists=True)
    previous = probe.user_attrs.get("identity")
    if previous is None:
        probe.set_user_attr("identity", identity)
        probe.set_user_attr("unlearnlab", __version__)
    elif previous != identity:
        diff = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
        raise UnlearnlabError(f"Study {study_name!r} in {url} was created for another search (differs in "
                              f"{', '.join(diff)}); use another --study-name or --storage to start a new one.")
    done_before = len(probe.trials)
    # reseeding with the trial count keeps a resumed study from replaying its first random proposals
    sampler = optuna.samplers.TPESampler(seed=sampler_seed + done_before)
    study = optuna.load_study(study_name=study_name, storage=url, sampler=sampler)

    if n_trials:
        objective = _Objective(p, name, seeds, fixed, space_n, select_on, log)
        study.optimize(objective, n_trials=n_trials, catch=())
    trials = trial_records(study)
    complete = [t for t in trials if t["state"] == "COMPLETE" and math.isfinite(t["value"])]
    if not complete:
        raise NoFiniteTrial(f"No trial of study {study_name!r} finished with a finite Avg.Gap "
                            f"({len(trials)} trials); widen or move the search space.")
    best = min(complete, key=lambda t: (t["value"], t["number"]))
    result = TuneResult(best_params=dict(best["params"]), best_value=best["value"], trials=trials, method=name,
                        hparams={**fixed, **best["params"]}, select_on=select_on, compat=compat,
                        study_name=study_name, storage=url)
    _write_outputs(result, config, out, space_n, plots)
    log(f"best {name}: {_fmt_params(result.best_params)} · Avg.Gap on D_{select_on} {result.best_value:.3f} "
        f"(trial {best['number']} of {len(trials)})")
    return result


class _Objective:
    """Mean over seeds of the per-seed gap to R_s on the selection split; originals/retrains from the cache."""

    def __init__(self, p: Plan, method: str, seeds: Sequence[int], fixed: Mapping[str, Any], space: Space,
                 select_on: str, log: Callable[[str], None]) -> None:
        self.p, self.method, self.seeds, self.fixed, self.space = p, method, tuple(seeds), dict(fixed), space
        self.select_on, self.log = select_on, log
        self._setup: dict[int, tuple[torch.nn.Module, ForgetTask, Any]] | None = None
        #: trials score only what the objective reads: the primary MIA, one draw
        self.options = EvalOptions(mias=(p.config.primary_mia,))

    def setup(self) -> dict[int, tuple[torch.nn.Module, ForgetTask, Any]]:
        """Per seed: (original model, selection task, retrained model's evaluation) — built once."""
        if self._setup is None:
            p, cfg = self.p, self.p.config
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            cache = model_cache(p, self.log)
            originals: dict[int, torch.nn.Module] = {}
            self._setup = {}
            for seed in self.seeds:
                task = make_task(cfg.dataset, cfg.forget, seed, device=p.device, root=cfg.root)
                o_seed = original_seed(p, seed)
                if o_seed not in originals:
                    originals[o_seed] = original_model(cache, task, p, seed=o_seed)[0]
                retrained, _ = retrained_model(cache, task, p, seed)
                selection = validation_task(task) if self.select_on == "val" else task
                self._setup[seed] = (originals[o_seed], selection,
                                     evaluate(retrained, selection, primary_mia=cfg.primary_mia, options=self.options))
        return self._setup

    def __call__(self, trial: Any) -> float:
        refs = self.setup()
        searched = {key: _suggest(trial, key, spec) for key, spec in self.space.items()}
        trial.set_user_attr("hparams", _json_safe(searched))
        gaps: list[float] = []
        means: dict[str, list[float]] = {k: [] for k in TRIAL_METRICS}
        start = time.perf_counter()
        for seed in self.seeds:
            original, selection, reference = refs[seed]
            outcome = attempt(partial(unlearn_and_score, original, selection, self.method, seed,
                                      {**self.fixed, **searched}, reference, self.p.config.primary_mia,
                                      options=self.options))
            if outcome.status != "done":  # diverged: the worst value; failed: Optuna records a FAIL (NaN)
                trial.set_user_attr(outcome.status, f"seed {seed}: {outcome.message}"[:500])
                self.log(f"trial {trial.number}: {_fmt_params(searched)} {outcome.status} (seed {seed})")
                return float("inf") if outcome.status == "diverged" else float("nan")
            gaps.append(float(outcome.metrics["gap"]))
            for k in TRIAL_METRICS:
                means[k].append(float(outcome.metrics[k]))
        value = float(np.mean(gaps))
        trial.set_user_attr("gap_std", float(np.std(gaps, ddof=1)) if len(gaps) > 1 else None)
        trial.set_user_attr("seed_gaps", gaps)
        for k, v in means.items():
            trial.set_user_attr(k, float(np.mean(v)))
        trial.set_user_attr("seconds", time.perf_counter() - start)
        self.log(f"trial {trial.number}: {_fmt_params(searched)} → Avg.Gap {value:.3f}")
        return value


def trial_records(study: Any) -> list[dict[str, Any]]:
    """Every trial of ``study`` as a plain dict: number, state, value, params (as run), metric means."""
    records = []
    for t in study.trials:
        attrs = t.user_attrs
        value = t.value if t.value is not None else math.nan
        records.append({
            "number": t.number, "state": t.state.name, "value": float(value),
            "params": dict(attrs.get("hparams", t.params)),
            **{k: attrs.get(k) for k in (*TRIAL_METRICS, "gap_std", "seconds")},
            "diverged": attrs.get("diverged"), "failed": attrs.get("failed"),
        })
    return records


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trials_csv(trials: Sequence[Mapping[str, Any]], split: str = "val") -> str:
    """CSV text of ``trials``: one row per trial, one column per searched hyperparameter.

    Metric columns are suffixed with the selection ``split`` (``ta_val`` is accuracy on D_val).
    """
    keys = list(dict.fromkeys(k for t in trials for k in t["params"]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["number", "state", "avg_gap", "avg_gap_std", *(f"{k}_{split}" for k in TRIAL_METRICS), "seconds",
            "diverged", "failed"]
    writer.writerow(head + keys)
    for t in trials:
        writer.writerow([t["number"], t["state"], _num(t["value"]), _num(t.get("gap_std")),
                         *(_num(t.get(k)) for k in TRIAL_METRICS), _num(t.get("seconds")), t.get("diverged") or "",
                         t.get("failed") or "",
                         *(_num(t["params"].get(k)) for k in keys)])
    return buf.getvalue()


def _num(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else str(x)
    return str(x)


def _write_outputs(result: TuneResult, config: RunConfig, out: Path, space: Space, plots: bool) -> None:
    files = {"trials": out / "trials.csv", "best": out / "best.yaml", "summary": out / "tune.md"}
    atomic_write_text(files["trials"], trials_csv(result.trials, result.select_on))
    n = len(result.trials)
    head = [f"# unlearnlab tune {__version__}: {result.method} on {config.dataset} / {config.model} / "
            f"forget {config.forget}",
            f"# selected on D_{result.select_on} (Avg.Gap vs retrain of the same seed, seeds "
            f"{', '.join(map(str, config.seeds))}): {result.best_value:.4f} over {n} trials",
            f"# study {result.study_name!r} in {result.storage}"]
    if result.compat:
        head.append(f"# compat: {', '.join(result.compat)} (selected on the TEST split: not a held-out result)")
    run_config = {"dataset": config.dataset, "model": config.model, "forget": config.forget,
                  "methods": ["retrain", result.method], "seeds": list(config.seeds), "profile": config.profile,
                  "primary_mia": config.primary_mia, "out": str(out / "best-run"),
                  **({"recipe": dict(config.recipe)} if config.recipe else {}),
                  "hparams": {result.method: _plain(result.hparams)}}
    atomic_write_text(files["best"], "\n".join(head) + "\n" + yaml.safe_dump(run_config, sort_keys=False))
    if plots:
        for key in result.best_params:
            paths = sensitivity_plot(result.trials, key, "value", out / f"sensitivity-{_slug(key)}",
                                     title=f"{result.method}: Avg.Gap on D_{result.select_on} vs {key} "
                                           f"({len(result.trials)} trials)")
            files[f"sensitivity-{key}"] = paths[0]
    atomic_write_text(files["summary"], _summary_md(result, config, space))
    result.files = {k: str(v) for k, v in files.items()}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _summary_md(result: TuneResult, config: RunConfig, space: Space) -> str:
    lines = [f"# Tuning {result.method} ({config.dataset}, {config.model}, forget {config.forget})", "",
             f"Selected on **D_{result.select_on}**" + (" (compat: select_on=test)" if result.compat else "")
             + f", seeds {', '.join(map(str, config.seeds))}; objective: matched Avg.Gap to Retrain (lower is "
             "better).", "", f"Best: {_fmt_params(result.best_params)} → {result.best_value:.3f}", "",
             "Space: " + "; ".join(f"{k} {v}" for k, v in space.items()), "",
             "| trial | state | Avg.Gap | UA | RA | TA | MIA | " + " | ".join(space) + " |",
             "|" + "---|" * (7 + len(space))]
    for t in sorted(result.trials, key=lambda t: (not math.isfinite(t["value"]), t["value"])):
        cells = [str(t["number"]), t["state"], f"{t['value']:.3f}",
                 *(f"{t[k]:.2f}" if t.get(k) is not None else "–" for k in TRIAL_METRICS),
                 *(_fmt_params({k: t["params"][k]}).split("=", 1)[1] if k in t["params"] else "–" for k in space)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
