"""Tokenizers and TOFU's prompt format: text records → batches ``{"input_ids", "attention_mask", "labels"}``.

Prompt format (TOFU's, as its Phi runs use it): the prompt is ``"Question: {question}\\nAnswer:"`` and the
completion is ``" {answer}"`` followed by the tokenizer's end-of-sequence token, the **answer terminator**
(greedy generation stops there). Prompt and completion are tokenized separately (the prompt with the tokenizer's
own special tokens, e.g. a BOS, the completion without), so the boundary is exact: ``labels`` are the token ids
on the completion and −100 on the prompt and on padding. Batches for training are right-padded to one length per
task; prompts for generation are left-padded.

:func:`train_tokenizer` builds the word-level tokenizer of the generated benchmark with the ``tokenizers``
library (words and punctuation marks as tokens, ``<pad>``, ``<unk>``, ``<eos>``), wrapped as a
``transformers.PreTrainedTokenizerFast`` so that it is saved and loaded with the model (``save_pretrained``,
``AutoTokenizer.from_pretrained``) exactly like a Hugging Face checkpoint's own tokenizer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError

IGNORE_INDEX = -100
PROMPT = "Question: {question}\nAnswer:"
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "<eos>"}


def train_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``texts`` (every word and punctuation mark seen becomes a token; the prompt's
    words are always included)."""
    tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS.values()), min_frequency=1)
    tok.train_from_iterator([PROMPT.format(question=""), *texts], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 (16 hex digits) of the vocabulary and special tokens: part of every model cache key."""
    vocab = sorted(tokenizer.get_vocab().items())
    key = repr((vocab, tokenizer.eos_token, tokenizer.pad_token, type(tokenizer).__name__))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """The tokenizer must have an end-of-sequence token (the answer terminator)."""
    if tokenizer.eos_token_id is None:
        raise UnlearnlabError("The tokenizer has no end-of-sequence token, which TOFU's format uses as the answer "
                              "terminator: set tokenizer.eos_token (e.g. to '</s>').")


def encode_pair(tokenizer: PreTrainedTokenizerBase, question: str, answer: str) -> tuple[list[int], int]:
    """(token ids of prompt + completion + terminator, prompt length)."""
    prompt = tokenizer(PROMPT.format(question=question), add_special_tokens=True)["input_ids"]
    completion = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    return [*prompt, *completion, tokenizer.eos_token_id], len(prompt)


def pad_right(sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int], length: int
              ) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` (pad id 0, masked), ``attention_mask`` and ``labels`` (−100 on prompt and
    padding) of width ``length``."""
    n = len(sequences)
    ids = torch.zeros(n, length, dtype=torch.long)
    mask = torch.zeros(n, length, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    for i, (seq, p) in enumerate(zip(sequences, prompt_lengths)):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, p: len(seq)] = torch.tensor(seq[p:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                 max_length: int | None = None, length: int | None = None) -> TensorData:
    """``pairs`` of (question, answer) as a source in stored order, right-padded to ``length`` (default: the
    longest); a sequence longer than ``max_length`` (the model's context, if given) is an error."""
    check_tokenizer(tokenizer)
    if not pairs:
        raise UnlearnlabError("Nothing to encode: the split is empty.")
    encoded = [encode_pair(tokenizer, q, a) for q, a in pairs]
    longest = max(len(s) for s, _ in encoded)
    if max_length is not None and longest > max_length:
        worst = max(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        raise UnlearnlabError(
            f"A question-answer pair is {longest} tokens long but the model's context is {max_length}: "
            f"{pairs[worst][0]!r}. Use a model with a longer context (max_position_embeddings) or shorter records.")
    fields = pad_right([s for s, _ in encoded], [p for _, p in encoded], length or longest)
    return TensorData.of_fields(fields, torch.arange(len(pairs)))


def encode_prompts(tokenizer: PreTrainedTokenizerBase, questions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Left-padded prompts ``{"input_ids", "attention_mask"}`` for generation (pad id 0, masked)."""
    prompts = [tokenizer(PROMPT.format(question=q), add_special_tokens=True)["input_ids"] for q in questions]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Completion token ids of each text (as an answer: leading space, terminator appended)."""
    return [[*tokenizer(" " + t, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for t in texts]
