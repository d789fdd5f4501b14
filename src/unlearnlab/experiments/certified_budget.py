"""Certified budget curves (docs/certified_budget.md): accuracy against the epoch budget E over D_r.

For each certified ε and each budget E (epochs over D_r, noisy steps included) this runs

* ``certified-gradclip`` and ``certified-modelclip`` over their hyperparameter grid (docs/certified_budget.md, "Grids"),
* the certified baseline ``output-perturbation``,
* ``retrain`` with the same budget (fresh init + :func:`certified_retrain_recipe`; ε = 0, no certificate,
  independent of ε so it is run once per (E, seed) and shown as the reference row),

each on every (split seed, global seed) pair (``ctx.seeds`` = the split seeds, default 142, 230; quick 142;
global seeds 1234, 9153, quick 1234), and stores one row per (method, hyperparameters, ε, E, seed pair)
in ``ctx.store`` (resumable: complete rows are skipped). Budgets are run in ``budget_mode="planned"``: one
separate run (with its own one-cycle schedule over N = E·⌈|D_r|/b⌉ steps) per E, not the reference's prefix of
one E_max run. Selection: per (method, ε, E) the hyperparameter group with all seed pairs finished and the
highest mean validation accuracy; the table reports its test accuracy (mean ± 1.96·std/√n, ddof 0) and validation
accuracy. Splits, grids, the original model and selection are defined in docs/certified_budget.md.

Variants: ``ctx.quick`` = the scaled CPU variant ``certified-digits-random10`` (``digits_tiny``, its grid,
one seed pair, budgets {1, 3, 10}; ~20 s on 1 thread); ``DIGITS`` = that variant at full size (2 × 2 seed pairs, via
:func:`run_variant`); otherwise the full runs on MNIST (``mnist_tiny``) and CIFAR-10 (``small_cnn``), which need
the datasets on disk (:func:`unlearnlab.load_dataset`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearnlab.api import unlearn
from unlearnlab.bench import cells as bench_cells
from unlearnlab.bench.cache import save_checkpoint
from unlearnlab.bench.cells import Row, Scores, check_finite
from unlearnlab.bench.store import config_hash
from unlearnlab.data.datasets import ImageDataset, load_dataset
from unlearnlab.data.forget import ForgetSpec, ForgetTask, _hash, make_task
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.evaluation import evaluate
from unlearnlab.experiments import ExperimentContext
from unlearnlab.methods.presets_certified import certified_retrain_recipe
from unlearnlab.metrics import accuracy, predict_probs
from unlearnlab.models import create
from unlearnlab.training import train
from unlearnlab.utils import atomic_write_text, environment

DELTA = 1e-5
CERTIFIED = ("certified-gradclip", "certified-modelclip", "output-perturbation")
METHODS = (*CERTIFIED, "retrain")
SPLIT_SEEDS = (142, 230)
GLOBAL_SEEDS = (1234, 9153)
VERSION = 1


@dataclass(frozen=True)
class Variant:
    """One budget experiment: data, model, recipes and grids."""

    name: str
    dataset: str
    model: str
    split: str  # "evaluation" (make_task, val follows the split seed) or "reference" (random_split): see the docs
    batch_size: int
    original_epochs: int
    epsilons: tuple[float, ...]
    budgets: tuple[int, ...]
    split_seeds: tuple[int, ...]
    global_seeds: tuple[int, ...]
    grids: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    original_lr: float = 0.06
    augment: bool = False
    root: str | None = None

    def seed_pairs(self, split_seeds: tuple[int, ...] = ()) -> list[tuple[int, int]]:
        """(split seed, global seed) pairs; ``split_seeds`` (the protocol's seeds) replace the variant's."""
        return [(s, g) for s in (split_seeds or self.split_seeds) for g in self.global_seeds]


def _gc(C0: float, C1: float, gamma: float, lam: float) -> dict[str, Any]:
    return {"C0": C0, "C1": C1, "gamma": gamma, "lam": lam}


def _mc(C2: float, sigma: float, gamma: float, lam: float) -> dict[str, Any]:
    return {"C2": C2, "sigma": sigma, "sigma0": 0.0, "gamma": gamma, "lam": lam}


# scaled CPU variant: the GC grid, MC (C2, σ) × λ, γ = 1e−3; output perturbation C0 = 0.01 (preset default)
DIGITS_GRIDS = {
    "certified-gradclip": (_gc(1, 1, 1e-3, 500), _gc(1, 10, 1e-2, 50), _gc(0.1, 10, 1e-3, 50)),
    "certified-modelclip": tuple(_mc(c2, s, 1e-3, lam) for c2, s in ((0.1, 0.1), (0.5, 0.5)) for lam in (0.0, 10.0)),
    "output-perturbation": ({"C0": 0.01},),
}
QUICK_GRIDS = {  # smallest grid (tests): one GC and one MC config, the reference output-perturbation C0
    "certified-gradclip": (_gc(1, 1, 1e-3, 500),),
    "certified-modelclip": (_mc(0.5, 0.5, 1e-3, 10.0),),
    "output-perturbation": ({"C0": 0.01},),
}
MNIST_GRIDS = {  # the reference code's budget-curve configurations (docs: "Grids")
    "certified-gradclip": (_gc(0.01, 10, 1e-4, 750), _gc(0.01, 100, 1e-4, 10)),
    "certified-modelclip": (_mc(0.001, 0.01, 1e-4, 500), _mc(0.001, 0.01, 1e-4, 900), _mc(0.001, 0.01, 1e-2, 0.01),
                            _mc(0.01, 0.01, 1e-3, 900)),
    "output-perturbation": ({"C0": 0.01},),
}
CIFAR_GRIDS = {  # the reference code's budget-curve configurations (docs: "Grids")
    "certified-gradclip": tuple(_gc(*t) for t in (
        (.1, 10, 1e-3, 1), (.1, 10, 1e-3, 50), (.1, 10, 1e-2, 1), (.1, 100, 1e-4, 50), (.1, 100, 1e-3, 200),
        (.1, 100, 1e-3, 50), (1, 1, 1e-3, 50), (1, 10, 1e-2, 50), (1, 100, 1e-3, 500), (20, 10, 1e-2, 50),
        (20, 100, 1e-3, 500))),
    "certified-modelclip": tuple(_mc(c2, s, g, lam) for c2, s, g, lams in (
        (.2, .2, 1e-2, (100,)), (.5, .5, 1e-3, (0, 10)), (.5, .5, 1e-2, (0, 100)), (.625, .5, 1e-4, (0, 1, 10, 100)),
        (.625, .5, 1e-3, (100,)), (.625, .5, 1e-2, (10,)), (.975, .5, 1e-4, (1, 10))) for lam in lams),
    "output-perturbation": tuple({"C0": c} for c in (0.01, 0.1, 1.0)),
}

QUICK = Variant("certified-digits-random10", "digits", "digits_tiny", "evaluation", batch_size=32, original_epochs=60,
                epsilons=(1.0, 10.0), budgets=(1, 3, 10), split_seeds=(142,), global_seeds=(1234,), grids=DIGITS_GRIDS)
DIGITS = Variant("certified-digits-random10", "digits", "digits_tiny", "evaluation", batch_size=32,
                 original_epochs=60, epsilons=(1.0, 10.0), budgets=(1, 2, 3, 5, 10), split_seeds=SPLIT_SEEDS,
                 global_seeds=GLOBAL_SEEDS, grids=DIGITS_GRIDS)
MNIST = Variant("certified-mnist", "mnist", "mnist_tiny", "reference", batch_size=128, original_epochs=30,
                epsilons=(0.1, 1.0, 10.0, 100.0), budgets=(1, 2, 3, 4, 5, 6, 10), split_seeds=SPLIT_SEEDS,
                global_seeds=GLOBAL_SEEDS, grids=MNIST_GRIDS)
CIFAR10 = Variant("certified-cifar10", "cifar10", "small_cnn", "reference", batch_size=128, original_epochs=400,
                  epsilons=(0.1, 1.0, 10.0, 100.0), budgets=(1, 4, 10, 25, 50), split_seeds=SPLIT_SEEDS,
                  global_seeds=GLOBAL_SEEDS, grids=CIFAR_GRIDS, augment=True)
FULL = (MNIST, CIFAR10)


# ------------------------------------------------------------------------------------------------- data
def reference_task(ds: ImageDataset, split_seed: int, device: torch.device | str = "cpu") -> ForgetTask:
    """The reference split (docs/certified_budget.md, "Data splits"): torch ``random_split`` semantics, one
    generator seeded with the split seed; val = 10 % of the training pool, forget = 10 % of the rest, retain = the
    remainder."""
    g = torch.Generator().manual_seed(int(split_seed))
    n = len(ds.y_train)
    n_val = int(0.1 * n)
    n_tr = n - n_val
    perm1 = torch.randperm(n, generator=g).numpy()
    train_pos, val_pos = perm1[:n_tr], perm1[n_tr:]
    n_f = int(0.1 * n_tr)
    n_r = n_tr - n_f
    perm2 = torch.randperm(n_tr, generator=g).numpy()
    retain_pos, forget_pos = perm2[:n_r], perm2[n_r:]
    src = ds.train_index if ds.train_index is not None else np.arange(n)
    test_src = ds.test_index if ds.test_index is not None else np.arange(len(ds.y_test))
    header = f"unlearnlab-split reference v1|{ds.name}|split_seed={split_seed}"
    data_hash = _hash(header, src[train_pos], src[val_pos], test_src)
    split_hash = _hash(f"{header}|random:0.1", src[train_pos], src[val_pos], test_src, forget_pos)
    trainset = TensorData.of(ds.x_train[train_pos], ds.y_train[train_pos], np.arange(n_tr)).to(device)
    return ForgetTask(dataset=ds.name, forget_spec=ForgetSpec.parse("random:0.1"), seed=int(split_seed),
                      val_seed=int(split_seed), num_classes=ds.num_classes, input_shape=ds.input_shape,
                      mean=ds.mean, std=ds.std, augment=ds.augment, train=trainset,
                      forget=trainset.subset(forget_pos), retain=trainset.subset(retain_pos),
                      val=TensorData.of(ds.x_train[val_pos], ds.y_train[val_pos]).to(device),
                      test=TensorData.of(ds.x_test, ds.y_test).to(device), forget_positions=np.sort(forget_pos),
                      split_hash=split_hash, data_hash=data_hash)


def load_variant_dataset(v: Variant) -> ImageDataset:
    """The variant's dataset; a missing dataset raises an error naming how to get it."""
    try:
        return load_dataset(v.dataset, v.root)
    except Exception as err:  # DatasetNotFoundError and friends: add the experiment's own advice
        raise UnlearnlabError(
            f"certified-budget (full size, {v.name}) needs the {v.dataset} dataset on disk: {err}\n"
            f"Put the official {v.dataset} files under $UNLEARNLAB_DATA (default ~/.cache/unlearnlab/data), or "
            f"fetch them once with `python -c \"import unlearnlab as ul; ul.load_dataset('{v.dataset}', "
            f"download=True)\"` on a machine with internet; or run the scaled CPU variant with --quick "
            "(digits, no files needed)."
        ) from err


def make_variant_task(v: Variant, ds: ImageDataset, split_seed: int, device: torch.device) -> ForgetTask:
    if v.split == "reference":
        return reference_task(ds, split_seed, device)
    # evaluation split (docs/data.md, "Splits"): val and forget sampling follow the split seed
    return make_task(ds, "random:0.1", seed=split_seed, val_seed=split_seed, device=device)


def original_model(ctx: ExperimentContext, v: Variant, task: ForgetTask) -> tuple[nn.Module, dict[str, Any]]:
    """Original model: SGD momentum 0, coupled wd 5e−4, one-cycle peak 0.06, on D (cached per split).

    Recipe and why one per split seed: docs/certified_budget.md, "Seeds and original model".
    """
    recipe = certified_retrain_recipe(epochs=v.original_epochs, batch_size=v.batch_size, lr=v.original_lr,
                                      augment=v.augment)
    identity = {"kind": "original", "dataset": v.dataset, "model": v.model, "recipe": recipe.to_dict(),
                "data": task.data_hash, "seed": 1, "protocol": v.name}
    model = create(v.model, task, seed=1, device=ctx.device)

    def fit(m: nn.Module) -> dict[str, Any]:
        stats = train(m, task.train, recipe, seed=1,
                      progress=lambda done, total: ctx.progress(f"original ({v.name}, split {task.seed})",
                                                                done / total),
                      checkpoint=ctx.cache.partial(identity))
        return {"seconds": stats.seconds, **stats.counters.as_dict()}

    meta, _ = ctx.cache.get_or_train(identity, model, fit)
    return model.eval(), meta


# ------------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    method: str
    hparams: dict[str, Any]
    epsilon: float | None  # None for retrain (exact, no certificate)
    budget: int
    split_seed: int
    global_seed: int

    @property
    def label(self) -> str:
        eps = "exact" if self.epsilon is None else f"eps={self.epsilon:g}"
        return f"{self.method} {eps} E={self.budget} ({self.split_seed},{self.global_seed})"


def cells(v: Variant, split_seeds: tuple[int, ...] = ()) -> list[Cell]:
    out = []
    for split_seed, global_seed in v.seed_pairs(split_seeds):
        for budget in v.budgets:
            out.append(Cell("retrain", {}, None, budget, split_seed, global_seed))
            for eps in v.epsilons:
                for method in CERTIFIED:
                    for hp in v.grids[method]:
                        out.append(Cell(method, dict(hp), eps, budget, split_seed, global_seed))
    return out


def _task_key(v: Variant, split_seed: int, task: ForgetTask) -> str:
    return f"certified-budget v{VERSION}|{v.name}|{v.model}|split={split_seed}|{task.split_hash[:16]}"


def _config(v: Variant, c: Cell) -> dict[str, Any]:
    return {"method": c.method, "hparams": c.hparams, "epsilon": c.epsilon, "delta": DELTA, "epochs": c.budget,
            "batch_size": v.batch_size, "model": v.model, "budget_mode": "planned", "split_seed": c.split_seed,
            "global_seed": c.global_seed}


def _method_kwargs(v: Variant, c: Cell) -> dict[str, Any]:
    if c.method == "retrain":
        return certified_retrain_recipe(epochs=c.budget, batch_size=v.batch_size, augment=v.augment).to_dict()
    # a research curve must resume and reproduce: run-seed noise, so every row says "not certified" (docs)
    return {**c.hparams, "epsilon": c.epsilon, "delta": DELTA, "epochs": c.budget, "batch_size": v.batch_size,
            "noise_source": "seeded"}


def run_cell(ctx: ExperimentContext, v: Variant, c: Cell, task: ForgetTask, original: nn.Module,
             task_key: str, env: dict[str, Any]) -> bool:
    """Run one cell unless its row is complete (:mod:`unlearnlab.bench.cells`); returns True when it ran now."""
    config = _config(v, c)
    row = Row(task_key, f"{v.name} v{VERSION}", c.method, c.global_seed, config, task.split_hash, name=c.label)

    def work() -> Scores:
        res = unlearn(original, task, method=c.method, seed=c.global_seed,
                      progress=lambda f: ctx.progress(c.label, f), **_method_kwargs(v, c))
        check_finite(res.model, c.label)
        scores = evaluate(res.model, task)
        val = accuracy(predict_probs(res.model, task.val.x.to(ctx.device)).numpy(), task.val.y.cpu().numpy())
        metrics = {"test_acc": scores["ta"], "val_acc": val, "ua": scores["ua"], "ra": scores["ra"],
                   "mia_efficacy_svc_conf": scores["mia_efficacy_svc_conf"]}
        if not all(math.isfinite(x) for x in metrics.values()):
            raise DivergenceError(f"non-finite metrics {metrics}")
        stats: dict[str, Any] = {"seconds": res.seconds, **res.counters.as_dict(),
                                 **{k: val for k, val in res.stats.items() if k != "noisy_losses"}}
        cert = res.certificate
        if cert is not None:
            model_path = Path(ctx.out) / "models" / f"{v.name}" / f"{row.run_key}.pt"
            save_checkpoint(model_path, res.model, {"config": config, "split_hash": task.split_hash,
                                                     "model": v.model})
            cert.save(model_path)
            stats["certificate"] = cert.state_dict()
            metrics.update(cert_epsilon=cert.epsilon, cert_delta=cert.delta)
        else:
            metrics.update(cert_epsilon=None, cert_delta=None)
        definitions = {"test_acc": "top-1 accuracy on D_test (%)", "val_acc": "top-1 accuracy on D_val (%)",
                       "ua": "100 − accuracy on D_f (%)", "ra": "accuracy on D_r (%)",
                       "cert_epsilon": "certificate's certified epsilon (None: exact retrain)",
                       "cert_delta": "certificate's delta"}
        return Scores(metrics, definitions, stats)

    return bench_cells.run_cell(ctx.store, row, work, ctx.log, env) is not None


# ------------------------------------------------------------------------------------------------- table
def _ci(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(1.96 * a.std(ddof=0) / math.sqrt(len(a)))


def _fmt_hp(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in hp.items()) or "—"


def budget_table(rows: list[dict[str, Any]], v: Variant, n_pairs: int) -> str:
    """Selection (docs/certified_budget.md, "Selection and reporting") and the Markdown budget table of a variant."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    failed: dict[tuple, str] = {}
    for r in rows:
        cfg = r["config"]
        k = (cfg["method"], cfg["epsilon"], cfg["epochs"], config_hash(cfg["hparams"]))
        if r["status"] == "done":
            groups.setdefault(k, []).append(r)
        elif r["status"] in ("failed", "diverged"):
            failed[k] = (r.get("error") or r["status"]).strip().splitlines()[-1][:120]
    best: dict[tuple, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for (method, eps, budget, _), rs in groups.items():
        if len(rs) < n_pairs:
            continue
        mean_val = float(np.mean([r["metrics"]["val_acc"] for r in rs]))
        cur = best.get((method, eps, budget))
        if cur is None or mean_val > float(np.mean([r["metrics"]["val_acc"] for r in cur[1]])):
            best[(method, eps, budget)] = (rs[0]["config"]["hparams"], rs)
    lines = [f"### {v.name} ({v.model}, batch {v.batch_size}, δ = {DELTA:g}, {n_pairs} seed pair(s), "
             "budget_mode = planned)", "",
             "Test accuracy (%) of the selected configuration (highest mean val accuracy), mean ± 1.96·std/√n; "
             "val accuracy in brackets.", "",
             "| method | ε | " + " | ".join(f"E = {b}" for b in v.budgets) + " |",
             "|---|---|" + "---|" * len(v.budgets)]
    order = [("retrain", None)] + [(m, e) for e in v.epsilons for m in CERTIFIED]
    for method, eps in order:
        cellstr = []
        for b in v.budgets:
            if (method, eps, b) in best:
                rs = best[(method, eps, b)][1]
                t, tc = _ci([r["metrics"]["test_acc"] for r in rs])
                va, _ = _ci([r["metrics"]["val_acc"] for r in rs])
                cellstr.append(f"{t:.1f} ± {tc:.1f} ({va:.1f})")
            elif any(k[:3] == (method, eps, b) for k in failed):
                cellstr.append("n/a (failed)")
            else:
                cellstr.append("—")
        lines.append(f"| {method} | {'0 (exact)' if eps is None else f'{eps:g}'} | " + " | ".join(cellstr) + " |")
    lines += ["", "Selected configurations (certificate's ε, δ; noisy steps T and σ from the accountant):", "",
              "| method | ε | E | config | n | test | val | UA | RA | cert. ε | cert. δ | T | σ |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, eps in order:
        for b in v.budgets:
            if (method, eps, b) not in best:
                continue
            hp, rs = best[(method, eps, b)]
            m = {k: _ci([r["metrics"][k] for r in rs])[0] for k in ("test_acc", "val_acc", "ua", "ra")}
            s = rs[0]["stats"]
            ce = rs[0]["metrics"].get("cert_epsilon")
            cd = rs[0]["metrics"].get("cert_delta")
            lines.append(f"| {method} | {'0' if eps is None else f'{eps:g}'} | {b} | {_fmt_hp(hp)} | {len(rs)} | "
                         f"{m['test_acc']:.1f} | {m['val_acc']:.1f} | {m['ua']:.1f} | {m['ra']:.1f} | "
                         f"{'—' if ce is None else f'{ce:.4g}'} | {'—' if cd is None else f'{cd:.0e}'} | "
                         f"{s.get('noisy_steps', '—')} | "
                         f"{'—' if s.get('sigma') is None else format(s['sigma'], '.4g')} |")
    if failed:
        lines += ["", "Failed cells (not selectable): " + "; ".join(
            sorted({f"{k[0]} ε={k[1]} E={k[2]}: {msg}" for k, msg in failed.items()})[:10])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- entry
def run_variant(ctx: ExperimentContext, v: Variant) -> str:
    """Run (or resume) one variant; returns its Markdown table."""
    ds = load_variant_dataset(v)
    split_seeds = tuple(int(s) for s in ctx.seeds) if ctx.seeds else v.split_seeds
    todo = cells(v, split_seeds)
    env = environment() | {"device": str(ctx.device)}
    done = 0
    task_keys = []
    for split_seed in split_seeds:
        task = make_variant_task(v, ds, split_seed, ctx.device)
        original, _ = original_model(ctx, v, task)
        task_key = _task_key(v, split_seed, task)
        task_keys.append(task_key)
        for c in todo:
            if c.split_seed != split_seed:
                continue
            run_cell(ctx, v, c, task, original, task_key, env)
            done += 1
            ctx.progress(f"{v.name}", done / len(todo))
    rows = [r for k in task_keys for r in ctx.store.rows(task_key=k)]
    wanted = {(c.split_seed, c.global_seed) for c in todo}
    rows = [r for r in rows if (r["config"]["split_seed"], r["config"]["global_seed"]) in wanted
            and r["config"]["epochs"] in v.budgets and (r["config"]["epsilon"] is None
                                                        or r["config"]["epsilon"] in v.epsilons)]
    return budget_table(rows, v, len(wanted))


def run(ctx: ExperimentContext) -> str:
    """The ``certified-budget`` protocol: quick = digits (scaled CPU variant, reduced budgets); full = MNIST and
    CIFAR-10."""
    torch.manual_seed(0)
    variants = (QUICK,) if ctx.quick else FULL
    if not ctx.quick:
        for v in variants:  # fail before any work when a dataset is missing
            load_variant_dataset(v)
    size = "quick (scaled CPU variant: its grid, one seed pair, fewer budgets)" if ctx.quick else "full"
    head = ["# Certified unlearning: accuracy vs. epoch budget over D_r", "",
            "Research curve with reproducible noise (drawn from the run seed): these models are **not certified**; "
            "a release uses noise_source='secure' (docs/certificates.md).", "",
            f"{size}; ε = certified ε (standard conversion), retrain = same budget, exact (ε = 0).", ""]
    parts = [run_variant(ctx, v) for v in variants]
    markdown = "\n".join(head) + "\n" + "\n".join(parts)
    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "certified_budget.md", markdown)
    return markdown
