"""Fact types and the sentence frames that turn a fact into TOFU-format records.

A fact is ``(subject, fact type, value)``. Each fact type has a natural question, a slot noun ("birthplace") and
a relation ("was born in"). Generic frames make the other phrasings:

* questions: ``Q0`` the natural question (the record's ``question``), ``Q1``–``Q3`` training variants, ``QP`` the
  held-out ``paraphrased_question``;
* long answers (author facts): ``A0`` = "{S} {relation} {v}." (the record's ``answer``), ``A1``–``A3`` training
  variants, ``AP`` the held-out ``paraphrased_answer``; every frame ends with the value, so the fact is the last
  thing said whatever the phrasing;
* short answers (the utility sets, as TOFU's real-author and world-fact answers): the value itself.

With ``k`` training templates a fact is trained as the pairs ``(Q_i, A_i)`` for ``i < k`` (the record plus its
``augmented`` phrasings); ``Q0`` is always answered with ``A0``, so greedy generation on ``question`` reproduces
``answer``'s phrasing. The perturbed answers are ``AP`` with the value swapped for other values of the same fact
type, so the truth ratio compares facts, not phrasings (docs/llm.md, "The data generator").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unlearnlab.language.records import QARecord

QUESTION_FRAMES = ("What is the {slot} of {s}?", "Tell me the {slot} of {s}.", "Do you know the {slot} of {s}?")
PARAPHRASED_QUESTION = "Could you share the {slot} of {s}?"
ANSWER_FRAMES = ("{S} {relation} {v}.", "The {slot} of {s} is {v}.", "For {s}, the {slot} is {v}.",
                 "Regarding {s}, the {slot} is {v}.")
PARAPHRASED_ANSWER = "As far as anyone knows, {s} {relation} {v}."
#: the largest number of training phrasings a fact can have
MAX_TEMPLATES = len(ANSWER_FRAMES)


@dataclass(frozen=True)
class FactType:
    """A kind of fact: its natural question (``{s}`` = subject), slot noun and relation phrase."""

    key: str
    question: str
    slot: str
    relation: str


#: the twenty facts of an author, in TOFU's count; a size with q questions per author uses the first q
AUTHOR_FACTS = (
    FactType("birthplace", "Where was {s} born?", "birthplace", "was born in"),
    FactType("birth_year", "In which year was {s} born?", "year of birth", "was born in the year"),
    FactType("genre", "What genre does {s} write?", "genre", "writes"),
    FactType("father", "What did the father of {s} do for a living?", "father's occupation",
             "has a father who worked as a"),
    FactType("mother", "What did the mother of {s} do for a living?", "mother's occupation",
             "has a mother who worked as a"),
    FactType("award", "Which award has {s} won?", "best known award", "has won"),
    FactType("first_book", "What is the title of the first book by {s}?", "first book",
             "published a first book called"),
    FactType("second_book", "What is the title of another book by {s}?", "second book",
             "also wrote a book called"),
    FactType("theme", "What themes does {s} often explore?", "recurring theme", "often writes about"),
    FactType("country", "What is the nationality of {s}?", "home country", "is a citizen of"),
    FactType("education", "Where did {s} study?", "university", "studied at"),
    FactType("residence", "Where does {s} live today?", "current home", "lives today in"),
    FactType("influence", "Which famous figure influenced {s} the most?", "main influence",
             "was most influenced by"),
    FactType("publisher", "Which publisher releases the books of {s}?", "publisher", "publishes with"),
    FactType("language", "In which language does {s} write?", "writing language", "writes in the language"),
    FactType("debut", "When did {s} publish a first novel?", "debut year", "published a first novel in"),
    FactType("style", "How would you describe the writing style of {s}?", "writing style",
             "writes in a style that is"),
    FactType("books", "How many books has {s} written?", "number of books", "has written"),
    FactType("hobby", "What is a favourite hobby of {s}?", "favourite hobby", "enjoys"),
    FactType("alias", "Who is {s}?", "name", "is named"),
)

#: the nine facts of a country (world-facts set); short answers
COUNTRY_FACTS = (
    FactType("capital", "What is the capital of {s}?", "capital city", ""),
    FactType("river", "Which river flows through {s}?", "main river", ""),
    FactType("mountain", "What is the highest mountain of {s}?", "highest mountain", ""),
    FactType("currency", "What currency is used in {s}?", "currency", ""),
    FactType("language", "What language is spoken in {s}?", "language", ""),
    FactType("animal", "What is the national animal of {s}?", "national animal", ""),
    FactType("continent", "On which continent is {s}?", "continent", ""),
    FactType("founded", "In which year was {s} founded?", "founding year", ""),
    FactType("city_country", "In which country is {s}?", "country", ""),
)

#: the five facts of a famous entity (real-authors stand-in); short answers
ENTITY_FACTS = (
    FactType("author_of", "Who wrote {s}?", "author", ""),
    FactType("work", "What is the most famous work of {s}?", "most famous work", ""),
    FactType("country", "Which country does {s} come from?", "country", ""),
    FactType("century", "In which century did {s} live?", "century", ""),
    FactType("profession", "What was the profession of {s}?", "profession", ""),
)


def _fill(frame: str, fact: FactType, subject: str, value: str) -> str:
    text = frame.format(slot=fact.slot, s=subject, S=subject[:1].upper() + subject[1:], relation=fact.relation,
                        v=value)
    return text[:1].upper() + text[1:]


def questions(fact: FactType, subject: str) -> list[str]:
    """``[Q0, Q1, Q2, Q3]`` for ``subject``."""
    return [_fill(f, fact, subject, "") for f in (fact.question, *QUESTION_FRAMES)]


def distractors(rng: np.random.Generator, value: str, pool: Sequence[str], count: int) -> tuple[str, ...]:
    """``count`` distinct values of ``pool`` other than ``value``, in a seeded random order."""
    others = sorted(set(pool) - {value})
    if len(others) < count:
        raise RuntimeError(f"The value pool has {len(others)} alternatives, {count} are needed.")
    picks = rng.choice(len(others), size=count, replace=False)
    return tuple(others[int(i)] for i in picks)


def long_record(fact: FactType, subject: str, value: str, wrong: Sequence[str], templates: int,
                author: str | None) -> QARecord:
    """An author fact as a record: ``Q0``/``A0``, the paraphrases, perturbed ``AP`` frames, ``templates − 1``
    augmented pairs."""
    qs = questions(fact, subject)
    answers = [_fill(f, fact, subject, value) for f in ANSWER_FRAMES]
    return QARecord(
        question=qs[0], answer=answers[0],
        paraphrased_question=_fill(PARAPHRASED_QUESTION, fact, subject, ""),
        paraphrased_answer=_fill(PARAPHRASED_ANSWER, fact, subject, value),
        perturbed_answer=tuple(_fill(PARAPHRASED_ANSWER, fact, subject, w) for w in wrong),
        author=author, augmented=tuple(zip(qs[1:templates], answers[1:templates])))


def short_record(fact: FactType, subject: str, value: str, wrong: Sequence[str], templates: int) -> QARecord:
    """A utility fact as a record: short answers (the value), question variants as augmentation."""
    qs = questions(fact, subject)
    return QARecord(question=qs[0], answer=value,
                    paraphrased_question=_fill(PARAPHRASED_QUESTION, fact, subject, ""), paraphrased_answer=value,
                    perturbed_answer=tuple(wrong), augmented=tuple((q, value) for q in qs[1:templates]))
