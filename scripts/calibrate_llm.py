"""Calibrate the small-scale (tofu-mini-xs) defaults of the language-model presets on a validation forget set.

Validation, never the reported split: the forget request is four authors (5–8 of ``full``) that are in every
retain split, in no forget split and not in ``retain_perturbed``; the validation retain model is the stage-1
reference fine-tuned on ``full`` without them. For each preset, every lr of :data:`LRS` is run (seed 1, the
preset's other defaults) from the target; the script selects the lr with the highest forget quality (validation
authors vs the validation retain model) among those keeping model utility ≥ 0.8 × the target's (ties: the lower
forget-answer probability), else the highest model utility. It prints the grid and the selection; the selected
values are pinned in ``unlearnlab/language/presets.py`` by hand and recorded in docs/llm.md with this command's
output.

    python scripts/calibrate_llm.py [--methods llm/ga-gd,llm/npo-gd]
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import torch

import unlearnlab as ul
from unlearnlab import language as lm

#: the lr grid (AdamW; half-decades around the 1e-3 at which the xs models are trained)
LRS = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
#: the model utility a selected lr must keep, as a fraction of the target's
MU_FLOOR = 0.8
#: authors used as the validation forget set (indices into ``full``'s author order)
VALIDATION_AUTHORS = slice(5, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(name for name, *_ in lm.PRESETS)
                        + ",dualoptim/llm/me-gd,dualoptim/llm/idk-ap")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    data = lm.generate("tofu-mini-xs", seed=0)
    tok = lm.build_tokenizer(data)
    names = list(data.authors[VALIDATION_AUTHORS])
    task = lm.make_task(data, tok, names)
    val_data = dataclasses.replace(data, splits={**data.splits, "validation_retain": task.retain_records})
    reference = lm.build_lm("xs", tok, seed=1)
    lm.stage1(reference, data, tok, seed=1)
    target = lm.stages.fine_tuned(reference, data, tok, "full", seed=1)
    retain = lm.stages.fine_tuned(reference, val_data, tok, "validation_retain", seed=1)
    retain_report = lm.evaluate_lm(retain, task)
    target_report = lm.evaluate_lm(target, task, retain_report)
    floor = MU_FLOOR * target_report.metrics["model_utility"]
    print(f"validation authors {names}; target MU {target_report.metrics['model_utility']:.3f}, "
          f"FQ {target_report.metrics['forget_quality']:.2e}; MU floor {floor:.3f}")
    for method in args.methods.split(","):
        rows = []
        for lr in LRS:
            result = ul.unlearn(target, task, method=method, lr=lr, seed=1)
            m = lm.evaluate_lm(result.model, task, retain_report).metrics
            rows.append((lr, m["forget_quality"], m["model_utility"], m["forget_Q_A_ROUGE"], m["forget_Q_A_Prob"]))
            print(f"  {method:<22} lr {lr:.2e}: FQ {m['forget_quality']:.3g}  MU {m['model_utility']:.3f}  "
                  f"forget ROUGE {m['forget_Q_A_ROUGE']:.3f}  forget prob {m['forget_Q_A_Prob']:.3f}", flush=True)
        kept = [r for r in rows if r[2] >= floor]
        best = max(kept, key=lambda r: (r[1], -r[4])) if kept else max(rows, key=lambda r: r[2])
        print(f"{method}: selected lr {best[0]:.2e} ({'MU floor kept' if kept else 'no lr kept the MU floor'})")


if __name__ == "__main__":
    main()
