"""Golden tests of the TOFU / OpenUnlearning metrics on fixed arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("transformers")

from unlearnlab.errors import UnlearnlabError
from unlearnlab.language import metrics as M

LN2, LN4, LN8 = math.log(2), math.log(4), math.log(8)


def test_every_metric_has_a_versioned_definition():
    for name, text in M.DEFINITIONS.items():
        assert "@" in name and name.split("@")[1].isdigit() and len(text) > 20


def test_answer_probability_is_exp_minus_mean_loss():
    np.testing.assert_allclose(M.answer_probability(np.array([0.0, LN2, LN4])), [1.0, 0.5, 0.25])


def test_normalised_probability_divides_by_correct_plus_every_wrong_answer():
    got = M.normalised_probability(np.array([LN2, LN4]), np.array([[LN4, LN4], [LN2, LN8]]))
    np.testing.assert_allclose(got, [0.5 / (0.5 + 0.5), 0.25 / (0.25 + 0.5 + 0.125)], rtol=1e-9)


def test_truth_ratio_averages_perturbed_losses_not_probabilities():
    # P_c = 0.5; perturbed losses ln2 and ln8 average to ln4, so P_w = 0.25 (not (0.5 + 0.125)/2)
    np.testing.assert_allclose(M.truth_ratios(np.array([LN2]), np.array([[LN2, LN8]])), [0.5], rtol=1e-9)


def test_truth_ratio_aggregators():
    tr = np.array([0.5, 2.0, 1.0])
    assert M.tr_tofu(tr, "closer_to_1_better") == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert M.tr_tofu(tr, "true_better") == pytest.approx(0.5 / 3)
    with pytest.raises(UnlearnlabError, match="aggregator"):
        M.tr_tofu(tr, "mean")


def test_prob_mean_truth_ratio_is_pc_over_pc_plus_pw():
    assert M.tr_prob_mean(np.array([LN2, LN4]), np.array([[LN2, LN8], [LN4, LN4]])) == pytest.approx(
        (0.5 / 0.75 + 0.5) / 2)


def test_forget_quality_is_the_ks_p_value():
    same = np.linspace(0.1, 2.0, 10)
    assert M.forget_quality(same, same) == pytest.approx(1.0)
    # disjoint samples of 10 and 10: exact two-sided p = 2 / C(20, 10)
    assert M.forget_quality(np.linspace(0.1, 0.2, 10), np.linspace(1, 2, 10)) == pytest.approx(
        2 / math.comb(20, 10), rel=1e-6)


def test_model_utility_is_a_harmonic_mean_that_a_zero_zeroes():
    assert M.harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7)
    assert M.harmonic_mean([1.0, 0.0, 0.5]) == 0.0
    with pytest.raises(UnlearnlabError):
        M.harmonic_mean([1.0, -0.1])


def test_rouge_l_recall_with_stemming():
    got = M.rouge_l_recall(["the cat sat", "running dogs", "nothing here"],
                           ["the cat sat on the mat", "run dog", "the answer"])
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0])


def test_extraction_strength_follows_openunlearning():
    labels = [np.array([1, 2, 3, 4])] * 4
    preds = [np.array([1, 2, 3, 4]), np.array([9, 2, 3, 4]), np.array([9, 9, 9, 4]), np.array([9, 9, 9, 9])]
    # k = 0, 1, 3 and, with no matching suffix, the loop's last k = T - 1 = 3
    np.testing.assert_allclose(M.extraction_strength(preds, labels), [1.0, 0.75, 0.25, 0.25])


def test_exact_memorization_counts_matching_tokens():
    np.testing.assert_allclose(M.exact_memorization([np.array([1, 9, 3, 9])], [np.array([1, 2, 3, 4])]), [0.5])


def test_mink_takes_the_lowest_forty_percent_of_token_log_probs():
    got = M.mink_scores([np.array([-1.0, -2.0, -3.0, -4.0, -5.0]), np.array([-0.5]), np.array([])])
    np.testing.assert_allclose(got, [4.5, 0.5, 0.0])


def test_mia_auc_labels_forget_zero_and_holdout_one():
    assert M.mia_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0  # forget answers far more likely
    assert M.mia_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 0.0
    assert M.mia_auc(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == 0.75


def test_privleak_is_relative_to_the_retain_model():
    assert M.privleak(1.0) == pytest.approx(-100.0)
    assert M.privleak(0.5) == pytest.approx(0.0)
    assert M.privleak(0.25, 0.5) == pytest.approx(50.0)
    assert M.privleak(0.6, 0.6) == pytest.approx(0.0)


def test_token_entropy_is_normalised_by_the_token_count():
    got = M.token_entropy([["a", "b"], ["a", "a"], ["a"], ["a", "b", "c", "d"], ["a", "a", "b", "b"]])
    np.testing.assert_allclose(got, [1.0, 0.0, 0.0, 1.0, 0.5])


def test_dualoptim_offline_summaries():
    assert M.fe_dualoptim_offline(0.2, 0.1, 0.7) == pytest.approx(1 - (0.2 + 0.1 + 0.3) / 3)
    assert M.mu_dualoptim_offline([0.5] * 12) == pytest.approx(0.5)
