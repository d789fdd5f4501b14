"""TOFU / OpenUnlearning metrics as named, versioned pure functions over per-sample statistics.

Every function takes arrays computed from a model (answer losses, token log-probabilities, argmax predictions,
generated texts) and returns values; nothing here runs a model. :data:`DEFINITIONS` gives each metric's
versioned id and its definition in one line; docs/llm.md ("Metrics") has the full text, including where a
definition follows OpenUnlearning's code rather than the TOFU paper. Symbols: ℓ = mean token NLL of an answer
given its question (P = exp(−ℓ)), c = the correct answer, w_1 … w_K the perturbed (wrong) answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer
from scipy import stats
from sklearn.metrics import roc_auc_score

from unlearnlab.errors import UnlearnlabError

EPS = 1e-10
MINK_K = 0.4

DEFINITIONS: dict[str, str] = {
    "prob_tofu@1": "mean_i exp(-l_i), l_i = mean token NLL of the answer (terminator included)",
    "prob_normalised_tofu@1": "mean_i P(c_i) / (P(c_i) + sum_k P(w_ik) + 1e-10) (OpenUnlearning's "
                              "probability_w_options)",
    "rougeL_recall@1": "mean_i ROUGE-L recall of the greedy generation (stopped at the terminator) against the answer, "
                       "rouge-score with the Porter stemmer",
    "tr_tofu@1": "TR_i = exp(-mean_k l(w_ik)) / (exp(-l(c_i)) + 1e-10); forget: mean_i min(TR_i, 1/(TR_i + 1e-10)); "
                 "retain/utility sets: mean_i max(0, 1 - TR_i)",
    "tr_prob_mean@1": "mean_i P_c / (P_c + P_w), P_c = exp(-l(c_i)), P_w = exp(-mean_k l(w_ik)) (OpenUnlearning's "
                      "prob_mean aggregator, = mean_i 1/(1 + TR_i))",
    "fq_ks@1": "p-value of scipy.stats.ks_2samp between the model's and the retain model's per-question forget TR_i",
    "mu_hmean9@1": "harmonic mean of retain {prob, ROUGE-L, TR}, real-authors {normalised prob, ROUGE-L, TR}, "
                   "world-facts {normalised prob, ROUGE-L, TR} (0 if any is 0)",
    "es@1": "mean_i 1 - k_i/T_i, k_i the first position from which the argmax suffix equals the answer suffix "
            "(answer tokens without the terminator; k_i <= T_i - 1 as OpenUnlearning computes it)",
    "em@1": "mean_i fraction of answer tokens (terminator excluded) where the argmax equals the token",
    "mia_mink0.4@1": "ROC AUC of Min-K% scores (k = 0.4: minus the mean of the lowest max(1, floor(0.4 T)) token "
                     "log-probs, terminator excluded), forget labelled 0 and holdout 1",
    "privleak_mink0.4@1": "((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain + 1e-10) * 100, AUC_retain = 0.5 without "
                          "a retain model",
    "token_entropy@1": "mean_i H(unigram distribution of the generation's tokens) / log2(token count), 0 for <= 1 "
                       "token (DualOptim's normalised token entropy)",
    "fe_dualoptim_offline@1": "1 - mean(forget ROUGE-L, forget prob, 1 - forget TR(closer-to-1)); DualOptim's "
                              "untargeted forget efficacy without its two model-based terms (N/A offline)",
    "mu_dualoptim_offline@1": "harmonic mean of {prob, ROUGE-L, TR, token entropy} on retain, real authors and world "
                              "facts; DualOptim's model utility without its two model-based terms (N/A offline)",
}


def answer_probability(avg_loss: np.ndarray) -> np.ndarray:
    """exp(−ℓ_i) per answer (``prob_tofu@1`` is its mean)."""
    return np.exp(-np.asarray(avg_loss, dtype=np.float64))


def normalised_probability(correct_loss: np.ndarray, wrong_losses: np.ndarray) -> np.ndarray:
    """P(c_i) / (P(c_i) + Σ_k P(w_ik) + 1e-10) per question (``prob_normalised_tofu@1`` is its mean)."""
    correct = answer_probability(correct_loss)
    wrong = answer_probability(wrong_losses).reshape(len(correct), -1).sum(1)
    return correct / (correct + wrong + EPS)


def truth_ratios(correct_loss: np.ndarray, wrong_losses: np.ndarray) -> np.ndarray:
    """TR_i = exp(−mean_k ℓ(w_ik)) / (exp(−ℓ(c_i)) + 1e-10): the perturbed losses are averaged first, so P_w is
    the geometric mean of the perturbed probabilities."""
    correct = np.asarray(correct_loss, dtype=np.float64)
    wrong = np.asarray(wrong_losses, dtype=np.float64).reshape(len(correct), -1).mean(1)
    return np.exp(-wrong) / (np.exp(-correct) + EPS)


def tr_tofu(ratios: np.ndarray, aggregator: str) -> float:
    """TOFU's aggregate of truth ratios: ``"closer_to_1_better"`` (forget) or ``"true_better"`` (other sets)."""
    tr = np.asarray(ratios, dtype=np.float64)
    if aggregator == "closer_to_1_better":
        return float(np.mean(np.minimum(tr, 1.0 / (tr + EPS))))
    if aggregator == "true_better":
        return float(np.mean(np.maximum(0.0, 1.0 - tr)))
    raise UnlearnlabError(f"Unknown truth-ratio aggregator {aggregator!r}: use 'closer_to_1_better' or "
                          "'true_better'.")


def tr_prob_mean(correct_loss: np.ndarray, wrong_losses: np.ndarray) -> float:
    """mean_i P_c / (P_c + P_w) with P_w = exp(−mean_k ℓ(w_ik))."""
    pc = answer_probability(correct_loss)
    pw = np.exp(-np.asarray(wrong_losses, dtype=np.float64).reshape(len(pc), -1).mean(1))
    return float(np.mean(pc / (pc + pw)))


def forget_quality(model_ratios: np.ndarray, retain_ratios: np.ndarray) -> float:
    """KS-test p-value between the forget truth ratios of the model and of the retain model. OpenUnlearning
    tests 1/(TR + 1e-10); the two-sample KS statistic is unchanged by a monotone map of both samples."""
    a = 1.0 / (np.asarray(model_ratios, dtype=np.float64) + EPS)
    b = 1.0 / (np.asarray(retain_ratios, dtype=np.float64) + EPS)
    return float(stats.ks_2samp(a, b).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of positive values; 0 when any value is 0 (a metric at 0 zeroes the utility)."""
    arr = np.asarray(values, dtype=np.float64)
    if bool((arr < 0).any()):
        raise UnlearnlabError(f"A harmonic mean needs values >= 0, got {arr.tolist()}.")
    return 0.0 if bool((arr == 0).any()) else float(stats.hmean(arr))


def rouge_l_recall(generations: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L recall of each generation against its reference (rouge-score, Porter stemmer)."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(ref, gen)["rougeL"].recall for gen, ref in zip(generations, references)])


def extraction_strength(predictions: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> np.ndarray:
    """1 − k_i/T_i per answer, k_i the first k in 0 … T_i − 1 with argmax[k:] = labels[k:] (T_i − 1 if none)."""
    out = []
    for pred, lab in zip(predictions, labels):
        pred, lab = np.asarray(pred), np.asarray(lab)
        length = len(lab)
        if length == 0:
            out.append(0.0)
            continue
        k = next((k for k in range(length) if np.array_equal(pred[k:], lab[k:])), length - 1)
        out.append(1.0 - k / length)
    return np.array(out)


def exact_memorization(predictions: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> np.ndarray:
    """Fraction of answer tokens whose argmax prediction is the token, per answer."""
    return np.array([float(np.mean(np.asarray(p) == np.asarray(lab))) if len(lab) else 0.0
                     for p, lab in zip(predictions, labels)])


def mink_scores(token_logprobs: Sequence[np.ndarray], k: float = MINK_K) -> np.ndarray:
    """Min-K% score per answer: −mean of its max(1, ⌊k·T⌋) lowest token log-probabilities (higher = less
    likely = more likely a non-member); 0 for an answer without tokens."""
    out = []
    for lp in token_logprobs:
        lp = np.sort(np.asarray(lp, dtype=np.float64))
        out.append(0.0 if lp.size == 0 else float(-lp[: max(1, int(lp.size * k))].mean()))
    return np.array(out)


def mia_auc(forget_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """ROC AUC with forget labelled 0 and holdout 1 (1 when forget answers are much more likely)."""
    labels = np.r_[np.zeros(len(forget_scores)), np.ones(len(holdout_scores))]
    return float(roc_auc_score(labels, np.r_[forget_scores, holdout_scores]))


def privleak(auc: float, auc_retain: float = 0.5) -> float:
    """Relative change (%) of 1 − AUC against the retain model's (0 = as private as the retain model)."""
    return ((1.0 - auc) - (1.0 - auc_retain)) / (1.0 - auc_retain + EPS) * 100.0


def token_entropy(token_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Normalised unigram entropy of each generation's tokens (0 for at most one token)."""
    out = []
    for tokens in token_lists:
        if len(tokens) <= 1:
            out.append(0.0)
            continue
        _, counts = np.unique(np.asarray(tokens), return_counts=True)
        p = counts / counts.sum()
        out.append(float(-(p * np.log2(p)).sum() / np.log2(len(tokens))))
    return np.array(out)


def fe_dualoptim_offline(forget_rouge: float, forget_prob: float, forget_tr_closer: float) -> float:
    """1 − mean(forget ROUGE-L, forget prob, 1 − TR_closer): DualOptim's forget truth-ratio term is
    1 − mean_i min(R_i, 1/R_i), R_i = 1/TR_i (the same as 1 − ``tr_tofu`` forget)."""
    return 1.0 - float(np.mean([forget_rouge, forget_prob, 1.0 - forget_tr_closer]))


def mu_dualoptim_offline(values: Sequence[float]) -> float:
    """Harmonic mean of the twelve offline values (prob, ROUGE-L, TR, token entropy on three sets)."""
    return harmonic_mean(values)
