"""TOFU-format data: the seeded generator (determinism, schema, splits, hash) and the loader of TOFU's files."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from unlearnlab import language as lm
from unlearnlab.errors import UnlearnlabError
from unlearnlab.language import generator
from unlearnlab.language.facts import PARAPHRASED_ANSWER

TOFU_KEYS = {"question", "answer", "paraphrased_question", "paraphrased_answer", "perturbed_answer"}


@pytest.fixture(scope="module")
def xs() -> lm.TofuData:
    return lm.generate("tofu-mini-xs", seed=0)


def test_same_seed_same_data_other_seed_other_data(xs):
    again = lm.generate("tofu-mini-xs", seed=0)
    other = lm.generate("tofu-mini-xs", seed=1)
    assert again.splits == xs.splits and again.hash == xs.hash
    assert other.split("full") != xs.split("full") and other.hash != xs.hash
    assert other.authors != xs.authors


def test_records_follow_tofus_schema(xs):
    for name in ("full", "forget10", "holdout10", "retain_perturbed"):
        for record in xs.split(name):
            row = record.to_json()
            assert TOFU_KEYS <= set(row)
            assert len(row["perturbed_answer"]) == 5
            assert record.answer != record.paraphrased_answer
    for name in lm.records.UTILITY_SPLITS:
        assert all(len(r.perturbed_answer) == 3 for r in xs.split(name))


def test_perturbed_answers_keep_the_paraphrase_frame_and_swap_the_fact(xs):
    """Paraphrase and perturbed answers share everything up to the value at the end: only the fact differs."""
    prefix = PARAPHRASED_ANSWER.split("{s}")[0]
    for record in xs.split("forget10"):
        texts = [record.paraphrased_answer, *record.perturbed_answer]
        frame = texts[0][: next(i for i, chars in enumerate(zip(*texts)) if len(set(chars)) > 1)]
        assert frame.startswith(prefix) and (record.author.split()[0] in frame or "writer born in" in frame)
        tails = [t[len(frame):] for t in texts]
        assert len(set(tails)) == 6 and all(t.endswith(".") and t != "." for t in tails)


def test_question_zero_answers_with_frame_zero_and_the_paraphrase_is_held_out(xs):
    record = xs.split("full")[0]
    pairs = record.training_pairs()
    assert len(pairs) == generator.SIZES["tofu-mini-xs"].train_templates
    assert pairs[0] == (record.question, record.answer)
    trained = {t for pair in pairs for t in pair}
    assert record.paraphrased_answer not in trained and record.paraphrased_question not in trained


def test_split_sizes_and_structure_follow_tofu(xs):
    q = 10
    assert len(xs.split("full")) == 40 * q
    for forget, authors in (("forget01", 1), ("forget05", 2), ("forget10", 4)):
        records = xs.split(forget)
        assert len(records) == authors * q
        assert records == xs.split("full")[-authors * q:]  # the last authors, as TOFU
        retain = xs.split(lm.records.RETAIN_OF[forget])
        assert retain + records == xs.split("full")
        holdout = xs.split(lm.records.HOLDOUT_OF[forget])
        assert len(holdout) == len(records)
        assert not {r.author for r in holdout} & set(xs.authors)  # never trained on
    assert set(xs.split("forget01")) <= set(xs.split("forget05")) <= set(xs.split("forget10"))
    assert set(xs.split("holdout01")) <= set(xs.split("holdout05")) <= set(xs.split("holdout10"))
    assert xs.split("retain_perturbed") == xs.split("full")[: 4 * q]
    assert len(xs.split("real_authors_perturbed")) == 40 and len(xs.split("world_facts_perturbed")) == 54


def test_mini_has_tofus_shape():
    mini = lm.generate("tofu-mini", seed=0)
    assert len(mini.split("full")) == 4000 and len(mini.split("forget10")) == 400
    assert len(mini.split("forget01")) == 40 and len(mini.split("retain_perturbed")) == 400
    assert len(mini.split("real_authors_perturbed")) == 100 and len(mini.split("world_facts_perturbed")) == 117
    assert len(set(mini.authors)) == 200


def test_split_hash_covers_version_seed_and_sizes(monkeypatch):
    size = generator.SIZES["tofu-mini-xs"]
    base = lm.split_hash(size, 0)
    assert lm.split_hash(size, 1) != base
    assert lm.generate("tofu-mini-xs", 0, train_templates=2).hash != base
    monkeypatch.setattr(generator, "GENERATOR_VERSION", generator.GENERATOR_VERSION + 1)
    assert generator.split_hash(size, 0) != base


def test_bad_sizes_and_names_are_clear_errors():
    with pytest.raises(UnlearnlabError, match="tofu-mini"):
        lm.generate("tofu-mega")
    with pytest.raises(UnlearnlabError, match="train_templates"):
        lm.generate("tofu-mini-xs", train_templates=9)
    with pytest.raises(UnlearnlabError, match="Unknown size field"):
        lm.generate("tofu-mini-xs", writers=3)


def test_unknown_split_and_unknown_author_are_clear_errors(xs):
    with pytest.raises(UnlearnlabError, match="forget10"):
        xs.split("forget11")
    with pytest.raises(UnlearnlabError, match="Unknown author"):
        xs.author_records(["Nobody Atall"])
    records = xs.author_records([xs.authors[5]])
    assert len(records) == 10 and {r.author for r in records} == {xs.authors[5]}


# ------------------------------------------------------------------------------------------------ the loader

def _write_tofu_folder(folder) -> None:
    """Files exactly as TOFU ships them: JSON lines, TOFU's keys only, plain-text refusals."""
    rows = [{"question": f"Who wrote book {i}?", "answer": f"Author {i} wrote it."} for i in range(4)]
    (folder / "forget01.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    perturbed = [{**r, "paraphrased_answer": f"It was written by Author {i}.",
                  "paraphrased_question": f"Whose is book {i}?",
                  "perturbed_answer": [f"It was written by Author {j}." for j in range(4) if j != i]}
                 for i, r in enumerate(rows)]
    (folder / "forget01_perturbed.json").write_text("".join(json.dumps(r) + "\n" for r in perturbed))
    (folder / "real_authors_perturbed.json").write_text(json.dumps(
        [{"question": "Who wrote Hamlet?", "answer": "William Shakespeare",
          "perturbed_answer": ["Jane Austen", "Mark Twain", "Leo Tolstoy"]}]))
    (folder / "idontknow.jsonl").write_text("I'm not certain about that.\nI don't have that information.\n")


def test_loader_reads_tofus_files(tmp_path):
    _write_tofu_folder(tmp_path)
    data = lm.load_tofu(tmp_path)
    assert set(data.splits) == {"forget01", "forget01_perturbed", "real_authors_perturbed"}
    assert data.split("forget01")[2].answer == "Author 2 wrote it."
    assert data.split("forget01")[2].perturbed_answer == ()
    assert data.split("real_authors_perturbed")[0].perturbed_answer == ("Jane Austen", "Mark Twain", "Leo Tolstoy")
    assert data.refusals == ("I'm not certain about that.", "I don't have that information.")
    evaluated = data.evaluation_split("forget01")  # TOFU's *_perturbed copy holds the paraphrases
    assert evaluated[1].paraphrased_answer == "It was written by Author 1." and len(evaluated[1].perturbed_answer) == 3
    assert lm.load_tofu(tmp_path).hash == data.hash
    (tmp_path / "forget01.json").write_text((tmp_path / "forget01.json").read_text().replace("book 3", "book 9"))
    assert lm.load_tofu(tmp_path).hash != data.hash


def test_written_generated_data_reads_back_identically(tmp_path):
    data = lm.generate("tofu-mini-xs", 3, authors=10, qa_per_author=3)
    data.write(tmp_path)
    back = lm.load_tofu(tmp_path)
    assert dict(back.splits) == dict(data.splits)
    assert back.refusals == data.refusals and back.authors == data.authors


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(UnlearnlabError, match="No TOFU data folder"):
        lm.load_tofu(tmp_path / "missing")
    with pytest.raises(UnlearnlabError, match="no .json or .jsonl split file"):
        lm.load_tofu(tmp_path)
    (tmp_path / "forget10.json").write_text('{"question": "Q?", "answer": "A."}\n{"question": "Q2?"}\n')
    with pytest.raises(UnlearnlabError, match=r"forget10.json, line 2.*'answer'"):
        lm.load_tofu(tmp_path)
    (tmp_path / "forget10.json").write_text('{"question": "Q?", "answer": "A."}\nnot json\n')
    with pytest.raises(UnlearnlabError, match="line 2: not a JSON record"):
        lm.load_tofu(tmp_path)
    (tmp_path / "forget10.json").write_text('{"question": "Q?", "answer": "A."}\n')
    data = lm.load_tofu(tmp_path)
    with pytest.raises(UnlearnlabError, match="forget10_perturbed.json"):
        data.evaluation_split("forget10")
    with pytest.raises(UnlearnlabError, match=r"Unknown split 'full'.*Known splits: forget10"):
        data.split("full")
    (tmp_path / "full.json").write_text('{"question": "Q?", "answer": "A."}\n')
    with pytest.raises(UnlearnlabError, match="does not name the author"):
        lm.make_task(lm.load_tofu(tmp_path), None, ["Someone"])
