"""The attacks' new definitions on synthetic inputs with known answers: balanced SVC shadow sets, resampled attack
sets, the kit's loss MIA inside evaluate, U-LiRA (separable vs identical families), the noise-floor test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.svm import SVC

import unlearnlab as ul
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import EvalOptions, evaluate, kit_half
from unlearnlab.metrics import (
    above_noise,
    attack_metrics,
    balanced_membership,
    fit_shadow_gaussians,
    mia_efficacy_svc_conf,
    mia_loss_lr_cv,
    noise_scale,
    svc_attack,
    svc_shadow_members,
    ulira,
)
from unlearnlab.metrics.ulira import UliraReference


def _conf_probs(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities whose true-label confidence (label 0) is ``conf``."""
    p = np.stack([conf, 1.0 - conf], axis=1).astype(np.float32)
    return p, np.zeros(len(conf), dtype=np.int64)


# ------------------------------------------------------------------------------------------- SVC shadow sets


def test_short_retain_set_is_balanced_and_an_untouched_original_no_longer_looks_forgotten():
    rng = np.random.default_rng(0)
    members = _conf_probs(rng.uniform(0.95, 1.0, 50))  # D_r: 50 trained-on samples
    nonmembers = _conf_probs(rng.uniform(0.0, 1.0, 500))  # D_test ten times longer
    target = _conf_probs(rng.uniform(0.95, 1.0, 200))  # D_f of an untouched original: looks like D_r
    x = np.r_[members[0][:, 0], nonmembers[0][:, 0]].reshape(-1, 1)
    unbalanced = SVC(C=3, gamma="auto", kernel="rbf").fit(x, np.r_[np.ones(50), np.zeros(500)])
    assert 100 * (1 - unbalanced.predict(target[0][:, :1]).mean()) == 100.0  # the old answer: "all forgotten"
    res = svc_attack(*members, *nonmembers, *target)
    assert (res.members, res.nonmembers, res.cut) == (50, 50, "nonmembers")
    assert res.value < 20  # balanced: D_f is called member, as it should be for an untouched model
    assert mia_efficacy_svc_conf(*members, *nonmembers, *target) == res.value
    assert svc_attack(*members, *nonmembers, *target, draw=3).value != pytest.approx(-1)  # other cuts run


def test_equal_shadow_sets_are_not_cut_and_match_the_reference():
    rng = np.random.default_rng(1)
    a, b, t = (_conf_probs(rng.uniform(0, 1, 80)) for _ in range(3))
    res = svc_attack(*a, *b, *t)
    assert res.cut is None and (res.members, res.nonmembers) == (80, 80)
    x = np.r_[a[0][:, 0], b[0][:, 0]].reshape(-1, 1)
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, np.r_[np.ones(80), np.zeros(80)])
    assert res.value == 100.0 * (1.0 - clf.predict(t[0][:, :1]).mean())


def test_resampled_shadow_members_are_seeded_distinct_draws_of_the_same_size():
    ref = svc_shadow_members(1000, 300)
    np.testing.assert_array_equal(ref, np.arange(300))
    d1, d2 = svc_shadow_members(1000, 300, 1), svc_shadow_members(1000, 300, 2)
    np.testing.assert_array_equal(d1, svc_shadow_members(1000, 300, 1))
    assert len(d1) == len(set(d1.tolist())) == 300 and np.all(np.diff(d1) > 0) and d1.max() < 1000
    assert not np.array_equal(d1, d2) and not np.array_equal(d1, ref)


# ------------------------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def scored(digits_task, trained_mlp):
    return evaluate(trained_mlp, digits_task, options=EvalOptions(attack_draws=5))


def test_attack_draws_keep_the_reference_value_and_add_a_spread(scored, digits_task, trained_mlp):
    plain = evaluate(trained_mlp, digits_task)
    for name in ("ua", "ra", "ta", "mia_efficacy_svc_conf", "mia_lr_entropy_member_rate", "mia_loss_lr_cv"):
        assert scored[name] == plain[name]  # draw 0 is the reference draw, bit for bit
    assert math.isfinite(scored["mia_efficacy_svc_conf_attack_std"])
    assert scored.details["attack_draws"] == 5 and "K = 5" in scored.definitions["mia_loss_lr_cv_attack_std"]
    svc = scored.details["mia"]["mia_efficacy_svc_conf"]
    assert svc["cut"] is None and svc["members"] == svc["nonmembers"] == len(digits_task.test)


def test_loss_mia_in_evaluate_is_the_kit_attack_on_cross_entropy_losses(scored, digits_task, trained_mlp):
    with torch.no_grad():
        losses = {name: torch.nn.functional.cross_entropy(trained_mlp(getattr(digits_task, name).x),
                                                          getattr(digits_task, name).y, reduction="none").numpy()
                  for name in ("forget", "test")}
    direct = mia_loss_lr_cv(losses["forget"], losses["test"])
    assert scored["mia_loss_lr_cv"] == pytest.approx(100 * direct["accuracy"])


def test_short_retain_set_cut_is_recorded_in_the_evaluation(trained_mlp, digits_task):
    short = evaluate(trained_mlp, forget=(digits_task.forget.x, digits_task.forget.y),
                     retain=(digits_task.retain.x[:100], digits_task.retain.y[:100]),
                     test=(digits_task.test.x, digits_task.test.y))
    assert short.details["mia"]["mia_efficacy_svc_conf"]["cut"] == "nonmembers"
    assert "cut to 100" in short.definitions["mia_efficacy_svc_conf"]


def test_kit_half_is_torchs_random_split_with_seed_42():
    first, _ = torch.utils.data.random_split(range(11), [0.5, 0.5], generator=torch.Generator().manual_seed(42))
    np.testing.assert_array_equal(kit_half(11), first.indices)
    assert len(kit_half(10)) == 5


def test_eval_options_refuse_unknown_mias_and_unresampled_ones():
    with pytest.raises(UnlearnlabError, match="Unknown MIA"):
        EvalOptions(mias=("mia_foo",))
    with pytest.raises(UnlearnlabError, match="no sampling step"):
        EvalOptions(resample=("mia_lr_entropy_member_rate",))


# ------------------------------------------------------------------------------------------- U-LiRA


def test_balanced_membership_puts_every_example_in_half_the_shadows():
    m = balanced_membership(8, 500, seed=3)
    assert m.shape == (8, 500) and (m.sum(axis=0) == 4).all()
    assert 200 < m.sum(axis=1).min() and m.sum(axis=1).max() < 300
    with pytest.raises(UnlearnlabError, match="even"):
        balanced_membership(5, 10)


def test_shadow_gaussians_recover_known_means_and_pooled_std():
    rng = np.random.default_rng(2)
    member = balanced_membership(64, 200)
    mu_in, mu_out = rng.normal(5, 1, 200), rng.normal(0, 1, 200)
    scores = np.where(member, mu_in + 0.5 * rng.standard_normal((64, 200)), mu_out + 2.0 * rng.standard_normal(
        (64, 200)))
    g = fit_shadow_gaussians(scores, member)
    assert g.sigma_in == pytest.approx(0.5, rel=0.05) and g.sigma_out == pytest.approx(2.0, rel=0.05)
    assert np.abs(g.mu_in - mu_in).max() < 0.6 and np.abs(g.mu_out - mu_out).max() < 2.0
    assert g.n_shadows == 64


def test_attack_on_separable_families_is_perfect_in_either_direction():
    rng = np.random.default_rng(4)
    high, low = rng.uniform(5, 6, 300), rng.uniform(0, 1, 300)
    for pos, neg, sign in ((high, low, "+"), (low, high, "-")):  # over-forgetting is caught as well
        res = attack_metrics(pos, neg)
        assert res["ulira_balanced_accuracy"] == 100.0 and res["orientation"] == sign
        assert res["ulira_tpr_at_1pct_fpr"] == res["ulira_tpr_at_01pct_fpr"] == 100.0


def test_attack_on_identical_distributions_is_chance():
    rng = np.random.default_rng(5)
    res = attack_metrics(rng.normal(0, 1, 4000), rng.normal(0, 1, 4000))
    assert abs(res["ulira_balanced_accuracy"] - 50) < 2.5
    assert res["ulira_tpr_at_1pct_fpr"] < 2.5 and res["ulira_tpr_at_01pct_fpr"] < 0.5
    same = rng.normal(0, 1, 500)
    assert attack_metrics(same, same.copy(), paired=True)["ulira_balanced_accuracy"] == 50.0


def test_tpr_at_fpr_counts_false_positives_at_the_resolution_of_the_negatives():
    neg = np.arange(100, dtype=float)  # 100 negatives: 1 % FPR = one false positive, 0.1 % = none
    pos = np.array([97.5, 98.5, 200.0, 201.0])
    res = attack_metrics(pos, neg)
    assert res["ulira_tpr_at_1pct_fpr"] == 75.0  # above the second-largest negative (98)
    assert res["ulira_tpr_at_01pct_fpr"] == 50.0  # above every negative
    assert res["fpr_resolution"] == 1.0 and res["n_negative"] == 100


def test_ulira_separates_a_model_that_still_remembers_from_one_that_never_saw(monkeypatch):
    rng = np.random.default_rng(6)
    n, k = 400, 16
    member = balanced_membership(k, n)
    mu_in, mu_out = rng.normal(4, 0.5, n), rng.normal(1, 0.5, n)
    g = fit_shadow_gaussians(np.where(member, mu_in, mu_out) + 0.3 * rng.standard_normal((k, n)), member)
    retrained = mu_out + 0.3 * rng.standard_normal(n)
    reference = UliraReference(forget=g, retrained_scores=retrained)
    remembered = ulira(mu_in + 0.3 * rng.standard_normal(n), reference)
    forgotten = ulira(mu_out + 0.3 * rng.standard_normal(n), reference)
    assert remembered["ulira_balanced_accuracy"] > 99 and remembered["n_shadows"] == k
    assert abs(forgotten["ulira_balanced_accuracy"] - 50) < 5


# ------------------------------------------------------------------------------------------- noise floor


def test_noise_scale_and_the_above_noise_rule():
    assert noise_scale([1.0, 3.0], [0.0, 0.0]) == pytest.approx(math.sqrt(5.0))
    assert above_noise(2.1, 2.0, 4) and not above_noise(1.9, 2.0, 4)  # threshold 2·2/√4 = 2
    assert not above_noise(2.1, 2.0, 4, attack_std=1.5)  # 2·2.5/2 = 2.5
    assert above_noise(0.01, 0.0, 1) and not above_noise(0.0, 0.0, 3)
    with pytest.raises(UnlearnlabError):
        noise_scale([1.0], [1.0, 2.0])


def test_public_api_evaluate_accepts_options(digits_task, trained_mlp):
    res = ul.evaluate(trained_mlp, digits_task, options=ul.EvalOptions(mias=("mia_lr_entropy_member_rate",)),
                      primary_mia="mia_lr_entropy_member_rate")
    assert "mia_efficacy_svc_conf" not in res.metrics and res["mia"] == res["mia_lr_entropy_member_rate"]
