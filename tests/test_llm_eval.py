"""The TOFU evaluator, OpenUnlearning export, validity gates and task construction on a tiny trained LM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from llm_helpers import tiny_data, trained_tiny

import unlearnlab as ul
from unlearnlab import language as lm
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.metrics import DEFINITIONS

DEFAULT_REPORT = ("forget_truth_ratio", "forget_quality", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility",
                  "privleak", "extraction_strength", "exact_memorization", "forget_truth_ratio_prob_mean",
                  "fe_dualoptim_offline", "mu_dualoptim_offline")


@pytest.fixture(scope="module")
def models():
    data = tiny_data()
    target, tok = trained_tiny(data, "full")
    retain, _ = trained_tiny(data, "retain90")
    task = lm.make_task(data, tok, "forget10")
    return task, target, retain, lm.evaluate_lm(retain, task)


def test_report_holds_the_default_metrics_with_definitions(models):
    task, target, _, retain_report = models
    report = lm.evaluate_lm(target, task, retain_report)
    for key in DEFAULT_REPORT:
        assert report.metrics[key] is not None and np.isfinite(report.metrics[key]), key
        assert report.definitions[key].split(" ")[0].split(" (")[0] in DEFINITIONS, key
    assert report.metrics["forget_Q_A_ROUGE"] > 0.9 and report.metrics["mia_min_k"] > 0.9  # the target knows D_f
    assert retain_report.metrics["forget_Q_A_Prob"] < report.metrics["forget_Q_A_Prob"]
    assert len(report.forget_truth_ratios) == len(task.forget_records) == len(report.by_index["forget_Q_A_ROUGE"])
    assert report.samples[0]["question"] == task.forget_records[0].question
    # the family's evaluate is this evaluator; a model as reference is evaluated first
    again = lm.LANGUAGE_MODEL.evaluate(target, task, reference=models[2])
    assert again.metrics["forget_quality"] == pytest.approx(report.metrics["forget_quality"])


def test_answer_probability_agrees_with_the_family_loss(models):
    task, target, _, _ = models
    report = lm.evaluate_lm(target, task)
    with torch.no_grad():
        per_sample = lm.LANGUAGE_MODEL.loss(target, task.forget.gather(torch.arange(len(task.forget))), "none")
    assert report.metrics["forget_Q_A_Prob"] == pytest.approx(torch.exp(-per_sample).mean().item(), rel=1e-5)
    assert report.metrics["forget_quality"] is None  # no retain model: OpenUnlearning reports None
    assert report.definitions["privleak"].endswith("vs AUC 0.5 (no retain model)")


def test_openunlearning_export_schema(models, tmp_path):
    task, target, _, retain_report = models
    report = lm.evaluate_lm(target, task, retain_report)
    lm.write_openunlearning(report, tmp_path)
    full = json.loads((tmp_path / "TOFU_EVAL.json").read_text())
    summary = json.loads((tmp_path / "TOFU_SUMMARY.json").read_text())
    assert summary == {k: v for k, v in report.metrics.items()}
    assert set(full) == set(summary) and all(full[k]["agg_value"] == summary[k] for k in summary)
    rows = full["forget_Q_A_Prob"]["value_by_index"]
    assert set(rows) == {str(i) for i in range(len(task.forget_records))}
    assert set(rows["0"]) == {"prob", "avg_loss"} and rows["0"]["prob"] == pytest.approx(np.exp(-rows["0"]["avg_loss"]))
    assert set(full["forget_Q_A_ROUGE"]["value_by_index"]["0"]) == {"rougeL_recall", "input", "ground_truth",
                                                                    "generation"}
    assert len(full["forget_Q_A_PERT_Prob"]["value_by_index"]["0"]["prob"]) == 5


def _report(**metrics) -> lm.TofuReport:
    ratios = metrics.pop("ratios")
    return lm.TofuReport(metrics, {}, forget_truth_ratios=list(ratios))


def test_validity_gates_pass_and_fail_with_the_measured_values():
    rng = np.random.default_rng(0)
    knows = rng.uniform(0.01, 0.1, 40)
    unknown_a, unknown_b = rng.uniform(0.5, 1.5, 40), rng.uniform(0.5, 1.5, 40)
    target = _report(forget_Q_A_ROUGE=0.97, retain_Q_A_ROUGE=0.95, ratios=knows)
    retain = _report(forget_Q_A_ROUGE=0.55, holdout_Q_A_ROUGE=0.54, ratios=unknown_a)
    retain_b = _report(forget_Q_A_ROUGE=0.56, holdout_Q_A_ROUGE=0.55, ratios=unknown_b)
    gates = lm.validity_gates(target, retain, retain_b)
    assert gates.passed and "validity gates: valid" in gates.summary()
    weak = _report(forget_Q_A_ROUGE=0.7, retain_Q_A_ROUGE=0.95, ratios=unknown_a)  # as ignorant as the retain model
    leaky = _report(forget_Q_A_ROUGE=0.9, holdout_Q_A_ROUGE=0.5, ratios=unknown_a)
    odd = _report(forget_Q_A_ROUGE=0.5, holdout_Q_A_ROUGE=0.5, ratios=knows)  # a retain seed unlike the first
    failed = lm.validity_gates(weak, leaky, odd)
    assert not failed.passed
    by_name = {c.name: c for c in failed.checks}
    assert not by_name["target forget ROUGE-L"].passed and by_name["target forget ROUGE-L"].value == 0.7
    assert not by_name["retain model forget ROUGE-L (vs its holdout ROUGE-L + margin)"].passed
    assert not by_name["forget quality, target vs retain"].passed  # the same truth ratios: p = 1
    assert not by_name["forget quality, retain B vs retain A"].passed
    assert failed.as_dict()["passed"] is False and "INVALID" in failed.summary()


def test_tasks_from_author_lists():
    data = tiny_data()
    tok = lm.build_tokenizer(data)
    task = lm.make_task(data, tok, [data.authors[5], data.authors[6]])
    assert {r.author for r in task.forget_records} == {data.authors[5], data.authors[6]}
    assert len(task.retain_records) == len(data.split("full")) - 8
    assert task.holdout_records == data.split("holdout10")[:8]
    assert task.forget.fields["input_ids"].shape[1] == task.retain.fields["input_ids"].shape[1]
    with pytest.raises(UnlearnlabError, match="Unknown author"):
        lm.make_task(data, tok, ["Nobody Atall"])
    with pytest.raises(UnlearnlabError, match="retain_perturbed"):
        lm.make_task(data, tok, [data.authors[0]])
    with pytest.raises(UnlearnlabError, match="Unknown forget split"):
        lm.make_task(data, tok, "forget20")
    assert task.key["forget"].startswith("authors-") and task.key["data"] == data.hash


def test_unlearning_then_evaluating_moves_the_forget_metrics(models):
    task, target, _, retain_report = models
    before = lm.evaluate_lm(target, task, retain_report)
    result = ul.unlearn(target, task, method="llm/ga-gd", epochs=8, lr=1e-3)
    after = lm.evaluate_lm(result.model, task, retain_report)
    assert after.metrics["forget_Q_A_Prob"] < before.metrics["forget_Q_A_Prob"]
    assert after.metrics["forget_Q_A_ROUGE"] < before.metrics["forget_Q_A_ROUGE"]
