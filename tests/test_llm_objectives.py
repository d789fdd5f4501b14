"""The language-model family's loss and objectives: values on a tiny model against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from llm_helpers import TINY, tiny_data

import unlearnlab as ul
from unlearnlab import language as lm
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language import objectives as O
from unlearnlab.language.likelihood import answer_nll
from unlearnlab.methods import RunContext
from unlearnlab.methods.base import frozen_copy

FAMILY = lm.LANGUAGE_MODEL


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    data = tiny_data()
    tok = lm.build_tokenizer(data)
    model = lm.build_lm(TINY, tok, seed=4)
    task = lm.make_task(data, tok, "forget10")
    batch = task.forget.gather(torch.arange(len(task.forget)))
    return model, task, batch


def ctx() -> RunContext:
    return RunContext(seed=1, family="language_model")


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    other = frozen_copy(model)
    for p in other.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return other


def bound(objective, model, task):
    """The objective with what a run binds: the reference model and the tokenized refusal pool."""
    objective.teacher = frozen_copy(model)
    if isinstance(objective, O.RefusalBatches):
        objective._pool, objective._context = task.refusal_ids, TINY.context
    return objective


def test_family_loss_is_the_answer_token_nll_as_transformers_computes_it(setup):
    model, _, batch = setup
    hf = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert FAMILY.loss(model, batch).item() == pytest.approx(hf.item(), rel=1e-5)
    nll, counts = answer_nll(model, batch)
    torch.testing.assert_close(FAMILY.loss(model, batch, reduction="none"), nll / counts)
    with pytest.raises(UnlearnlabError, match="reduction"):
        FAMILY.loss(model, batch, reduction="sum")


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_npo_at_the_reference_is_two_over_beta_log_two(setup, beta):
    model, task, batch = setup
    npo = bound(O.NPO(beta=beta), model, task)
    assert npo(model, batch, ctx()).item() == pytest.approx(2 / beta * math.log(2), rel=1e-5)


def test_npo_grows_with_the_log_ratio(setup):
    model, task, batch = setup
    npo = bound(O.NPO(beta=0.5), model, task)
    moved = perturbed(model)
    nll, _ = answer_nll(moved, batch)
    nll_ref, _ = answer_nll(model, batch)
    expected = (-F.logsigmoid(0.5 * (nll - nll_ref))).mean() * 2 / 0.5
    assert npo(moved, batch, ctx()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_simnpo_uses_the_length_normalised_nll_and_no_reference(setup):
    model, _, batch = setup
    mean_nll = FAMILY.loss(model, batch, reduction="none")
    got = O.SimNPO(beta=2.0, delta=0.5)(model, batch, ctx())
    assert got.item() == pytest.approx(((-F.logsigmoid(2.0 * (mean_nll - 0.5))).mean() * 2 / 2.0).item(), rel=1e-5)


def test_max_entropy_is_zero_for_a_uniform_prediction_and_the_kl_otherwise(setup):
    model, _, batch = setup
    flat = frozen_copy(model)
    with torch.no_grad():
        flat.get_output_embeddings().weight.zero_()
    assert O.MaxEntropy()(flat, batch, ctx()).item() == pytest.approx(0.0, abs=1e-5)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    mask = batch["labels"][:, 1:] != -100
    logp = F.log_softmax(logits, -1)[mask]
    uniform = torch.full_like(logp, 1 / logp.shape[-1])
    expected = F.kl_div(logp, uniform, reduction="none").sum(-1).mean()  # KL(u ‖ p) as DualOptim's ME
    assert O.MaxEntropy()(model, batch, ctx()).item() == pytest.approx(expected.item(), rel=1e-4)


def test_idk_is_the_family_loss_on_refusals(setup):
    model, task, batch = setup
    idk = bound(O.IdkNLL(), model, task)
    refusal_batch = idk.refusal_batch(batch, ctx())
    tok = task.tokenizer
    answers = [tok.decode([t for t in row if t != -100], skip_special_tokens=True) for row in
               refusal_batch["labels"].tolist()]
    assert all(a.replace(" ", "") in {r.replace(" ", "") for r in task.data.refusals} for a in answers)
    prompt = batch["labels"][0].ne(-100).int().argmax()
    assert torch.equal(refusal_batch["input_ids"][0, :prompt], batch["input_ids"][0, :prompt])  # same question
    assert idk(model, batch, ctx()).item() == pytest.approx(FAMILY.loss(model, refusal_batch).item(), rel=1e-6)


def test_answer_preservation_prefers_the_true_answer_over_a_refusal(setup):
    model, task, batch = setup
    ap = bound(O.AnswerPreference(beta=0.5), model, task)
    refusal_batch = ap.refusal_batch(batch, ctx())
    nll, _ = answer_nll(model, batch)
    nll_idk, _ = answer_nll(model, refusal_batch)
    expected = (-F.logsigmoid(0.5 * (nll_idk - nll))).mean() / 0.5
    assert ap(model, batch, ctx()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_retain_kl_is_zero_at_the_reference_and_positive_away_from_it(setup):
    model, task, batch = setup
    kl = bound(O.RetainKL(), model, task)
    assert kl(model, batch, ctx()).item() == pytest.approx(0.0, abs=1e-6)
    assert kl(perturbed(model), batch, ctx()).item() > 1e-4


def test_rmu_steers_the_chosen_layer(setup):
    model, task, batch = setup
    rmu = bound(O.RMU(layer=1, steering_coeff=5.0), model, task)
    loss = rmu(model, batch, ctx())
    assert rmu._control.norm().item() == pytest.approx(5.0, rel=1e-5)
    h = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              output_hidden_states=True).hidden_states[1]
    mask = (batch["labels"] != -100).float()
    per_sample = (((h - rmu._control) ** 2).mean(-1) * mask).sum(1) / mask.sum(1)
    assert loss.item() == pytest.approx(per_sample.mean().item(), rel=1e-5)
    keep = bound(O.RMURetain(layer=2), model, task)
    assert keep(model, batch, ctx()).item() == pytest.approx(0.0, abs=1e-8)
    assert keep(perturbed(model), batch, ctx()).item() > 0


def test_missing_reference_pool_or_layer_are_clear_errors(setup):
    model, task, batch = setup
    with pytest.raises(UnlearnlabError, match="needs a reference model"):
        O.NPO()(model, batch, ctx())
    with pytest.raises(UnlearnlabError, match="needs a reference model"):
        O.RetainKL()(model, batch, ctx())
    with pytest.raises(UnlearnlabError, match="not bound"):
        O.IdkNLL()(model, batch, ctx())
    with pytest.raises(UnlearnlabError, match="pool of refusal answers"):  # sources without a task
        ul.unlearn(model, method="llm/idk-gd", forget=task.forget, retain=task.retain, family="language_model",
                   epochs=1)
    with pytest.raises(UnlearnlabError, match=r"layer must be in 1\.\.2"):
        ul.unlearn(model, task, method="llm/rmu", layer=3, epochs=1)
    with pytest.raises(UnlearnlabError, match="beta must be > 0"):
        ul.unlearn(model, task, method="llm/npo", beta=0.0)
