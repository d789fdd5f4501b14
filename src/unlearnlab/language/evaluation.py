"""The TOFU evaluation of a causal LM on a :class:`~unlearnlab.language.task.LanguageTask`.

:func:`evaluate_lm` computes OpenUnlearning's default TOFU report plus exact memorisation, the prob-mean truth
ratio and DualOptim's offline summaries, each under OpenUnlearning's metric name with its versioned definition
(:data:`unlearnlab.language.metrics.DEFINITIONS`). Sets: the forget split (TOFU's ``<split>_perturbed`` file when
present), its holdout split (membership attack), ``retain_perturbed``, ``real_authors_perturbed`` and
``world_facts_perturbed``. Forget quality and privleak compare with the retain model (``reference``: its report
or the model itself); without one, forget quality is None and privleak uses AUC_retain = 0.5, as OpenUnlearning
does. :func:`write_openunlearning` exports ``TOFU_EVAL.json`` / ``TOFU_SUMMARY.json`` in OpenUnlearning's schema
(``agg_value``, ``value_by_index``) for cross-checking (docs/llm.md, "Metrics").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import Evaluation
from unlearnlab.language import metrics as M
from unlearnlab.language.models import check_compatible
from unlearnlab.language.records import QARecord
from unlearnlab.language.scoring import answer_losses, answer_stats, generate_answers
from unlearnlab.utils import atomic_write_text

#: forget questions whose answers before/after are kept in the report for a person to read
SAMPLE_GENERATIONS = 5


@dataclass
class TofuReport(Evaluation):
    """Aggregate metrics (``metrics``), their definitions, per-index values (``by_index``, OpenUnlearning's
    ``value_by_index``), the forget truth ratios and Min-K AUC a model is compared on, and sample generations."""

    by_index: dict[str, Any] = field(default_factory=dict)
    forget_truth_ratios: list[float] = field(default_factory=list)
    mink_auc: float = 0.5
    samples: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "forget_truth_ratios": self.forget_truth_ratios, "mink_auc": self.mink_auc,
                "samples": self.samples}


def _by_index(values: Sequence[Any], key: str = "score") -> dict[str, dict[str, Any]]:
    return {str(i): {key: (v.tolist() if isinstance(v, np.ndarray) else float(v))} for i, v in enumerate(values)}


@dataclass
class _SetScores:
    """What one evaluation set yields: prob/avg-loss of the answers, ROUGE-L, generations, truth ratios."""

    stats: Any
    rouge: np.ndarray
    generations: list[str]
    correct_loss: np.ndarray
    wrong_loss: np.ndarray


def _score_set(model: nn.Module, tokenizer, records: Sequence[QARecord], correct: str, batch_size: int
               ) -> _SetScores:
    """Answer statistics, greedy generations (ROUGE-L vs ``answer``) and the losses of the truth ratio's correct
    answer (``correct`` = "paraphrased_answer" or "answer") and perturbed answers."""
    questions = [r.question for r in records]
    stats = answer_stats(model, tokenizer, [(r.question, r.answer) for r in records], batch_size)
    generations = generate_answers(model, tokenizer, questions, batch_size)
    rouge = M.rouge_l_recall(generations, [r.answer for r in records])
    if correct == "answer":
        correct_loss = stats.avg_loss
    else:
        correct_loss = answer_losses(model, tokenizer, questions, [[getattr(r, correct)] for r in records],
                                     batch_size)[:, 0]
    wrong = answer_losses(model, tokenizer, questions, [list(r.perturbed_answer) for r in records], batch_size)
    return _SetScores(stats, rouge, generations, correct_loss, wrong)


def _prob_entry(losses: np.ndarray) -> dict[str, dict[str, Any]]:
    return {str(i): {"prob": np.exp(-loss).tolist(), "avg_loss": np.asarray(loss).tolist()}
            for i, loss in enumerate(losses)}


def _rouge_entry(scores: _SetScores, records: Sequence[QARecord]) -> dict[str, dict[str, Any]]:
    return {str(i): {"rougeL_recall": float(s), "input": r.question, "ground_truth": r.answer, "generation": g}
            for i, (s, r, g) in enumerate(zip(scores.rouge, records, scores.generations))}


def _reference(reference: Any, task: Any, batch_size: int) -> TofuReport | None:
    if reference is None or isinstance(reference, TofuReport):
        return reference
    if isinstance(reference, nn.Module):
        return evaluate_lm(reference, task, None, batch_size=batch_size)
    raise UnlearnlabError(f"reference must be the retain model or its TofuReport, got {type(reference).__name__}.")


def _forget_records(task: Any) -> tuple[QARecord, ...]:
    if task.forget_name in task.data.splits:
        return task.data.evaluation_split(task.forget_name)
    return tuple(task.forget_records)


def evaluate_lm(model: nn.Module, task: Any, reference: Any = None, *, batch_size: int = 64) -> TofuReport:
    """The TOFU report of ``model`` on ``task`` (see module docstring)."""
    tok, data = task.tokenizer, task.data
    check_compatible(model, tok)
    ref = _reference(reference, task, batch_size)
    forget_records = _forget_records(task)
    sets = {"forget": (forget_records, "paraphrased_answer"),
            "retain": (data.evaluation_split("retain_perturbed"), "paraphrased_answer"),
            "ra": (data.split("real_authors_perturbed"), "answer"),
            "wf": (data.split("world_facts_perturbed"), "answer")}
    scores = {name: _score_set(model, tok, records, correct, batch_size) for name, (records, correct) in sets.items()}
    holdout = answer_stats(model, tok, [(r.question, r.answer) for r in task.holdout_records], batch_size)
    holdout_rouge = M.rouge_l_recall(generate_answers(model, tok, [r.question for r in task.holdout_records],
                                                      batch_size), [r.answer for r in task.holdout_records])
    values: dict[str, float | None] = {}
    by_index: dict[str, Any] = {}
    definitions: dict[str, str] = {}

    def put(key: str, metric_id: str, where: str, value: float | None, index: Any = None) -> None:
        values[key] = value
        definitions[key] = f"{metric_id} on {where}"
        if index is not None:
            by_index[key] = index

    for name, where in (("forget", task.forget_name), ("retain", "retain_perturbed")):
        s, records = scores[name], sets[name][0]
        tr = M.truth_ratios(s.correct_loss, s.wrong_loss)
        aggregator = "closer_to_1_better" if name == "forget" else "true_better"
        label = "forget_truth_ratio" if name == "forget" else "retain_Truth_Ratio"
        put(f"{name}_Q_A_Prob", "prob_tofu@1", where, float(M.answer_probability(s.stats.avg_loss).mean()),
            _prob_entry(s.stats.avg_loss))
        put(f"{name}_Q_A_PARA_Prob", "prob_tofu@1", f"{where} (paraphrased answers)",
            float(M.answer_probability(s.correct_loss).mean()), _prob_entry(s.correct_loss))
        put(f"{name}_Q_A_PERT_Prob", "prob_tofu@1", f"{where} (perturbed answers)",
            float(M.answer_probability(s.wrong_loss).mean()), _prob_entry(s.wrong_loss))
        put(f"{name}_Q_A_ROUGE", "rougeL_recall@1", where, float(s.rouge.mean()), _rouge_entry(s, records))
        put(label, f"tr_tofu@1 ({aggregator})", where, M.tr_tofu(tr, aggregator), _by_index(tr))
        put(f"{name}_truth_ratio_prob_mean", "tr_prob_mean@1", where, M.tr_prob_mean(s.correct_loss, s.wrong_loss))
        if name == "forget":
            forget_tr = tr
    for name, where in (("ra", "real_authors_perturbed"), ("wf", "world_facts_perturbed")):
        s, records = scores[name], sets[name][0]
        normalised = M.normalised_probability(s.correct_loss, s.wrong_loss)
        tr = M.truth_ratios(s.correct_loss, s.wrong_loss)
        put(f"{name}_Q_A_Prob", "prob_tofu@1", where, float(M.answer_probability(s.stats.avg_loss).mean()),
            _prob_entry(s.stats.avg_loss))
        put(f"{name}_Q_A_PERT_Prob", "prob_tofu@1", f"{where} (perturbed answers)",
            float(M.answer_probability(s.wrong_loss).mean()), _prob_entry(s.wrong_loss))
        put(f"{name}_Q_A_Prob_normalised", "prob_normalised_tofu@1", where, float(normalised.mean()),
            _by_index(normalised, "prob"))
        put(f"{name}_Q_A_ROUGE", "rougeL_recall@1", where, float(s.rouge.mean()), _rouge_entry(s, records))
        put(f"{name}_Truth_Ratio", "tr_tofu@1 (true_better)", where, M.tr_tofu(tr, "true_better"), _by_index(tr))
    utility = [values[k] for k in ("retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio",
                                   "ra_Q_A_Prob_normalised", "ra_Q_A_ROUGE", "ra_Truth_Ratio",
                                   "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio")]
    put("model_utility", "mu_hmean9@1", "retain, real authors, world facts", M.harmonic_mean(utility))
    fq = None if ref is None else M.forget_quality(forget_tr, np.asarray(ref.forget_truth_ratios))
    put("forget_quality", "fq_ks@1", f"{task.forget_name} vs the retain model", fq)
    forget_stats = scores["forget"].stats
    es = M.extraction_strength(forget_stats.predictions, forget_stats.labels)
    em = M.exact_memorization(forget_stats.predictions, forget_stats.labels)
    put("extraction_strength", "es@1", task.forget_name, float(es.mean()), _by_index(es))
    put("exact_memorization", "em@1", task.forget_name, float(em.mean()), _by_index(em))
    mink_forget, mink_holdout = M.mink_scores(forget_stats.token_logprobs), M.mink_scores(holdout.token_logprobs)
    auc = M.mia_auc(mink_forget, mink_holdout)
    put("mia_min_k", "mia_mink0.4@1", f"{task.forget_name} vs holdout", auc,
        {"forget": _by_index(mink_forget), "holdout": _by_index(mink_holdout)})
    put("privleak", "privleak_mink0.4@1", "vs the retain model" if ref else "vs AUC 0.5 (no retain model)",
        M.privleak(auc, ref.mink_auc if ref else 0.5))
    put("holdout_Q_A_ROUGE", "rougeL_recall@1", "the holdout split (never trained on)", float(holdout_rouge.mean()))
    entropy = {name: float(M.token_entropy([tok.tokenize(g) for g in scores[name].generations]).mean())
               for name in ("retain", "ra", "wf")}
    put("fe_dualoptim_offline", "fe_dualoptim_offline@1", task.forget_name,
        M.fe_dualoptim_offline(values["forget_Q_A_ROUGE"], values["forget_Q_A_Prob"], values["forget_truth_ratio"]))
    put("mu_dualoptim_offline", "mu_dualoptim_offline@1", "retain, real authors, world facts", M.mu_dualoptim_offline(
        [values["retain_Q_A_Prob"], values["retain_Q_A_ROUGE"], values["retain_Truth_Ratio"], entropy["retain"],
         values["ra_Q_A_Prob_normalised"], values["ra_Q_A_ROUGE"], values["ra_Truth_Ratio"], entropy["ra"],
         values["wf_Q_A_Prob_normalised"], values["wf_Q_A_ROUGE"], values["wf_Truth_Ratio"], entropy["wf"]]))
    samples = [{"question": r.question, "answer": r.answer, "generation": g}
               for r, g in zip(forget_records[:SAMPLE_GENERATIONS], scores["forget"].generations)]
    return TofuReport(values, definitions, by_index, [float(t) for t in forget_tr], auc, samples)


def write_openunlearning(report: TofuReport, folder: str | Path) -> None:
    """``TOFU_EVAL.json`` ({metric: {"agg_value", "value_by_index"}}) and ``TOFU_SUMMARY.json``
    ({metric: agg_value}) in OpenUnlearning's schema, each written atomically."""
    folder = Path(folder)
    full = {}
    for key, value in report.metrics.items():
        entry: dict[str, Any] = {"agg_value": value}
        if key in report.by_index:
            entry["value_by_index"] = report.by_index[key]
        full[key] = entry
    atomic_write_text(folder / "TOFU_EVAL.json", json.dumps(full, indent=1))
    atomic_write_text(folder / "TOFU_SUMMARY.json", json.dumps(dict(report.metrics), indent=1))
