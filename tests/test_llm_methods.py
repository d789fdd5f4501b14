"""Every language-model preset runs on a trained tiny LM and lowers the forget answers' probability; the generic
wrappers (+dualoptim, +eupmu) run on LM hosts; DualOptim's LLM schedule is the paper's."""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("transformers")

from llm_helpers import tiny_data, trained_tiny

import unlearnlab as ul
from unlearnlab import language as lm
from unlearnlab.errors import UnlearnlabError

LM_PRESETS = ul.list_methods("llm/*") + ul.list_methods("dualoptim/llm/*")


@pytest.fixture(scope="module")
def trained():
    data = tiny_data()
    model, tok = trained_tiny(data)
    return model, lm.make_task(data, tok, "forget10")


def probabilities(model, task) -> dict[str, float]:
    """exp(−mean answer NLL) on the forget and retain sets."""
    return lm.LANGUAGE_MODEL.health(model, task.forget, task.retain)


def test_every_single_optimizer_host_is_registered_with_its_wrappers():
    names = set(ul.list_methods())
    for name, *_ in lm.PRESETS:
        assert name in names and f"{name}+dualoptim" in names
        assert ul.get_method(name).families == ["language_model"]
    assert {"llm/ga-gd+eupmu", "llm/npo-gd+eupmu", "dualoptim/llm/me-gd", "dualoptim/llm/idk-ap"} <= names


@pytest.mark.parametrize("method", LM_PRESETS)
def test_preset_lowers_forget_answer_probability(method, trained):
    model, task = trained
    before = probabilities(model, task)
    weights = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one epoch may barely move a weak method: not checked here
        result = ul.unlearn(model, task, method=method, epochs=1, seed=1)
    after = probabilities(result.model, task)
    assert after["forget"] < before["forget"], (method, before, after)
    assert after["retain"] > 0.5 * before["retain"], (method, before, after)
    assert result.counters.forward_samples > 0 and result.counters.optimizer_steps > 0
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), weights))  # the original is untouched


def test_dualoptim_llm_presets_step_one_forget_per_five_retain_with_equal_rates(trained):
    model, task = trained
    info = ul.get_method("dualoptim/llm/me-gd")
    assert info.defaults["forget_lr"] is None and info.defaults["forget_weight"] == 0.1
    unlearner = info.build(info.resolve({"lr": 2e-3}), "language_model")
    opt = unlearner.optimization
    assert opt.optimizers == "adamw+adamw" and opt.forget_lr == opt.lr == 2e-3
    assert opt.weight_decay == opt.forget_weight_decay == 0.01
    assert (unlearner.rule.n_forget, unlearner.rule.n_retain, unlearner.rule.epoch_over) == (1, 5, "forget")
    result = ul.unlearn(model, task, method="dualoptim/llm/idk-ap", epochs=3, batch_size=2)
    # an epoch is one pass over the 4 forget records in batches of 2: F R R R R R F R R R R R
    assert result.stats["steps"] == {"forget": 3 * 2, "retain": 3 * 2 * 5}


def test_lm_epochs_are_passes_over_the_forget_set(trained):
    model, task = trained
    result = ul.unlearn(model, task, method="llm/npo-gd", epochs=3, batch_size=2)
    assert result.stats["steps"]["joint"] == 3 * 2  # ⌈4 forget records / 2⌉ steps per epoch, retain batches cycle
    assert result.counters.forward_samples >= 3 * 2 * (2 + 2)  # each step sees a forget and a retain batch


def test_generic_wrappers_run_on_language_model_hosts(trained):
    model, task = trained
    dual = ul.unlearn(model, task, method="llm/npo-gd+dualoptim", epochs=1)
    assert set(dual.stats["steps"]) == {"forget", "retain"} and dual.stats["steps"]["forget"] > 0
    surgery = ul.unlearn(model, task, method="llm/npo-gd+eupmu", epochs=1)
    assert surgery.counters.backward_samples > 0 and "joint" in surgery.stats["steps"]
    # a generic preset composed on the fly on the LM family (forget lr given: it has no default)
    composed = ul.unlearn(model, task, method="neggrad-plus+dualoptim", forget_lr=1e-3, epochs=1)
    assert probabilities(composed.model, task)["forget"] < probabilities(model, task)["forget"]


def test_lm_presets_refuse_classifiers():
    with pytest.raises(UnlearnlabError, match="does not run on the classification family"):
        ul.get_method("llm/npo-gd").build({}, "classification")



def test_rmu_counts_its_backward_passes_though_its_loss_reads_hidden_states(trained):
    """RMU's losses read h_ℓ, not the logits: each step still backpropagates through the model, once per forward."""
    model, task = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = ul.unlearn(model, task, method="llm/rmu", epochs=1, seed=1)
    counters = result.counters
    assert counters.optimizer_steps > 0
    assert 0 < counters.backward_samples <= counters.forward_samples
