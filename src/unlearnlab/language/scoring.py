"""Run a causal LM over TOFU-format records: per-answer losses, token log-probabilities, argmax predictions and
greedy generations, the inputs of :mod:`unlearnlab.language.metrics`.

All in eval mode without gradients, in stored order, batch by batch. Following OpenUnlearning, the token-level
statistics (Min-K%, extraction strength, exact memorisation) leave out the last answer token — the terminator —
while the mean loss ℓ (hence the probabilities and truth ratios) includes it. Generation is greedy from
left-padded prompts and stops at the answer terminator (the tokenizer's end-of-sequence token) or after
``min(200, context − prompt length)`` new tokens; the text is cut at the terminator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.likelihood import forward, token_logprobs, trimmed
from unlearnlab.language.models import context_length
from unlearnlab.language.tokens import encode_pairs, encode_prompts
from unlearnlab.utils import eval_mode

MAX_NEW_TOKENS = 200


@dataclass
class AnswerStats:
    """Per-answer statistics: ``avg_loss`` [N]; per answer (terminator excluded) the tokens' log-probabilities,
    the argmax predictions and the tokens."""

    avg_loss: np.ndarray
    token_logprobs: list[np.ndarray]
    predictions: list[np.ndarray]
    labels: list[np.ndarray]


def answer_stats(model: nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                 batch_size: int = 64) -> AnswerStats:
    """:class:`AnswerStats` of ``(question, answer)`` pairs."""
    device = next(model.parameters()).device
    data = encode_pairs(tokenizer, pairs, context_length(model)).to(device)
    losses, logps, preds, labels = [], [], [], []
    with torch.no_grad(), eval_mode(model):
        for batch in data.batches(batch_size, shuffle=False):
            batch = trimmed(batch)
            logits = forward(model, batch).logits
            logp, mask = token_logprobs(logits, batch)
            losses.append((-logp.sum(1) / mask.sum(1)).cpu())
            argmax = logits[:, :-1].argmax(-1)
            targets = batch["input_ids"][:, 1:]
            for i in range(len(mask)):
                where = mask[i].nonzero().flatten()[:-1]  # the terminator is left out
                logps.append(logp[i, where].cpu().numpy())
                preds.append(argmax[i, where].cpu().numpy())
                labels.append(targets[i, where].cpu().numpy())
    return AnswerStats(torch.cat(losses).double().numpy(), logps, preds, labels)


def answer_losses(model: nn.Module, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str],
                  answers: Sequence[Sequence[str]], batch_size: int = 64) -> np.ndarray:
    """ℓ [N, K] for K answers to each of N questions (e.g. the perturbed answers)."""
    k = len(answers[0])
    if any(len(a) != k for a in answers):
        raise UnlearnlabError(f"The records have {sorted({len(a) for a in answers})} perturbed answers: every record "
                              "of an evaluation split needs the same number (TOFU: 5 per author question).")
    pairs = [(q, a) for q, options in zip(questions, answers) for a in options]
    return answer_stats(model, tokenizer, pairs, batch_size).avg_loss.reshape(len(questions), k)


def generate_answers(model: nn.Module, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str],
                     batch_size: int = 64) -> list[str]:
    """Greedy answers to ``questions`` (see module docstring)."""
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    context = context_length(model)
    out: list[str] = []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(questions), batch_size):
            enc = {k: v.to(device) for k, v in encode_prompts(tokenizer, questions[start: start + batch_size]).items()}
            width = enc["input_ids"].shape[1]
            new = min(MAX_NEW_TOKENS, context - width)
            if new < 1:
                raise UnlearnlabError(f"A prompt is {width} tokens long and the model's context is {context}: no "
                                      "room to answer. Use a model with a longer context or shorter questions.")
            generated = model.generate(**enc, max_new_tokens=new, do_sample=False, eos_token_id=eos,
                                       pad_token_id=pad)[:, width:].cpu()
            for row in generated.tolist():
                cut = row.index(eos) if eos in row else len(row)
                out.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    return out
