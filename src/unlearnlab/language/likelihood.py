"""Answer-token likelihoods of a causal LM on a batch ``{"input_ids", "attention_mask", "labels"}``.

Position t of the logits predicts token t+1, so the answer tokens are scored by ``logits[:, :-1]`` against
``input_ids[:, 1:]`` where ``labels[:, 1:] != −100`` (the mask ``M``). For sample i with answer tokens
y_1 … y_T (the terminator included):

    NLL_i = −Σ_t log p_θ(y_t | x, y_<t),   n_i = T,   mean NLL_i = NLL_i / n_i.

The language-model family's loss is built on these (docs/llm.md, "Objectives").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import Batch
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.tokens import IGNORE_INDEX


def trimmed(batch: Batch) -> Batch:
    """The batch without its trailing all-padding columns (exact for right-padded batches: a causal model's
    outputs before a position do not depend on what follows it)."""
    width = int(batch["attention_mask"].sum(1).max())
    if width == batch["input_ids"].shape[1]:
        return batch
    return {k: (v[:, :width] if v.ndim == 2 and v.shape[1] == batch["input_ids"].shape[1] else v)
            for k, v in batch.items()}


def forward(model: nn.Module, batch: Batch, **kwargs) -> object:
    """The model's output on the batch's tokens (``labels`` are never passed: losses are computed here); give it
    a :func:`trimmed` batch."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)


def answer_mask(batch: Batch) -> torch.Tensor:
    """``M`` [B, L−1]: True where position t predicts an answer token."""
    return batch["labels"][:, 1:] != IGNORE_INDEX


def token_logprobs(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_θ of each next token [B, L−1] (0 off the mask), mask M [B, L−1]) from the model's logits."""
    mask = answer_mask(batch)
    targets = batch["input_ids"][:, 1:]
    logp = -F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, reduction="none")
    return logp.masked_fill(~mask, 0.0), mask


def answer_nll(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(NLL_i summed over each sample's answer tokens [B], n_i [B]); a sample without answer tokens is an error."""
    batch = trimmed(batch)
    logp, mask = token_logprobs(forward(model, batch).logits, batch)
    counts = mask.sum(1)
    if bool((counts == 0).any()):
        raise UnlearnlabError("A sample has no answer tokens (every label is -100): build batches with "
                              "unlearnlab.language.encode_pairs, which labels the answer and its terminator.")
    return -logp.sum(1), counts
