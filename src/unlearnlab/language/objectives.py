"""Objectives of the language-model family (docs/llm.md, "Objectives"), each a loss to minimise on one batch.

Notation: for sample i, NLL_i = −Σ_t log p_θ(y_t | x, y_<t) over its answer tokens (n_i of them), NLL_i^ref the
same under the reference model (the frozen copy of the model before unlearning, ``teacher``), σ the logistic
function, V the vocabulary size, B a batch of size b.

* ``npo``: (2/β)·(1/b)·Σ_i −log σ(β·(NLL_i − NLL_i^ref)) — equals (2/β)·log 2 at θ = θ_ref;
* ``simnpo``: (2/β)·(1/b)·Σ_i −log σ(β·(NLL_i/n_i − δ)) — no reference model;
* ``max_entropy`` (ME): mean over answer-predicting positions of KL(u ‖ p_θ) = −log V − (1/V)·Σ_v log p_θ(v),
  u the uniform distribution (0 when the prediction is uniform);
* ``idk``: the family loss on (question, refusal) with one refusal per sample drawn from the task's pool;
* ``ap`` (answer preservation, a retain objective): (1/β)·(1/b)·Σ_i −log σ(β·(NLL_i^idk − NLL_i)), preferring the
  true retain answer to a refusal;
* ``kl`` (retain): the mean over non-padding positions of KL(p_ref ‖ p_θ);
* ``rmu`` (forget) and ``rmu_retain``: with h_ℓ the hidden state after ``layer`` blocks (Hugging Face's
  ``hidden_states[layer]``) at answer-token positions, (1/b)·Σ_i mean_t mean_d (h_ℓ − c·u)² with u a random unit
  vector (drawn once per run) and c = ``steering_coeff``; the retain side matches h_ℓ of the reference model.

GA (``ga``) and GD (``gd``) are the generic ``neg_loss`` and ``loss``: −L and L with L the family loss.

Across the ranks of a distributed run (docs/scaling.md): the means over tokens or positions (the family loss, IDK,
ME, KL) report how many they average (``weighted``), so the ranks combine them into the global-batch mean; the
others are means over samples. Refusals are drawn for the whole global batch and each rank keeps its rows; RMU's u
is one draw per run from the run's seed, the same on every rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import Batch
from unlearnlab.distributed.batches import drawn_for
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.likelihood import answer_nll, forward, trimmed
from unlearnlab.language.tokens import IGNORE_INDEX, pad_right
from unlearnlab.objectives import FamilyLoss, NegativeLoss, Objective, TermMean


def reference(objective: Objective) -> nn.Module:
    """The objective's reference model; a clear error when none was bound."""
    if objective.teacher is None:
        raise UnlearnlabError(
            f"{type(objective).__name__} needs a reference model (the model before unlearning): run it through "
            "unlearnlab.unlearn, which binds one, or set objective.teacher to a frozen copy.")
    return objective.teacher


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UnlearnlabError(f"{name} must be > 0, got {value!r}.")


@dataclass
class NPO(Objective):
    """Negative preference optimisation against the reference model (see module docstring)."""

    beta: float = 0.1
    needs_teacher: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _positive("beta", self.beta)

    def __call__(self, model, batch, ctx):
        nll, _ = answer_nll(model, batch)
        with torch.no_grad():
            nll_ref, _ = answer_nll(reference(self), batch)
        return -F.logsigmoid(self.beta * (nll - nll_ref)).mean() * 2 / self.beta


@dataclass
class SimNPO(Objective):
    """NPO without a reference model, on length-normalised NLL with margin δ (``delta``)."""

    beta: float = 2.5
    delta: float = 0.0

    def __post_init__(self) -> None:
        _positive("beta", self.beta)

    def __call__(self, model, batch, ctx):
        nll, counts = answer_nll(model, batch)
        return -F.logsigmoid(self.beta * (nll / counts - self.delta)).mean() * 2 / self.beta


@dataclass
class MaxEntropy(TermMean):
    """ME: drive the next-token distribution at answer positions to uniform (a mean over those positions)."""

    def weighted(self, model, batch, ctx):
        batch = trimmed(batch)
        logits = forward(model, batch).logits[:, :-1].float()
        mask = batch["labels"][:, 1:] != IGNORE_INDEX
        logp = F.log_softmax(logits, dim=-1)
        kl = -math.log(logp.shape[-1]) - logp.mean(-1)
        return kl[mask].mean(), mask.sum()


def with_completions(batch: Batch, completions: list[list[int]]) -> Batch:
    """Each sample's prompt (the tokens before its first label) followed by ``completions[i]``, as a labelled,
    right-padded batch."""
    labels = batch["labels"]
    starts = (labels != IGNORE_INDEX).int().argmax(1).tolist()
    ids = batch["input_ids"].tolist()
    sequences = [ids[i][: starts[i]] + completions[i] for i in range(len(completions))]
    width = max(len(s) for s in sequences)
    out = pad_right(sequences, starts, width)
    return {k: v.to(labels.device) for k, v in out.items()}


@dataclass
class RefusalBatches(Objective):
    """Base of the objectives that swap answers for refusals from the task's tokenized pool."""

    _pool: list[list[int]] | None = None
    _context: int = 0

    def bind(self, job) -> None:
        super().bind(job)
        pool = job.data.info.get("refusals")
        if not pool:
            raise UnlearnlabError(
                f"{type(self).__name__} needs a pool of refusal answers: unlearn with a task built by "
                "unlearnlab.language.make_task (it tokenizes the data's refusals) or pass one with refusal_ids.")
        self._pool, self._context = list(pool), int(job.data.info["context"])

    def refusal_batch(self, batch: Batch, ctx) -> Batch:
        """``batch``'s prompts with one refusal each, drawn uniformly from the pool (run generator "refusals"; a
        rank's share of a global batch keeps its rows of the global batch's draw). Longer than the context is an
        error; in a distributed run the global batch's longest sequence decides, so every rank raises it or none."""
        if self._pool is None:
            raise UnlearnlabError(f"{type(self).__name__} was not bound to a run: use it through unlearnlab.unlearn.")
        generator = ctx.generator("refusals")
        picks = drawn_for(batch, lambda n: torch.randint(len(self._pool), (n,), generator=generator))
        out = with_completions(batch, [self._pool[int(i)] for i in picks])
        width = int(out["input_ids"].shape[1])
        if ctx.dist is not None:
            width = ctx.dist.global_max(width)
        if width > self._context:
            raise UnlearnlabError(f"A question with a refusal is {width} tokens long, more than the model's context "
                                  f"({self._context}): use shorter refusals.")
        return out


@dataclass
class IdkNLL(RefusalBatches, TermMean):
    """IDK: the family loss on each forget question answered with a refusal (a mean over the refusals' tokens)."""

    def weighted(self, model, batch, ctx):
        return ctx.family.weighted_loss(model, self.refusal_batch(batch, ctx))


@dataclass
class AnswerPreference(RefusalBatches):
    """AP on retain batches: prefer the true answer over a refusal (see module docstring)."""

    beta: float = 0.1

    def __post_init__(self) -> None:
        _positive("beta", self.beta)

    def __call__(self, model, batch, ctx):
        nll, _ = answer_nll(model, batch)
        nll_idk, _ = answer_nll(model, self.refusal_batch(batch, ctx))
        return -F.logsigmoid(self.beta * (nll_idk - nll)).mean() / self.beta


@dataclass
class RetainKL(TermMean):
    """KL(p_ref ‖ p_θ) per non-padding position, averaged over those positions."""

    needs_teacher: ClassVar[bool] = True

    def weighted(self, model, batch, ctx):
        batch = trimmed(batch)
        logp = F.log_softmax(forward(model, batch).logits.float(), dim=-1)
        with torch.no_grad():
            logp_ref = F.log_softmax(forward(reference(self), batch).logits.float(), dim=-1)
        kl = (logp_ref.exp() * (logp_ref - logp)).sum(-1)
        mask = batch["attention_mask"].bool()
        return kl[mask].mean(), mask.sum()


def hidden_state(model: nn.Module, batch: Batch, layer: int) -> torch.Tensor:
    """h_ℓ [B, L, d]: the residual stream after ``layer`` blocks."""
    return forward(model, batch, output_hidden_states=True).hidden_states[layer]


def activation_mse(h: torch.Tensor, target: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(1/b)·Σ_i mean over answer-token positions of mean_d (h − target)²."""
    mask = (batch["labels"] != IGNORE_INDEX).float()
    per_position = ((h - target) ** 2).mean(-1)
    return ((per_position * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()


@dataclass
class Steering(Objective):
    """Base of the RMU objectives: ``layer`` (1 … number of blocks) checked against the model. Their losses do
    not reach the blocks after ``layer`` nor the head."""

    layer: int = 1
    reaches_every_parameter: ClassVar[bool] = False

    def bind(self, job) -> None:
        super().bind(job)
        layers = int(job.data.info["layers"])
        if not 1 <= self.layer <= layers:
            raise UnlearnlabError(f"layer must be in 1..{layers} (the model's blocks), got {self.layer}.")


@dataclass
class RMU(Steering):
    """RMU's forget side: steer h_ℓ on forget answers to c·u."""

    steering_coeff: float = 20.0
    _control: torch.Tensor | None = None

    def bind(self, job) -> None:
        super().bind(job)
        self._control = None

    def __call__(self, model, batch, ctx):
        batch = trimmed(batch)
        h = hidden_state(model, batch, self.layer)
        if self._control is None:
            u = torch.rand(h.shape[-1], generator=ctx.generator("rmu-control"))
            self._control = (u / u.norm() * self.steering_coeff).to(h)
        return activation_mse(h, self._control.expand_as(h), batch)


@dataclass
class RMURetain(Steering):
    """RMU's retain side: keep h_ℓ on retain answers equal to the reference model's."""

    needs_teacher: ClassVar[bool] = True

    def __call__(self, model, batch, ctx):
        batch = trimmed(batch)
        h = hidden_state(model, batch, self.layer)
        with torch.no_grad():
            h_ref = hidden_state(reference(self), batch, self.layer)
        return activation_mse(h, h_ref, batch)


#: the family's own objectives by name; "ga" and "gd" are the generic "neg_loss" and "loss" under the names of the
#: LLM-unlearning literature (so the LM presets name only language-model objectives)
LM_OBJECTIVES: dict[str, Any] = {
    "ga": NegativeLoss, "gd": FamilyLoss,
    "npo": NPO, "simnpo": SimNPO, "max_entropy": MaxEntropy, "idk": IdkNLL, "ap": AnswerPreference,
    "kl": RetainKL, "rmu": RMU, "rmu_retain": RMURetain,
}
