"""The language-model and diffusion cases of tests/test_distributed_families.py, run by each rank under
``torchrun`` and, as the reference, in a single process.

``python dist_family_worker.py OUT MODELS CASE…`` runs the cases on the models saved in MODELS by :func:`save_models`
(the xs LM in ``MODELS/lm``, the digits denoiser's weights in ``MODELS/denoiser.pt``); rank k writes
``OUT/rank{k}.pt`` (``{case: {"state", "stats"} or {"error"}}``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch

import unlearnlab as ul
from unlearnlab import language as lm
from unlearnlab.errors import HealthWarning
from unlearnlab.generation import digits_denoiser
from unlearnlab.generation.tiers import generation_task

#: forget10 of this data is one author's 4 records: with batch 3 the second forget batch has 1 row (rank 1 then
#: holds a stand-in of weight 0), and answers of different lengths give the ranks different token counts
LM_DATA: dict[str, Any] = {"authors": 10, "qa_per_author": 4, "train_templates": 1}
LM = {"epochs": 1, "batch_size": 3}
#: D_f and D_r of the digits class-0 task; batch 15 splits 8 + 7
N_FORGET, N_RETAIN = 40, 120
DDPM = {"iterations": 3, "epochs": None, "batch_size": 15}
#: case → (method, hyperparameters, parallel mode under torchrun); "fsdp/<case>" is <case> under FSDP
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "llm/ga-gd": ("llm/ga-gd", LM, "ddp"),
    "llm/npo": ("llm/npo", {**LM, "epochs": 2}, "ddp"),
    "llm/npo-gd+dualoptim": ("llm/npo-gd+dualoptim", LM, "ddp"),
    "llm/idk-ap": ("llm/idk-ap", LM, "ddp"),
    "llm/rmu": ("llm/rmu", LM, "ddp"),
    "dualoptim/llm/me-gd": ("dualoptim/llm/me-gd", LM, "ddp"),
    "llm/npo-gd+eupmu": ("llm/npo-gd+eupmu", {"epochs": 1, "batch_size": 16, "epsilon": -0.05}, "ddp"),
    "ddpm/salun": ("ddpm/salun", DDPM, "ddp"),
    "ddpm/rl+dualoptim": ("ddpm/rl+dualoptim", DDPM, "ddp"),
    "ddpm/sfron": ("ddpm/sfron", {**DDPM, "iterations": 1}, "ddp"),
}
for _name in ("llm/ga-gd", "llm/npo", "llm/npo-gd+dualoptim", "dualoptim/llm/me-gd", "llm/npo-gd+eupmu",
              "ddpm/rl+dualoptim"):
    CASES[f"fsdp/{_name}"] = (*CASES[_name][:2], "fsdp")
#: ``ul.train`` cases: case → (model kind, parallel mode)
TRAIN_CASES = {"llm/train": ("llm", "ddp"), "fsdp/llm/train": ("llm", "fsdp"), "ddpm/train": ("ddpm", "ddp"),
               "fsdp/ddpm/train": ("ddpm", "fsdp")}
#: the training recipes: the LM's retain set in batches of 5 (its last batch 1 row), the digits D_r in batches of 15
TRAIN_RECIPES = {"llm": ul.Recipe(epochs=1, batch_size=5, lr=1e-3, optimizer="adamw"),
                 "ddpm": ul.Recipe(epochs=1, batch_size=15, lr=1e-3, optimizer="adam")}
#: the LM's training data: this many retain records (in batches of 5: 3 batches, the last of one row)
LM_TRAIN_ROWS = 11


def lm_data() -> lm.TofuData:
    return lm.generate("tofu-mini-xs", 0, **LM_DATA)


def save_models(folder: Path) -> None:
    """A fresh xs LM with its tokenizer, and a small digits denoiser, saved in ``folder``."""
    tokenizer = lm.build_tokenizer(lm_data())
    lm.save_lm(lm.build_lm("xs", tokenizer, seed=1), tokenizer, folder / "lm")
    torch.save(denoiser().state_dict(), folder / "denoiser.pt")


def denoiser() -> torch.nn.Module:
    return digits_denoiser((1, 8, 8), 10, width=64, depth=2, seed=3)


def load(folder: Path, kind: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model, data arguments of ``ul.unlearn``) of the ``kind`` ("llm" or "ddpm") cases."""
    if kind == "llm":
        model, tokenizer = lm.load_lm(folder / "lm")
        return model, {"task": lm.make_task(lm_data(), tokenizer, "forget10")}
    model = denoiser()
    model.load_state_dict(torch.load(folder / "denoiser.pt", weights_only=True))
    task = generation_task("digits", 0, device="cpu")
    return model.eval(), {"forget": task.forget.subset(torch.arange(N_FORGET)),
                          "retain": task.retain.subset(torch.arange(N_RETAIN)), "family": "generation"}


def run_case(name: str, folder: Path) -> dict[str, Any]:
    """One case: the final parameters and the run's numeric statistics (a denoiser's noise stream state too), or
    the UnlearnlabError's message (the parallel mode is ignored in a single process)."""
    if name in TRAIN_CASES:
        return train_case(name, folder)
    method, hparams, parallel = CASES[name]
    model, data = load(folder, "ddpm" if method.startswith("ddpm/") else "llm")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HealthWarning)  # a few steps barely move the forget loss
            res = ul.unlearn(model, method=method, seed=5, parallel=parallel, **data, **hparams)
    except ul.UnlearnlabError as err:
        return {"error": str(err)}
    stats = {k: v for k, v in res.stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {"state": res.model.state_dict(), "stats": {**stats, "steps": res.stats["steps"],
                                                     **res.counters.as_dict()}}
    noise = getattr(res.model, "noise", None)
    return out if noise is None else {**out, "noise": noise.get_state()}


def train_case(name: str, folder: Path) -> dict[str, Any]:
    """``ul.train`` of the original LM on the first retain records, or of the denoiser on the digits D_r."""
    kind, parallel = TRAIN_CASES[name]
    model, data = load(folder, kind)
    if kind == "llm":
        source, family = data["task"].retain.subset(torch.arange(LM_TRAIN_ROWS)), "language_model"
    else:
        source, family = data["retain"], "generation"
    stats = ul.train(model, source, TRAIN_RECIPES[kind], seed=2, family=family, parallel=parallel)
    out = {"state": model.state_dict(), "stats": stats.counters.as_dict()}
    noise = getattr(model, "noise", None)
    return out if noise is None else {**out, "noise": noise.get_state()}


def main(out: str, folder: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    results = {name: run_case(name, Path(folder)) for name in names}
    rt = ul.distributed.runtime()
    torch.save(results, Path(out) / f"rank{0 if rt is None else rt.rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
