"""The tofu-mini-xs tier end to end, timed: data, tokenizer, stage 1, stage 2 (target and retain model), one
unlearning method, evaluation, then a second retain seed and the validity gates (docs/llm.md, "Tiers").

    python scripts/llm_xs.py [--method llm/npo-gd] [--forget forget10] [--out results/llm-xs]

Prints each step's wall-clock seconds, the method's report, the gates, and (with ``--out``) writes the
OpenUnlearning export of the unlearned model there. One torch thread, as on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch

import unlearnlab as ul
from unlearnlab import language as lm

SHOWN = ("forget_quality", "model_utility", "forget_Q_A_ROUGE", "forget_Q_A_Prob", "forget_truth_ratio",
         "privleak", "extraction_strength", "retain_Q_A_ROUGE", "ra_Q_A_ROUGE", "wf_Q_A_ROUGE")


@contextmanager
def timed(label: str, times: dict[str, float]):
    start = time.perf_counter()
    yield
    times[label] = time.perf_counter() - start
    print(f"{label:<34} {times[label]:7.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="llm/npo-gd")
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[str, float] = {}
    with timed("data + tokenizer", times):
        data = lm.generate("tofu-mini-xs", seed=0)
        tok = lm.build_tokenizer(data)
        task = lm.make_task(data, tok, args.forget)
    with timed("stage 1 (reference)", times):
        reference = lm.build_lm("xs", tok, seed=args.seed)
        lm.stage1(reference, data, tok, seed=args.seed)
    with timed("stage 2: target (full)", times):
        target = lm.stages.fine_tuned(reference, data, tok, "full", seed=args.seed)
    retain_split = lm.records.RETAIN_OF[args.forget]
    with timed(f"stage 2: retain ({retain_split})", times):
        retain = lm.stages.fine_tuned(reference, data, tok, retain_split, seed=args.seed)
    with timed("evaluate retain + target", times):
        retain_report = lm.evaluate_lm(retain, task)
        target_report = lm.evaluate_lm(target, task, retain_report)
    with timed(f"unlearn: {args.method}", times):
        result = ul.unlearn(target, task, method=args.method, seed=args.seed)
    with timed("evaluate the unlearned model", times):
        report = lm.evaluate_lm(result.model, task, retain_report)
    total = sum(times.values())
    print(f"{'xs end to end (the above)':<34} {total:7.1f} s")
    with timed(f"stage 2: retain seed {args.seed + 1} (gates)", times):
        retain_b = lm.stages.fine_tuned(reference, data, tok, retain_split, seed=args.seed + 1)
        retain_b_report = lm.evaluate_lm(retain_b, task)
    for name, rep in (("target", target_report), ("retain", retain_report), (args.method, report)):
        print(name, {k: (None if rep.metrics[k] is None else round(rep.metrics[k], 4)) for k in SHOWN})
    for sample in report.samples[:3]:
        print(f"  Q: {sample['question']}\n  gold: {sample['answer']}\n  now:  {sample['generation']}")
    print(lm.validity_gates(target_report, retain_report, retain_b_report).summary())
    if args.out:
        lm.write_openunlearning(report, args.out)


if __name__ == "__main__":
    main()
