"""A TOFU-format unlearning task: forget, retain and holdout records, their token batches and the refusal pool.

:func:`make_task` takes a :class:`~unlearnlab.language.records.TofuData` (generated or read from TOFU's files),
the tokenizer of the model, and the forget request: a forget split (``forget01``/``forget05``/``forget10``, with
TOFU's matching ``retainXX`` and ``holdoutXX``) or a list of author names (generated data only: the retain set is
``full`` without them, the holdout the first as many records of ``holdout10``). The task is what
``unlearnlab.unlearn`` and :func:`unlearnlab.language.evaluate_lm` take (``task.family`` = "language_model").
Forget and retain batches are padded to one width, so identical records in both are detected by ``unlearn``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from transformers import PreTrainedTokenizerBase

from unlearnlab.data.tensors import TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.records import HOLDOUT_OF, RETAIN_OF, QARecord, TofuData, check_forget_split
from unlearnlab.language.tokens import encode_pair, encode_pairs, encode_texts, tokenizer_hash


@dataclass
class LanguageTask:
    """Everything a TOFU-format run needs (see module docstring)."""

    data: TofuData
    tokenizer: PreTrainedTokenizerBase
    forget_name: str
    forget_records: tuple[QARecord, ...]
    retain_records: tuple[QARecord, ...]
    holdout_records: tuple[QARecord, ...]
    forget: TensorData
    retain: TensorData
    refusal_ids: list[list[int]]
    family: ClassVar[str] = "language_model"
    augment: ClassVar[bool] = False

    @property
    def key(self) -> dict[str, Any]:
        """What identifies the task (for caches and result rows): data hash, tokenizer hash, forget request."""
        return {"data": self.data.hash, "tokenizer": tokenizer_hash(self.tokenizer), "forget": self.forget_name}


def _forget_request(data: TofuData, forget: str | Sequence[str]
                    ) -> tuple[str, tuple[QARecord, ...], tuple[QARecord, ...], tuple[QARecord, ...]]:
    """(name, forget, retain, holdout records) of a split name or an author list."""
    if isinstance(forget, str):
        check_forget_split(forget)
        return forget, data.split(forget), data.split(RETAIN_OF[forget]), data.split(HOLDOUT_OF[forget])
    names = list(forget)
    if not names:
        raise UnlearnlabError("The author list is empty: name at least one author to forget.")
    records = data.author_records(names, "full")
    chosen = set(names)
    evaluated = {r.author for r in data.splits.get("retain_perturbed", ())} & chosen
    if evaluated:
        raise UnlearnlabError(f"{sorted(evaluated)} are in retain_perturbed, the retain evaluation set: forget "
                              "other authors (retain_perturbed holds the first 10 % of the authors).")
    retain = tuple(r for r in data.split("full") if r.author not in chosen)
    holdout = data.split("holdout10")[: len(records)]
    digest = hashlib.sha256("\n".join(sorted(chosen)).encode()).hexdigest()[:12]
    return f"authors-{digest}", records, retain, holdout


def make_task(data: TofuData, tokenizer: PreTrainedTokenizerBase, forget: str | Sequence[str] = "forget10",
              max_length: int | None = None) -> LanguageTask:
    """The task of forgetting ``forget`` (a forget split or author names) from a model using ``tokenizer``;
    ``max_length`` (the model's context) bounds every sequence."""
    name, forget_records, retain_records, holdout = _forget_request(data, forget)
    if not retain_records:
        raise UnlearnlabError(f"Forgetting {name} leaves no retain records: forget fewer authors.")
    pairs_f = [(r.question, r.answer) for r in forget_records]
    pairs_r = [(r.question, r.answer) for r in retain_records]
    width = max(len(encode_pair(tokenizer, q, a)[0]) for q, a in pairs_f + pairs_r)
    return LanguageTask(
        data=data, tokenizer=tokenizer, forget_name=name, forget_records=forget_records,
        retain_records=retain_records, holdout_records=holdout,
        forget=encode_pairs(tokenizer, pairs_f, max_length, width),
        retain=encode_pairs(tokenizer, pairs_r, max_length, width),
        refusal_ids=encode_texts(tokenizer, data.refusals))
