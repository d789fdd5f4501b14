"""How many resampled attack sets K make an MIA's attack spread stable, and what one draw costs.

Setup: digits, random 10 %, seed 1, ``mlp`` with the default recipe (60 epochs; the plain ``unlearnlab run``'s
models, from the model cache), one torch thread. For each model (the original, Retrain, and the ``salun`` and
``rl`` unlearned models of the default table) the SVC MIA (``mia_efficacy_svc_conf``: shadow members redrawn) and
the kit's loss MIA (``mia_loss_lr_cv``: subsample redrawn) are computed on ``--draws`` resampled attack sets
(draws 1…N, :func:`unlearnlab.evaluation.evaluate`'s own draws). The draws are cut into disjoint groups of K; each
group gives one estimate of the attack std, and the table prints, per K, the median estimate and its coefficient
of variation across groups (std of the estimates / their mean): how much an attack spread reported with K draws
would move if the K draws were different. For normal draws the CV is ≈ 1/√(2(K − 1)); a table pools S seeds,
which divides it by ≈ √S.

    python bench/attack_spread.py [--draws 200] [--ks 5,10,20,40] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from unlearnlab.api import unlearn
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.plan import plan
from unlearnlab.bench.trained import model_cache, original_model, retrained_model
from unlearnlab.data.forget import make_task
from unlearnlab.evaluation import mia_draw, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--ks", default="5,10,20,40")
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    common.limit_threads(1)
    ks = [int(k) for k in args.ks.split(",")]
    p = plan(RunConfig(cache_dir=args.cache, device="cpu"))
    cache = model_cache(p)
    task = make_task("digits", "random:0.1", 1, device="cpu")
    original, _ = original_model(cache, task, p)
    models = {"original": original, "retrain": retrained_model(cache, task, p, 1)[0],
              "salun": unlearn(original, task, method="salun", seed=1).model,
              "rl": unlearn(original, task, method="rl", seed=1).model}
    print(common.describe_machine(p.device))
    rows = []
    for mia in ("mia_efficacy_svc_conf", "mia_loss_lr_cv"):
        for name, model in models.items():
            outs = {s: outputs(model, getattr(task, s)) for s in ("forget", "retain", "test")}
            start = time.process_time()
            values = np.array([mia_draw(mia, outs, d)[0] for d in range(1, args.draws + 1)])
            per_draw = (time.process_time() - start) / args.draws
            cells = [mia, name, f"{per_draw * 1000:.1f}", f"{values.std(ddof=1):.2f}"]
            for k in ks:
                stds = values[: len(values) // k * k].reshape(-1, k).std(axis=1, ddof=1)
                cells.append(f"{np.median(stds):.2f} ({stds.std(ddof=1) / stds.mean():.2f})" if stds.mean() > 0
                             else "0.00 (–)")
            rows.append(cells)
    header = ["MIA", "model", "ms/draw (cpu)", f"std, {args.draws} draws", *[f"K={k}: median (CV)" for k in ks]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
