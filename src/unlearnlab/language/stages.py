"""Training the models of a TOFU-format benchmark (docs/llm.md, "Models and training").

* :func:`build_tokenizer` — the word-level tokenizer over the whole generated corpus (every split, every
  phrasing, the refusal pool): a vocabulary only, it carries no fact;
* stage 1 (:func:`stage1`): a fresh model learns the utility sets (famous entities, world facts) → the
  **reference** model (also the membership attacks' "before the authors" model);
* stage 2 (:func:`stage2`): the reference model fine-tuned on ``full`` → the **target**, or on ``retainXX`` → the
  **retain** model (the exact-unlearning reference of forget quality). Stage 2 replays the utility sets by
  default (``replay=True``): a pretrained LLM keeps its general knowledge through TOFU's fine-tuning, a
  0.5 M-parameter model does not (measured on tofu-mini-xs: real-authors ROUGE-L 0.97 with replay, 0.13 without),
  and model utility would then measure that forgetting instead of the unlearning method's.

Both stages use :func:`unlearnlab.training.train` with the family's loss and AdamW recipes (:data:`STAGE1`,
:data:`STAGE2`, calibrated on tofu-mini-xs so the gates pass; docs/llm.md), on every training phrasing of each
record (:meth:`QARecord.training_pairs`). :func:`model_key` is what a cache must key each model by.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearnlab.data.tensors import TensorData
from unlearnlab.language.family import LANGUAGE_MODEL
from unlearnlab.language.models import LMConfig, context_length
from unlearnlab.language.records import UTILITY_SPLITS, TofuData, records_text
from unlearnlab.language.tokens import encode_pairs, tokenizer_hash, train_tokenizer
from unlearnlab.training import Recipe, TrainStats, train

STAGE1 = Recipe(optimizer="adamw", lr=3e-3, momentum=0.0, weight_decay=0.01, epochs=20, batch_size=32,
                schedule="cosine")
STAGE2 = Recipe(optimizer="adamw", lr=3e-3, momentum=0.0, weight_decay=0.01, epochs=15, batch_size=32,
                schedule="cosine")


def build_tokenizer(data: TofuData) -> PreTrainedTokenizerBase:
    """The word-level tokenizer of ``data`` (every text of every split and the refusals)."""
    return train_tokenizer([t for records in data.splits.values() for t in records_text(records)]
                           + list(data.refusals))


def training_source(data: TofuData, tokenizer: PreTrainedTokenizerBase, splits: Sequence[str],
                    context: int | None = None) -> TensorData:
    """Every training phrasing of every record of ``splits``, encoded."""
    pairs = [p for name in splits for r in data.split(name) for p in r.training_pairs()]
    return encode_pairs(tokenizer, pairs, context)


def _train(model: PreTrainedModel, data: TofuData, tokenizer: PreTrainedTokenizerBase, splits: Sequence[str],
           recipe: Recipe, seed: int) -> TrainStats:
    source = training_source(data, tokenizer, splits, context_length(model))
    stats = train(model, source, recipe, seed=seed, loss_fn=LANGUAGE_MODEL.loss)
    model.eval()
    return stats


def stage1(model: PreTrainedModel, data: TofuData, tokenizer: PreTrainedTokenizerBase,
           recipe: Recipe = STAGE1, seed: int = 1) -> TrainStats:
    """Train ``model`` in place on the utility sets (the reference model)."""
    return _train(model, data, tokenizer, UTILITY_SPLITS, recipe, seed)


def stage2(model: PreTrainedModel, data: TofuData, tokenizer: PreTrainedTokenizerBase, split: str = "full",
           recipe: Recipe = STAGE2, seed: int = 1, replay: bool = True) -> TrainStats:
    """Fine-tune ``model`` in place on ``split`` (``full`` → target, ``retainXX`` → retain model), with the
    utility sets when ``replay``."""
    return _train(model, data, tokenizer, (split, *(UTILITY_SPLITS if replay else ())), recipe, seed)


def fine_tuned(reference: PreTrainedModel, data: TofuData, tokenizer: PreTrainedTokenizerBase, split: str,
               recipe: Recipe = STAGE2, seed: int = 1, replay: bool = True) -> PreTrainedModel:
    """A copy of the stage-1 ``reference`` model after stage 2 on ``split`` (the reference is unchanged)."""
    model = copy.deepcopy(reference)
    stage2(model, data, tokenizer, split, recipe, seed, replay)
    return model


def model_key(kind: str, data: TofuData, tokenizer: PreTrainedTokenizerBase, config: LMConfig | str,
              seed: int, stage1_recipe: Recipe = STAGE1, stage2_recipe: Recipe | None = None,
              split: str | None = None, replay: bool = True) -> dict[str, Any]:
    """The cache key of a benchmark model: ``kind`` ("reference", "target", "retain"), data and tokenizer
    hashes, architecture, seed, the recipes of the stages it went through, the stage-2 split and replay;
    ``hash`` is its sha256 (16 hex digits)."""
    key: dict[str, Any] = {"kind": kind, "data": data.hash, "tokenizer": tokenizer_hash(tokenizer),
                           "model": config if isinstance(config, str) else config.to_dict(), "seed": int(seed),
                           "stage1": stage1_recipe.hash}
    if stage2_recipe is not None:
        key |= {"stage2": stage2_recipe.hash, "split": split, "replay": replay}
    key["hash"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return key
