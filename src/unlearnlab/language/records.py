"""TOFU's record schema and split names, and :class:`TofuData`, the splits of one TOFU-format dataset.

A record has TOFU's keys: ``question``, ``answer``, ``paraphrased_question``, ``paraphrased_answer`` and
``perturbed_answer`` (a list: the paraphrased answer's sentence frame with the fact swapped). Generated records
also carry ``author`` (whose fact it is) and ``augmented`` (extra training phrasings of the same fact as
``[question, answer]`` pairs); both are empty for records read from TOFU's own files and are written only when
present. Split names are TOFU's (docs/llm.md, "Splits"):

* ``full`` — every trained author; ``forget01``/``forget05``/``forget10`` — the last 1/5/10 % of them;
  ``retain99``/``retain95``/``retain90`` — the rest; ``holdout01``/``holdout05``/``holdout10`` — authors nobody
  trains on (membership attacks); ``retain_perturbed`` — retain questions for evaluation;
* ``real_authors_perturbed`` and ``world_facts_perturbed`` — the stage-1 utility sets (for generated data: the
  world's famous entities and facts, stand-ins for TOFU's real authors and world facts);
* ``<split>_perturbed`` — TOFU's evaluation copy of a split (e.g. ``forget10_perturbed``), used when present.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unlearnlab.errors import UnknownNameError, UnlearnlabError, unknown_name
from unlearnlab.utils import atomic_write_text

FORGET_SPLITS = ("forget01", "forget05", "forget10")
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
HOLDOUT_OF = {"forget01": "holdout01", "forget05": "holdout05", "forget10": "holdout10"}
UTILITY_SPLITS = ("real_authors_perturbed", "world_facts_perturbed")
#: every split a generated dataset holds, in TOFU's naming
SPLITS = ("full", *FORGET_SPLITS, *RETAIN_OF.values(), *HOLDOUT_OF.values(), "retain_perturbed", *UTILITY_SPLITS)
#: the fraction of authors behind each forget split
FORGET_FRACTIONS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}


@dataclass(frozen=True)
class QARecord:
    """One question-answer pair in TOFU's schema (plus the generator's ``author`` and ``augmented``)."""

    question: str
    answer: str
    paraphrased_question: str | None = None
    paraphrased_answer: str | None = None
    perturbed_answer: tuple[str, ...] = ()
    author: str | None = None
    augmented: tuple[tuple[str, str], ...] = ()

    def training_pairs(self) -> list[tuple[str, str]]:
        """The (question, answer) texts a model is trained on: the record itself, then its augmented phrasings."""
        return [(self.question, self.answer), *self.augmented]

    def to_json(self) -> dict:
        """TOFU's keys (those present), then ``author``/``augmented`` when the generator set them."""
        out: dict = {"question": self.question, "answer": self.answer}
        if self.paraphrased_question is not None:
            out["paraphrased_question"] = self.paraphrased_question
        if self.paraphrased_answer is not None:
            out["paraphrased_answer"] = self.paraphrased_answer
        if self.perturbed_answer:
            out["perturbed_answer"] = list(self.perturbed_answer)
        if self.author is not None:
            out["author"] = self.author
        if self.augmented:
            out["augmented"] = [list(p) for p in self.augmented]
        return out

    @classmethod
    def from_json(cls, row: Mapping, where: str) -> QARecord:
        """A record from one JSON object; ``where`` (file and line) names it in errors."""
        if not isinstance(row, Mapping):
            raise UnlearnlabError(f"{where}: expected a JSON object with 'question' and 'answer', got "
                                  f"{type(row).__name__}.")
        missing = [k for k in ("question", "answer") if not isinstance(row.get(k), str)]
        if missing:
            raise UnlearnlabError(f"{where}: the record has no text under {missing}: TOFU records need 'question' "
                                  "and 'answer' strings.")
        perturbed = row.get("perturbed_answer", ())
        if isinstance(perturbed, str):
            perturbed = (perturbed,)
        if not all(isinstance(p, str) for p in perturbed):
            raise UnlearnlabError(f"{where}: 'perturbed_answer' must be a string or a list of strings.")
        augmented = tuple((str(q), str(a)) for q, a in row.get("augmented", ()))
        return cls(row["question"], row["answer"], row.get("paraphrased_question"), row.get("paraphrased_answer"),
                   tuple(perturbed), row.get("author"), augmented)


@dataclass(frozen=True)
class TofuData:
    """The splits of one TOFU-format dataset, its refusal pool, and a hash of what produced it.

    ``hash`` is the generator's split hash (generator version, seed, sizes) or, for files read from a folder,
    the hash of their contents. ``authors`` lists the trained authors in ``full``'s order when known.
    """

    splits: Mapping[str, tuple[QARecord, ...]]
    refusals: tuple[str, ...]
    hash: str
    source: str
    authors: tuple[str, ...] = ()
    info: Mapping[str, object] = field(default_factory=dict)

    def split(self, name: str) -> tuple[QARecord, ...]:
        """The records of split ``name``; an unknown name is an error listing the splits this data has."""
        if name not in self.splits:
            raise UnknownNameError(f"{unknown_name('split', name, self.splits)} (data: {self.source})")
        return self.splits[name]

    def evaluation_split(self, name: str) -> tuple[QARecord, ...]:
        """``<name>_perturbed`` when the data has it (TOFU's files), else ``name`` (generated splits carry every
        field); the records must have paraphrased and perturbed answers."""
        records = self.splits.get(f"{name}_perturbed") or self.split(name)
        bad = next((i for i, r in enumerate(records) if r.paraphrased_answer is None or not r.perturbed_answer), None)
        if bad is not None:
            raise UnlearnlabError(
                f"Record {bad} of split {name!r} in {self.source} has no paraphrased or perturbed answer: the truth "
                f"ratio needs them. Provide {name}_perturbed.json (TOFU's evaluation file) in the data folder.")
        return records

    def author_records(self, names: Iterable[str], split: str = "full") -> tuple[QARecord, ...]:
        """The records of ``split`` about the authors ``names``; unknown names are an error with suggestions."""
        records = self.split(split)
        known = {r.author for r in records if r.author is not None}
        if not known:
            raise UnlearnlabError(f"{self.source} does not name the author of each record: choose a forget split "
                                  f"({', '.join(FORGET_SPLITS)}) instead of an author list.")
        names = list(names)
        for name in names:
            if name not in known:
                raise unknown_name(f"author in {split}", name, known)
        wanted = set(names)
        return tuple(r for r in records if r.author in wanted)

    def write(self, folder: str | Path) -> None:
        """Write every split as TOFU's JSON-lines files (``<split>.json``) and the refusal pool as
        ``idontknow.jsonl`` (one refusal per line), each atomically; :func:`unlearnlab.language.load_tofu` reads
        the folder back."""
        folder = Path(folder)
        for name, records in self.splits.items():
            atomic_write_text(folder / f"{name}.json",
                              "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records))
        atomic_write_text(folder / "idontknow.jsonl", "".join(f"{r}\n" for r in self.refusals))


def check_forget_split(name: str) -> None:
    if name not in FORGET_SPLITS:
        raise unknown_name("forget split", name, FORGET_SPLITS)


def records_text(records: Sequence[QARecord]) -> list[str]:
    """Every string of ``records`` (questions, answers, paraphrases, perturbations, augmented phrasings)."""
    out: list[str] = []
    for r in records:
        out += [r.question, r.answer, *r.perturbed_answer]
        out += [t for t in (r.paraphrased_question, r.paraphrased_answer) if t is not None]
        out += [t for pair in r.augmented for t in pair]
    return out
