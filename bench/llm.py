"""Overhead of the language-model family: our training and unlearning loops vs bare ``transformers`` loops, and
the step cost of ``+eupmu`` and ``+dualoptim`` relative to their host.

Candidates are timed side by side (interleaved round-robin, order rotated each repeat; ratios = medians of
per-repeat ratios; ``bench/common.py``) on the same model, the same data and batches of the same shape:

* **training** (tokens/s): ``unlearnlab.train`` with the family's loss (the answer-token NLL of
  ``unlearnlab.language``; AdamW, the stage recipe's lr and decay, batch 32, one epoch per call) against ``bare``: per
  batch of the same records, ``model(input_ids, attention_mask, labels).loss`` (Hugging Face's own loss),
  ``zero_grad``, backward, AdamW step — nothing else;
* **unlearning** (tokens/s): ``unlearnlab.unlearn(..., method="llm/ga-gd")`` (``UnlearnResult.seconds``, its timed
  region) against ``bare``: per step a forget batch and a retain batch, loss = −L(B_f) + L(B_r) with Hugging
  Face's loss, backward, AdamW step. Both run the preset's lr, decay, batch (16) and epochs;
* **steps** (seconds per optimizer step): ``llm/ga-gd+eupmu`` and ``llm/ga-gd+dualoptim`` against ``llm/ga-gd``,
  and the same for ``llm/npo-gd``: the mean interval between the optimizer steps of one run (a global step
  post-hook stamps the clock after each step of an optimizer over more than one element, as
  ``bench/method_steps.py`` does; EUPMU's scalar λ optimizer is ignored). A ``+dualoptim`` step processes one
  batch (forget or retain) where a joint host step processes both, and an EUPMU step one mixed batch, so the ratio
  is also printed per backward sample (step interval ÷ the library's backward-sample count per step).

Records are chosen so that every encoded question-answer pair has the same length (the most common one): any
batch then has the same shape whatever the shuffle draws, so "the same batches" holds for the loops' own
shuffling too. Tokens/s counts the non-padding tokens of the batches processed (prompt and answer). Workloads:
the ``xs`` model (0.47 M parameters) and the ``mini`` model (4.8 M) on tofu-mini-xs / tofu-mini records.
``--clock cpu`` times with ``time.process_time`` (CPU device only; for shared CPU machines).

    python bench/llm.py [--repeats 5] [--clock wall|cpu] [--only xs|mini] [--sections training,unlearning,steps]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import sys
import time
import types
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from method_steps import StepStamps

import unlearnlab as ul
import unlearnlab.api
from unlearnlab import language as lm
from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import HealthWarning
from unlearnlab.language.family import LANGUAGE_MODEL
from unlearnlab.language.tokens import encode_pair, encode_pairs
from unlearnlab.training import train

SECTIONS = ("training", "unlearning", "steps")
WORKLOADS = {"xs": ("tofu-mini-xs", 128, 64, 48), "mini": ("tofu-mini", 256, 64, 128)}
HOSTS = ("llm/ga-gd", "llm/npo-gd")


def equal_length_sources(data: lm.TofuData, tok, n_train: int, n_forget: int, n_retain: int
                         ) -> tuple[TensorData, TensorData, TensorData, int]:
    """Training, forget and retain sources of records whose encoded pairs all have the most common length L (no
    padding anywhere), from ``full``'s training phrasings; and L."""
    pairs = [p for r in data.split("full") for p in r.training_pairs()]
    lengths = [len(encode_pair(tok, q, a)[0]) for q, a in pairs]
    length = Counter(lengths).most_common(1)[0][0]
    chosen = [p for p, n in zip(pairs, lengths) if n == length]
    need = n_train + n_forget + n_retain
    if len(chosen) < need:
        raise SystemExit(f"only {len(chosen)} pairs of length {length}; lower the sizes")
    source = encode_pairs(tok, chosen[:need])
    sets = (source.subset(range(0, n_train)), source.subset(range(n_train, n_train + n_forget)),
            source.subset(range(n_train + n_forget, need)))
    return (*sets, length)


def tokens(source: TensorData) -> int:
    return int(source.fields["attention_mask"].sum())


def bare_epoch(model, source: TensorData, batch_size: int, lr: float, weight_decay: float, seed: int) -> None:
    """One epoch of the bare Hugging Face loop of the module docstring."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for batch in source.batches(batch_size, torch.Generator().manual_seed(seed)):
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bare_ga_gd(model, forget: TensorData, retain: TensorData, batch_size: int, lr: float, weight_decay: float,
               epochs: int, seed: int) -> None:
    """The bare GA+GD loop of the module docstring: each forget batch with the next retain batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    retain_batches = iter(())
    for _ in range(epochs):
        for fb in forget.batches(batch_size, gen):
            rb = next(retain_batches, None)
            if rb is None:
                retain_batches = retain.batches(batch_size, gen)
                rb = next(retain_batches)
            loss = model(**rb).loss - model(**fb).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def setup(size: str, device: torch.device):
    """The ``size`` workload: model, a task whose forget and retain sets are equal-length records, a training
    source of such records."""
    data_size, n_train, n_forget, n_retain = WORKLOADS[size]
    data = lm.generate(data_size, seed=0)
    tok = lm.build_tokenizer(data)
    model = lm.build_lm(size, tok, seed=1).to(device)
    train_src, forget, retain, length = equal_length_sources(data, tok, n_train, n_forget, n_retain)
    task = lm.make_task(data, tok, "forget10")
    task.forget, task.retain = forget.to(device), retain.to(device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n## {size}: {params:.2f} M parameters, vocabulary {len(tok)}, sequences of {length} tokens")
    return model, task, train_src.to(device)


def training_section(size, model, source, args, device) -> None:
    timer = common.clock(args.clock)
    recipe = lm.STAGE2.replace(epochs=1)

    def timed(fn) -> float:
        m = copy.deepcopy(model)
        common.sync(device)
        start = timer()
        fn(m)
        common.sync(device)
        return timer() - start

    fns = {"bare": lambda: timed(lambda m: bare_epoch(m, source, recipe.batch_size, recipe.lr,
                                                      recipe.weight_decay, 1)),
           "unlearnlab": lambda: timed(lambda m: train(m, source, recipe, seed=1, loss_fn=LANGUAGE_MODEL.loss))}
    t = common.interleaved_timings(fns, args.repeats, args.warmup, device, timer=timer)
    thr = {k: [b / v for v, b in zip(vs, t["bare"])] for k, vs in t.items()}
    common.print_ratios(t, "bare", work=tokens(source), work_unit="tokens/s",
                        title=f"{size} training: {len(source)} sequences, batch {recipe.batch_size}, one epoch "
                              "(AdamW):",
                        extra={"throughput / bare": {k: f"{common.median(v):.3f}" for k, v in thr.items()}})


def unlearning_section(size, model, task, args, device) -> None:
    timer = common.clock(args.clock)
    params = ul.get_method("llm/ga-gd").resolve()
    bs, epochs = params["batch_size"], args.epochs
    n_steps = epochs * -(-len(task.forget) // bs)
    work = n_steps * (tokens(task.forget) // len(task.forget) * bs * 2)

    def bare() -> float:
        m = copy.deepcopy(model)
        common.sync(device)
        start = timer()
        bare_ga_gd(m, task.forget, task.retain, bs, params["lr"], params["weight_decay"], epochs, 1)
        common.sync(device)
        return timer() - start

    def ours() -> float:  # unlearn()'s timed region (its clock follows --clock: see main)
        return ul.unlearn(model, task, method="llm/ga-gd", seed=1, epochs=epochs).seconds

    t = common.interleaved_timings({"bare": bare, "unlearnlab": ours}, args.repeats, args.warmup, device,
                                   timer=timer)
    thr = {k: [b / v for v, b in zip(vs, t["bare"])] for k, vs in t.items()}
    common.print_ratios(t, "bare", work=work, work_unit="tokens/s",
                        title=f"{size} unlearning (llm/ga-gd): {len(task.forget)} forget / {len(task.retain)} retain "
                              f"sequences, batch {bs}, {epochs} epochs over D_f = {n_steps} steps:",
                        extra={"throughput / bare": {k: f"{common.median(v):.3f}" for k, v in thr.items()}})


def step_run(name: str, model, task, epochs: int, timer, per_sample: dict[str, list[float]],
             samples_per_step: dict[str, float]) -> float:
    """One unlearning run of ``name``: its mean in-run step interval (returned) and that interval per backward
    sample (appended to ``per_sample[name]``; the samples per step from the library's counters)."""
    stamps = StepStamps(timer)
    handle = register_optimizer_step_post_hook(stamps)
    try:
        res = ul.unlearn(model, task, method=name, seed=1, epochs=epochs)
    finally:
        handle.remove()
    c = res.counters
    samples_per_step[name] = c.backward_samples / c.optimizer_steps
    per_sample[name].append(stamps.mean_interval() / samples_per_step[name])
    return stamps.mean_interval()


def steps_section(size, model, task, args, device) -> None:
    timer = common.clock(args.clock)
    for host in HOSTS:
        names = (host, f"{host}+eupmu", f"{host}+dualoptim")
        per_sample: dict[str, list[float]] = {n: [] for n in names}
        samples_per_step: dict[str, float] = {}
        fns = {n: functools.partial(step_run, n, model, task, args.epochs, timer, per_sample, samples_per_step)
               for n in names}
        t = common.interleaved_timings(fns, args.repeats, args.warmup, device, timer=timer)
        common.print_ratios(t, host, title=f"{size} seconds per optimizer step vs {host} (in-run mean interval):",
                            extra={"backward samples/step": {n: f"{v:.1f}" for n, v in samples_per_step.items()}})
        # the warm-up rounds' values are not in `t`: keep the timed repeats only
        timed = {n: v[-args.repeats:] for n, v in per_sample.items()}
        common.print_ratios(timed, host, unit="s/sample",
                            title=f"{size} seconds per backward sample vs {host} (step interval / samples per step):")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5, help="epochs over D_f per unlearning call")
    ap.add_argument("--only", choices=tuple(WORKLOADS), default=None)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=sorted(common.CLOCKS), default="wall",
                    help="'cpu': time.process_time (shared CPU machines; CPU device only)")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if set(sections) - set(SECTIONS):
        ap.error(f"--sections: choose from {', '.join(SECTIONS)}")
    common.limit_threads(args.threads)
    # the workloads time an untrained model: the health checks' warnings (e.g. a collapsed retain probability)
    # say nothing about speed
    warnings.simplefilter("ignore", HealthWarning)
    device = common.pick_device(args.device)
    if args.clock == "cpu":
        if device.type == "cuda":
            ap.error("--clock cpu measures process CPU time, which does not include GPU work: use wall on CUDA")
        # unlearn() reads its timed region with time.perf_counter(); point that module's clock at the process CPU
        # clock, in this benchmark process only (as bench/method_steps.py does)
        unlearnlab.api.time = types.SimpleNamespace(perf_counter=time.process_time)
    print(f"# bench/llm.py  {datetime.date.today()}  {common.describe_machine(device)}")
    print(f"# repeats={args.repeats}, warm-up rounds={args.warmup}; clock={args.clock}; sections={sections}")
    for size in ([args.only] if args.only else list(WORKLOADS)):
        model, task, source = setup(size, device)
        if "training" in sections:
            training_section(size, model, source, args, device)
        if "unlearning" in sections:
            unlearning_section(size, model, task, args, device)
        if "steps" in sections:
            steps_section(size, model, task, args, device)


if __name__ == "__main__":
    main()
