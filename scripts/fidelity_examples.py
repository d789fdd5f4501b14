"""Measured before/after examples for the reference-compatibility options (docs/methods.md quotes the output).

Each example runs on the embedded digits data, seeds 1–3, and prints UA / RA / TA (%) as mean ± std:

1. EUPMU's forward on a BatchNorm CNN with class-wise forgetting: two calls (per-set BatchNorm statistics, the
   default) vs one call over the mixed batch (``joint_forward``, the EUPMU code), and ``eupmu-reference``.
2. UNGrad at the EUPMU paper's lr (1e-3, 5 epochs): as the EUPMU code runs it (losses scaled by batch share,
   direction clipped to norm 1: the ``ungrad`` preset) vs unscaled and unclipped (the former form).
3. DualOptim on SalUn: the paper's pair (``dualoptim/salun``), its like-for-like shared ablation
   (``dualoptim/salun-shared``, one state) and the one-AdamW ablation (``dualoptim/salun-shared-adamw``).
4. Switching DualOptim's pair to Lion with AdamW's forget lr (what the library now refuses) vs a third of it.

    python scripts/fidelity_examples.py [--examples 1,2,3,4] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

import unlearnlab as ul
from unlearnlab.evaluation import evaluate
from unlearnlab.methods import get_method
from unlearnlab.training import Recipe, train


def original(model_name: str, task: ul.ForgetTask) -> torch.nn.Module:
    model = ul.models.create(model_name, task, seed=1)
    train(model, task.train, Recipe.default(task), seed=1)
    return model.eval()


def row(label: str, scores: list[dict[str, float]]) -> str:
    cells = []
    for key in ("ua", "ra", "ta"):
        values = np.array([s[key] for s in scores])
        cells.append(f"{values.mean():6.2f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:5.2f}")
    return f"| {label:<44} | " + " | ".join(cells) + " |"


def compare(title: str, forget: str, model_name: str, seeds: list[int],
            variants: list[tuple[str, str, dict]], run: Callable | None = None) -> None:
    print(f"\n{title}\n\n| variant | UA | RA | TA |\n|---|---|---|---|")
    tasks = {s: ul.make_task("digits", forget, seed=s, device="cpu") for s in seeds}
    base = original(model_name, tasks[seeds[0]]) if forget.startswith("random") else None
    for label, method, hparams in variants:
        scores = []
        for s, task in tasks.items():
            model = base if base is not None else original(model_name, task)
            try:
                res = ul.unlearn(model, task, method=method, seed=s, **hparams)
                scores.append(evaluate(res.model, task).metrics)
            except ul.UnlearnlabError as err:
                print(f"| {label:<44} | refused: {err} |")
                break
        else:
            print(row(label, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default="1,2,3,4")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = set(args.examples.split(","))
    if "1" in chosen:
        compare("1. EUPMU forward on bn_cnn, class-wise forgetting (class 3), EUPMU defaults", "class:3", "bn_cnn",
                seeds, [("eupmu (two forward calls)", "eupmu", {}),
                        ("eupmu, joint_forward=True", "eupmu", {"joint_forward": True}),
                        ("eupmu-reference (every compatibility option)", "eupmu-reference", {})])
    if "2" in chosen:
        ref = {"lr": 1e-3, "epochs": 5}
        compare("2. UNGrad at the paper's lr 1e-3, 5 epochs (mlp, random 10 %)", "random:0.1", "mlp", seeds,
                [("ungrad (batch-share losses, clip 1.0)", "ungrad", ref),
                 ("ungrad, loss_scale='none', clip=None (former)", "ungrad",
                  {**ref, "loss_scale": "none", "clip": None})])
    if "3" in chosen:
        compare("3. DualOptim on SalUn (mlp, random 10 %), digits defaults", "random:0.1", "mlp", seeds,
                [(m, m, {}) for m in ("dualoptim/salun", "dualoptim/salun-shared", "dualoptim/salun-shared-adamw")])
    if "4" in chosen:
        eta = get_method("dualoptim/salun").defaults["forget_lr"]
        compare("4. DualOptim SalUn with Lion (mlp, random 10 %)", "random:0.1", "mlp", seeds,
                [(f"lion+sgd, forget_lr {eta:g} (AdamW's)", "dualoptim/salun",
                  {"optimizers": "lion+sgd", "forget_lr": eta}),
                 (f"lion+sgd, forget_lr {eta / 3:g} (÷ 3)", "dualoptim/salun",
                  {"optimizers": "lion+sgd", "forget_lr": eta / 3}),
                 ("lion+sgd without a forget_lr", "dualoptim/salun", {"optimizers": "lion+sgd"})])


if __name__ == "__main__":
    main()
