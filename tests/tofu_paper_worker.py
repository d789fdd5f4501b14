"""The paper-tier script of docs/scaling.md ("The LLM paper tier … under FSDP"), with its paths as arguments and
the CPU in place of CUDA: run by each rank under ``torchrun`` and, as the reference, in a single process.

``python tofu_paper_worker.py OUT TOFU TARGET RETAIN PARALLEL`` unlearns ``forget10`` of the TOFU folder from the
target checkpoint with ``dualoptim/llm/idk-ap`` (one epoch); the main process writes OpenUnlearning's files and the
model under ``OUT/tofu-forget10/``; rank k (or the single process, as rank 0) saves ``OUT/rank{k}.pt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import unlearnlab as ul
from unlearnlab import language as lm


def main(out: Path, tofu: str, target: str, retain_path: str, parallel: str) -> None:
    torch.set_num_threads(1)
    data = lm.load_tofu(tofu)
    model, tok = lm.load_lm(target)
    model = model.to(torch.float32)
    task = lm.make_task(data, tok, "forget10")
    result = ul.unlearn(model, task, method="dualoptim/llm/idk-ap", profile="reference", seed=1, parallel=parallel,
                        epochs=1)
    rank = int(os.environ.get("RANK", "0"))
    if ul.distributed.is_main():
        retain, _ = lm.load_lm(retain_path)
        reference = lm.evaluate_lm(retain.to(torch.float32), task)
        report = lm.evaluate_lm(result.model, task, reference=reference)
        lm.write_openunlearning(report, out / "tofu-forget10")
        lm.save_lm(result.model, tok, out / "tofu-forget10" / "model")
    torch.save({"state": {k: v.detach().cpu() for k, v in result.model.state_dict().items()}},
               out / f"rank{rank}.pt")
    ul.distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:6])
