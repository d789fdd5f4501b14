"""Tokens and models: tokenizer round trip, TOFU's prompt format and label masking, models from config and from
local checkpoints, generation, and the bad-input errors of the language-model family."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from llm_helpers import TINY, tiny_data, trained_tiny

import unlearnlab as ul
from unlearnlab import language as lm
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.likelihood import trimmed
from unlearnlab.language.scoring import generate_answers
from unlearnlab.language.tokens import IGNORE_INDEX, PROMPT, encode_pair, encode_prompts


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def tok(data):
    return lm.build_tokenizer(data)


def test_tokenizer_round_trip_on_the_corpus(data, tok):
    for record in data.split("full")[:20] + data.split("world_facts_perturbed")[:5]:
        for text in (record.question, record.answer, *record.perturbed_answer):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids
            decoded = tok.decode(ids)
            assert decoded.replace(" ", "") == text.replace(" ", "")  # words and punctuation come back


def test_tokenizer_is_saved_and_loaded_with_the_model(tmp_path, tok):
    model = lm.build_lm(TINY, tok, seed=3)
    lm.save_lm(model, tok, tmp_path / "ckpt")
    loaded, tok2 = lm.load_lm(tmp_path / "ckpt")
    assert tok2.get_vocab() == tok.get_vocab() and tok2.eos_token == "<eos>"
    assert lm.tokens.tokenizer_hash(tok2) == lm.tokens.tokenizer_hash(tok)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_prompt_format_and_label_masking(tok):
    seq, prompt_len = encode_pair(tok, "Where was X born?", "X was born in Y.")
    assert tok.decode(seq[:prompt_len]).split() == tok.decode(tok(PROMPT.format(question="Where was X born?"))[
        "input_ids"]).split()
    assert seq[-1] == tok.eos_token_id  # the answer terminator closes every completion
    src = lm.encode_pairs(tok, [("Where was X born?", "X was born in Y."), ("Who?", "Z.")])
    ids, mask, labels = (src.fields[k] for k in ("input_ids", "attention_mask", "labels"))
    assert ids.shape == mask.shape == labels.shape and ids.shape[1] == len(seq)
    assert (labels[0, :prompt_len] == IGNORE_INDEX).all()
    assert torch.equal(labels[0, prompt_len:], ids[0, prompt_len:])
    short = int(mask[1].sum())
    assert short < ids.shape[1] and (mask[1, short:] == 0).all() and (labels[1, short:] == IGNORE_INDEX).all()
    assert labels[1, short - 1] == tok.eos_token_id and (labels[1] != IGNORE_INDEX).sum() == 3  # " Z", ".", eos
    assert trimmed(src.gather(torch.tensor([1])))["input_ids"].shape[1] == short


def test_prompts_for_generation_are_left_padded(tok):
    enc = encode_prompts(tok, ["Who?", "Where was X born?"])
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1
    assert (enc["attention_mask"][1] == 1).all()


def test_model_sizes_of_the_tiers(tok):
    xs = lm.build_lm("xs", lm.build_tokenizer(lm.generate("tofu-mini-xs", 0)))
    assert 0.3e6 < sum(p.numel() for p in xs.parameters()) < 0.7e6
    again = lm.build_lm("xs", lm.build_tokenizer(lm.generate("tofu-mini-xs", 0)))
    assert all(torch.equal(a, b) for a, b in zip(xs.parameters(), again.parameters()))  # seeded
    gpt2 = lm.build_lm(lm.LMConfig(arch="gpt2", hidden=32, layers=1, heads=2, intermediate=64), tok)
    assert type(gpt2).__name__ == "GPT2LMHeadModel"


def test_mini_tier_has_about_five_million_parameters():
    mini_tok = lm.build_tokenizer(lm.generate("tofu-mini", 0))
    with torch.device("meta"):
        model = lm.build_lm("mini", mini_tok)
    assert 4e6 < sum(p.numel() for p in model.parameters()) < 5.5e6


def test_batched_generation_equals_one_by_one(data):
    """Left padding must not change greedy answers (of a trained model: a random one's near-ties could flip)."""
    model, tok = trained_tiny(data, epochs=15)
    questions = [r.question for r in data.split("full")[:3]] + ["Who?", "Where was Nobody Atall born?"]
    together = generate_answers(model, tok, questions, batch_size=4)
    alone = [generate_answers(model, tok, [q], batch_size=1)[0] for q in questions]
    assert together == alone


def test_checkpoint_and_vocabulary_errors(tmp_path, data, tok):
    with pytest.raises(UnlearnlabError, match="No model folder"):
        lm.load_lm(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnlearnlabError, match="no config.json"):
        lm.load_lm(tmp_path / "empty")
    small = lm.train_tokenizer(["a b c"])
    with pytest.raises(UnlearnlabError, match="embedding table has"):
        lm.models.check_compatible(lm.build_lm(TINY, small), tok)
    task = lm.make_task(data, tok, "forget10")
    with pytest.raises(UnlearnlabError, match="embedding table has"):  # the task's tokenizer is not the model's
        ul.unlearn(lm.build_lm(TINY, small), task, method="llm/ga", epochs=1)
    with pytest.raises(UnlearnlabError, match="vocabulary has"):  # batches tokenized for a bigger vocabulary
        ul.unlearn(lm.build_lm(TINY, small), method="llm/ga", forget=task.forget, retain=task.retain,
                   family="language_model", epochs=1)
    with pytest.raises(UnlearnlabError, match="embedding table has"):
        lm.evaluate_lm(lm.build_lm(TINY, small), task)


def test_sequences_longer_than_the_context_are_refused(data, tok):
    short = lm.build_lm(lm.LMConfig(hidden=32, layers=1, heads=2, intermediate=64, context=8), tok)
    task = lm.make_task(data, tok, "forget10")
    with pytest.raises(UnlearnlabError, match="context is 8"):
        ul.unlearn(short, task, method="llm/ga", epochs=1)
    with pytest.raises(UnlearnlabError, match="context is 8"):
        lm.encode_pairs(tok, [(r.question, r.answer) for r in data.split("forget10")], max_length=8)


def test_family_refuses_data_that_is_not_token_batches(data, tok):
    model = lm.build_lm(TINY, tok)
    with pytest.raises(UnlearnlabError, match="token batches"):
        ul.unlearn(model, method="llm/ga", forget=torch.zeros(3, 4), retain=torch.zeros(3, 4),
                   family="language_model")
    src = lm.encode_pairs(tok, [(r.question, r.answer) for r in data.split("forget10")])
    with pytest.raises(UnlearnlabError, match="lacks the field"):
        ul.unlearn(model, method="llm/ga", forget={"input_ids": src.fields["input_ids"]}, retain=src,
                   family="language_model")
    with pytest.raises(UnlearnlabError, match="not a Hugging Face causal LM"):
        ul.unlearn(torch.nn.Linear(3, 3), method="llm/ga", forget=src, retain=src, family="language_model",
                   allow_overlap=True)


def test_forget_records_also_in_retain_are_refused(data, tok):
    src = lm.encode_pairs(tok, [(r.question, r.answer) for r in data.split("full")])
    with pytest.raises(UnlearnlabError, match="also appear in the retain set"):
        ul.unlearn(lm.build_lm(TINY, tok), method="llm/ga-gd", forget=src.subset(torch.arange(4)), retain=src,
                   family="language_model")
