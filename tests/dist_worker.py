"""The cases of tests/test_distributed.py, run by each rank under ``torchrun`` and, as the reference, in a single
process. ``python dist_worker.py OUT WEIGHTS CASE…`` runs the cases on the digits MLP with the weights saved at
WEIGHTS; rank k writes ``OUT/rank{k}.pt`` (``{case: {"state", "stats"} or {"error"} or {"shards"}}``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import unlearnlab as ul
from unlearnlab.data.tensors import TensorData
from unlearnlab.families import get_family

#: D_f and D_r sizes: with batch 16 the last retain batch has 5 rows (3 + 2 on two ranks) and the last forget batch
#: 1 row (rank 1 then holds a stand-in row of weight 0)
N_FORGET, N_RETAIN = 33, 101
COMMON = {"epochs": 2, "batch_size": 16}
#: case → (method, hyperparameters, parallel mode under torchrun)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "ft": ("ft", COMMON, "ddp"),
    "salun": ("salun", COMMON, "ddp"),
    "salun+dualoptim": ("salun+dualoptim", COMMON, "ddp"),
    "eupmu": ("eupmu", {**COMMON, "epsilon": -0.2, "lambda_lr": 0.1}, "ddp"),
    "ungrad": ("ungrad", {**COMMON, "epochs": 1}, "ddp"),
    "certified-gradclip": ("certified-gradclip", {**COMMON, "noise_source": "seeded", "T": 6}, "ddp"),
    "certified-gradclip/secure": ("certified-gradclip", {**COMMON, "noise_source": "secure", "T": 6}, "ddp"),
    "minnorm-og": ("minnorm-og", {**COMMON, "grad_sample_size": 8}, "ddp"),
    "sfron": ("sfron", {**COMMON, "epochs": 1}, "ddp"),
    "fsdp/ft": ("ft", COMMON, "fsdp"),
    "fsdp/rl+dualoptim": ("rl+dualoptim", COMMON, "fsdp"),
    "fsdp/eupmu": ("eupmu", {**COMMON, "epsilon": -0.2, "lambda_lr": 0.1}, "fsdp"),
    "fsdp/scrub": ("scrub", {**COMMON, "epochs": 1}, "fsdp"),
    "fsdp/salun": ("salun", COMMON, "fsdp"),
    "bn/ft": ("ft", {**COMMON, "epochs": 1}, "ddp"),
    "fsdp/bn/ft": ("ft", {**COMMON, "epochs": 1}, "fsdp"),
}
#: training cases: case → parallel mode; "train/resume" resumes from the state file ``resume.state`` in its folder
TRAIN_CASES = {"train": "ddp", "fsdp/train": "fsdp", "train/resume": "ddp"}
RECIPE = ul.Recipe(epochs=1, batch_size=16, lr=0.05)


def task() -> ul.ForgetTask:
    return ul.make_task("digits", "random:0.1", seed=1, device="cpu")


def task_data() -> tuple[TensorData, TensorData]:
    """The D_f and D_r subsets of the digits task (seed 1)."""
    t = task()
    return t.forget.subset(torch.arange(N_FORGET)), t.retain.subset(torch.arange(N_RETAIN))


def original(path: Path) -> torch.nn.Module:
    """The digits MLP with the weights saved at ``path``."""
    model = ul.models.create("mlp", task())
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def run_case(name: str, model: torch.nn.Module, forget: TensorData, retain: TensorData, folder: Path,
             parallel: str | None = None) -> dict[str, Any]:
    """One case: the final parameters and the run's numeric statistics, or the UnlearnlabError's message.
    ``parallel`` (default: the case's mode) is ignored in a single process; ``folder`` holds training states."""
    if name == "fsdp/shards":
        return {"shards": shard_fractions(model, forget)}
    if name in TRAIN_CASES:
        fresh = ul.models.create("mlp", task(), seed=3)
        resume = name == "train/resume"
        stats = ul.train(fresh, retain, RECIPE.replace(epochs=2) if resume else RECIPE, seed=2,
                         family="classification", parallel=parallel or TRAIN_CASES[name],
                         checkpoint=folder / "resume.state" if resume else None)
        return {"state": fresh.state_dict(), "stats": stats.counters.as_dict()}
    method, hparams, mode = CASES[name]
    if "bn/" in name:  # BatchNorm: each rank normalises with its share's statistics (docs/scaling.md)
        model = ul.models.create("bn_cnn", task(), seed=4)
    try:
        res = ul.unlearn(model, method=method, forget=forget, retain=retain, seed=5, family="classification",
                         parallel=parallel or mode, **hparams)
    except ul.UnlearnlabError as err:
        return {"error": str(err)}
    stats = {k: v for k, v in res.stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"state": res.model.state_dict(), "stats": {**stats, **res.counters.as_dict()}}


def shard_fractions(model: torch.nn.Module, forget: TensorData) -> dict[str, float]:
    """Under FSDP, the share of every parameter entry, and of every entry of DualOptim's two optimizer states
    (``rl+dualoptim``: AdamW for forget steps, SGD with momentum for retain steps), this rank holds after one step
    of each."""
    rt = ul.distributed.runtime("fsdp")
    replica = rt.replicate(model)
    family = get_family("classification")
    info = ul.get_method("rl+dualoptim")
    optimizers = info.build(info.resolve({}, "default", family), family).optimization.build(replica.module)
    for optimizer in optimizers.values():
        optimizer.zero_grad()
        F.cross_entropy(replica.forward(forget.x[:8]), forget.y[:8]).backward()
        optimizer.step()
    params = list(replica.module.parameters())
    out = {"params": sum(p.to_local().numel() for p in params) / sum(p.numel() for p in params)}
    for phase, optimizer in optimizers.items():
        for key in sorted({k for state in optimizer.state.values() for k in state if k != "step"}):
            tensors = [state[key] for state in optimizer.state.values()]
            out[f"{phase}/{type(optimizer).__name__}/{key}"] = (sum(t.to_local().numel() for t in tensors)
                                                                / sum(t.numel() for t in tensors))
    return out


def main(out: str, weights: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    forget, retain = task_data()
    model = original(Path(weights))
    results = {name: run_case(name, model, forget, retain, Path(out)) for name in names}
    rt = ul.distributed.runtime()
    torch.save(results, Path(out) / f"rank{0 if rt is None else rt.rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
