"""The ``language_model`` task family: causal LMs on batches ``{"input_ids", "attention_mask", "labels"}``.

Loss (docs/llm.md, "Objectives"): the mean token NLL over answer tokens. With ``reduction="mean"`` it is
Σ_i NLL_i / Σ_i n_i over the batch (every answer token weighs the same, as ``labels=`` losses of Hugging Face
models); with ``reduction="none"`` it is NLL_i / n_i per sample. The family's own objectives (NPO, SimNPO, ME,
IDK, AP, KL, RMU) live in :mod:`unlearnlab.language.objectives`; GA and GD are the generic ``neg_loss`` and
``loss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnlab.data.tensors import Source, StreamData, TensorData
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families.base import TaskFamily, register_family
from unlearnlab.language.evaluation import evaluate_lm
from unlearnlab.language.likelihood import answer_nll
from unlearnlab.language.models import check_compatible, context_length, num_layers
from unlearnlab.language.objectives import LM_OBJECTIVES
from unlearnlab.objectives import GENERIC_OBJECTIVES

FIELDS = ("input_ids", "attention_mask", "labels")
#: samples per set the health check scores (stored order)
HEALTH_SAMPLES = 256


class LanguageModel(TaskFamily):
    name = "language_model"
    objectives: ClassVar[dict[str, Any]] = dict(GENERIC_OBJECTIVES)

    def loss(self, model: nn.Module, batch, reduction: str = "mean") -> torch.Tensor:
        if reduction == "mean":
            return self.weighted_loss(model, batch)[0]
        if reduction == "none":
            nll, counts = answer_nll(model, batch)
            return nll / counts
        raise UnlearnlabError(f"reduction must be 'mean' or 'none', got {reduction!r}.")

    def weighted_loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ_i NLL_i / Σ_i n_i, Σ_i n_i): the mean over the batch's answer tokens and their number."""
        nll, counts = answer_nll(model, batch)
        tokens = counts.sum()
        return nll.sum() / tokens, tokens

    def as_source(self, obj: Any, role: str, device: torch.device) -> Source:
        """A :class:`TensorData` (or a mapping of tensors) with the three fields, or a ``StreamData``."""
        if isinstance(obj, StreamData):
            return obj.to(device)
        if isinstance(obj, Mapping) and not isinstance(obj, TensorData):
            obj = TensorData.of_fields({k: torch.as_tensor(v) for k, v in obj.items()})
        if not isinstance(obj, TensorData):
            raise UnlearnlabError(
                f"The {role} data is a {type(obj).__name__}: a language model takes token batches. Encode records "
                "with unlearnlab.language.encode_pairs(tokenizer, pairs, max_length) or build a task with "
                "unlearnlab.language.make_task.")
        missing = [f for f in FIELDS if f not in obj.fields]
        if missing:
            raise UnlearnlabError(f"The {role} data lacks the field(s) {missing}: a language-model batch has "
                                  f"{', '.join(FIELDS)} (labels −100 on the prompt and on padding).")
        return obj.to(device)

    def inspect(self, model: nn.Module, sources: Mapping[str, Source], task: Any = None) -> dict[str, Any]:
        """Checks: the model is a Hugging Face causal LM whose vocabulary covers the task's tokenizer and every
        token id, and the sequences fit its context. Facts: ``vocab_size``, ``context``, ``layers`` and (from a
        task) the tokenized ``refusals``."""
        if getattr(model, "config", None) is None or not hasattr(model, "get_input_embeddings"):
            raise UnlearnlabError(f"A {type(model).__name__} is not a Hugging Face causal LM: the language_model "
                                  "family needs a transformers model (AutoModelForCausalLM or build_lm).")
        vocab = model.get_input_embeddings().num_embeddings
        context = context_length(model)
        if getattr(task, "tokenizer", None) is not None:
            check_compatible(model, task.tokenizer)
        for role, source in sources.items():
            if not isinstance(source, TensorData) or not len(source):
                continue
            ids = source.fields["input_ids"]
            if int(ids.max()) >= vocab:
                raise UnlearnlabError(
                    f"The {role} data holds token id {int(ids.max())} but the model's vocabulary has {vocab} "
                    "tokens: the data was tokenized for another model. Use the tokenizer saved with this model.")
            if ids.shape[1] > context:
                raise UnlearnlabError(f"The {role} sequences are {ids.shape[1]} tokens long but the model's context "
                                      f"is {context}: use a model with a longer context or shorter records.")
        facts: dict[str, Any] = {"vocab_size": vocab, "context": context, "layers": num_layers(model)}
        refusals = getattr(task, "refusal_ids", None)
        if refusals is not None:
            facts["refusals"] = refusals
        return facts

    def evaluate(self, model: nn.Module, task: Any, reference: Any = None, **options: Any) -> Any:
        """The TOFU report of ``model`` on ``task`` (:func:`unlearnlab.language.evaluation.evaluate_lm`)."""
        return evaluate_lm(model, task, reference, **options)

    def health(self, model: nn.Module, forget: Source, retain: Source) -> dict[str, float]:
        """exp(−mean answer NLL) on up to :data:`HEALTH_SAMPLES` forget and retain samples (stored order)."""
        out = {}
        was = model.training
        model.eval()
        with torch.no_grad():
            for name, source in (("forget", forget), ("retain", retain)):
                if isinstance(source, TensorData) and len(source):
                    batch = source.gather(torch.arange(min(HEALTH_SAMPLES, len(source)), device=source.device))
                    out[name] = float(torch.exp(-self.loss(model, batch)))
        model.train(was)
        return out

    def health_warnings(self, before: dict[str, float], after: dict[str, float]) -> list[str]:
        """Retain answer probability fell below half its value, or forget answer probability barely moved."""
        warns = []
        if "retain" in before and after["retain"] < 0.5 * before["retain"]:
            warns.append(f"retain answer probability collapsed from {before['retain']:.3f} to {after['retain']:.3f}: "
                         "lower the learning rate or the number of epochs.")
        if "forget" in before and before["forget"] > 0 and after["forget"] > 0.95 * before["forget"]:
            warns.append(f"forget answer probability barely moved ({before['forget']:.3f} → {after['forget']:.3f}): "
                         "the method may be too weak for this model (raise the learning rate or epochs).")
        return warns



LanguageModel.objectives.update(LM_OBJECTIVES)
LANGUAGE_MODEL = register_family(LanguageModel())
