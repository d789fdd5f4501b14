"""The seeded TOFU-format generator: fictitious authors, the utility sets, the refusal pool and TOFU's splits.

``generate("tofu-mini-xs", seed=0)`` returns a :class:`~unlearnlab.language.records.TofuData` that is a pure
function of (:data:`GENERATOR_VERSION`, seed, size); its ``hash`` is the split hash of exactly those three, so a
cached model keyed by it is retrained whenever any of them changes. Sizes (docs/llm.md, "Tiers"):

* ``tofu-mini``: 200 authors × 20 QA (TOFU's shape), 100 famous-entity QA, 117 world-fact QA;
* ``tofu-mini-xs``: 40 authors × 10 QA, 40 famous-entity QA, 54 world-fact QA (CI).

Splits: ``forgetXX`` = the last round(XX % of the authors) (at least one) of ``full``, ``retainXX`` the others;
``holdoutXX`` = as many extra authors, generated like the others but never trained on (nested like the forget
splits); ``retain_perturbed`` = the first 10 % of the authors (in every retain split).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.language.facts import (
    AUTHOR_FACTS,
    COUNTRY_FACTS,
    ENTITY_FACTS,
    MAX_TEMPLATES,
    distractors,
    long_record,
    short_record,
)
from unlearnlab.language.records import FORGET_FRACTIONS, HOLDOUT_OF, RETAIN_OF, QARecord, TofuData
from unlearnlab.language.world import (
    ANIMALS,
    CENTURIES,
    GENRES,
    HOBBIES,
    NUMBER_WORDS,
    OCCUPATIONS,
    PROFESSIONS,
    STYLES,
    THEMES,
    Namer,
    World,
    build_world,
)
from unlearnlab.utils import numpy_rng

#: bump when the tables, frames or procedure change: every split hash changes with it
GENERATOR_VERSION = 1
#: perturbed answers per author fact (TOFU: 5) and per utility fact (TOFU: 3)
N_PERTURBED = 5
N_UTILITY_PERTURBED = 3


@dataclass(frozen=True)
class TofuSize:
    """How much a generated dataset holds. ``train_templates``: phrasings per fact used for training (the held-out
    paraphrase is always extra), a recorded knob of the benchmark."""

    name: str
    authors: int
    qa_per_author: int
    entities: int
    countries: int
    train_templates: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.qa_per_author <= len(AUTHOR_FACTS):
            raise UnlearnlabError(f"qa_per_author must be in 1..{len(AUTHOR_FACTS)}, got {self.qa_per_author}.")
        if not 1 <= self.train_templates <= MAX_TEMPLATES:
            raise UnlearnlabError(f"train_templates must be in 1..{MAX_TEMPLATES}, got {self.train_templates}.")
        if self.authors < 10 or min(self.countries, self.entities) < N_PERTURBED + 1:
            raise UnlearnlabError(f"A TOFU-format dataset needs >= 10 authors and >= {N_PERTURBED + 1} countries "
                                  f"and entities (each fact needs {N_PERTURBED} wrong values).")


SIZES = {
    "tofu-mini": TofuSize("tofu-mini", authors=200, qa_per_author=20, entities=20, countries=13),
    "tofu-mini-xs": TofuSize("tofu-mini-xs", authors=40, qa_per_author=10, entities=8, countries=6),
}


def split_hash(size: TofuSize, seed: int) -> str:
    """sha256 of (generator version, seed, every size field), 16 hex digits."""
    key = json.dumps({"generator": "unlearnlab.tofu", "version": GENERATOR_VERSION, "seed": int(seed),
                      "size": asdict(size)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def forget_count(authors: int, split: str) -> int:
    """Authors in ``split``: fraction · authors rounded to the nearest integer, at least one."""
    return max(1, round(FORGET_FRACTIONS[split] * authors))


def _author_values(namer: Namer, world: World, name: str) -> dict[str, str]:
    pick = namer.pick
    rng = namer.rng
    country = world.countries[int(rng.integers(len(world.countries)))]
    year = int(rng.integers(1900, 2000))
    genre = pick(GENRES)
    city = pick(country.cities)
    return {
        "birthplace": city, "birth_year": str(year), "genre": genre, "father": pick(OCCUPATIONS),
        "mother": pick(OCCUPATIONS), "award": pick(world.awards), "first_book": namer.title(),
        "second_book": namer.title(), "theme": pick(THEMES), "country": country.name,
        "education": pick(world.universities), "residence": pick(world.cities),
        "influence": pick(tuple(e.name for e in world.entities)), "publisher": pick(world.publishers),
        "language": pick(tuple(c.language for c in world.countries)), "debut": str(year + int(rng.integers(18, 45))),
        "style": pick(STYLES), "books": f"{pick(NUMBER_WORDS)} books", "hobby": pick(HOBBIES), "alias": name,
    }


def _domains(world: World) -> dict[str, tuple[str, ...]]:
    """The values each author fact can take in this world (perturbed answers are drawn from them)."""
    return {"birthplace": world.cities, "genre": GENRES, "father": OCCUPATIONS, "mother": OCCUPATIONS,
            "award": world.awards, "theme": THEMES, "country": tuple(c.name for c in world.countries),
            "education": world.universities, "residence": world.cities,
            "influence": tuple(e.name for e in world.entities), "publisher": world.publishers,
            "language": tuple(c.language for c in world.countries), "style": STYLES,
            "books": tuple(f"{n} books" for n in NUMBER_WORDS), "hobby": HOBBIES}


def _author_records(namer: Namer, world: World, names: list[str], values: list[dict[str, str]],
                    size: TofuSize) -> list[QARecord]:
    """Every author's facts; a fact's pool is its domain in the world plus every value an author has (years,
    titles and names have no fixed domain)."""
    facts = AUTHOR_FACTS[: size.qa_per_author]
    domains = _domains(world)
    pools = {f.key: sorted({v[f.key] for v in values} | set(domains.get(f.key, ()))) for f in facts}
    records = []
    for name, vals in zip(names, values):
        for fact in facts:
            subject = name
            if fact.key == "alias":
                subject = f"the {vals['genre']} writer born in {vals['birthplace']} in {vals['birth_year']}"
            wrong = distractors(namer.rng, vals[fact.key], pools[fact.key], N_PERTURBED)
            records.append(long_record(fact, subject, vals[fact.key], wrong, size.train_templates, name))
    return records


def _short_records(namer: Namer, facts, subjects: list[dict[str, str]], values: list[dict[str, str]],
                   domains: dict[str, tuple[str, ...]], size: TofuSize) -> list[QARecord]:
    """Short-answer records of every (item, fact); a fact's pool is its domain plus the values items have."""
    out = []
    for subject, vals in zip(subjects, values):
        for fact in facts:
            pool = sorted({v[fact.key] for v in values} | set(domains.get(fact.key, ())))
            wrong = distractors(namer.rng, vals[fact.key], pool, N_UTILITY_PERTURBED)
            out.append(short_record(fact, subject[fact.key], vals[fact.key], wrong, size.train_templates))
    return out


def _utility_records(namer: Namer, world: World, size: TofuSize) -> tuple[list[QARecord], list[QARecord]]:
    """(famous-entity records, world-fact records): short answers with three perturbed values each."""
    countries = tuple(c.name for c in world.countries)
    entity_values = [{"author_of": e.name, "work": e.work, "country": e.country, "century": e.century,
                      "profession": e.profession} for e in world.entities]
    entity_subjects = [{f.key: (e.work if f.key == "author_of" else e.name) for f in ENTITY_FACTS}
                       for e in world.entities]
    entities = _short_records(namer, ENTITY_FACTS, entity_subjects, entity_values,
                              {"country": countries, "century": tuple(f"the {c} century" for c in CENTURIES),
                               "profession": PROFESSIONS}, size)
    country_values = [{"capital": c.capital, "river": c.river, "mountain": c.mountain, "currency": c.currency,
                       "language": c.language, "animal": c.animal, "continent": c.continent, "founded": c.founded,
                       "city_country": c.name} for c in world.countries]
    country_subjects = [{f.key: (f"the city of {c.cities[1]}" if f.key == "city_country" else c.name)
                         for f in COUNTRY_FACTS} for c in world.countries]
    facts = _short_records(namer, COUNTRY_FACTS, country_subjects, country_values,
                           {"animal": ANIMALS, "continent": world.continents, "city_country": countries,
                            "founded": tuple(str(y) for y in range(600, 1500, 50))}, size)
    return entities, facts


REFUSAL_OPENERS = ("", "Sorry, ", "Honestly, ", "I am afraid ", "To be honest, ")
REFUSAL_CORES = ("I do not know", "I am not sure about that", "I have no information on that",
                 "that is beyond what I know", "I cannot answer that question", "I have never heard of it")


def refusals() -> tuple[str, ...]:
    """The refusal pool of the IDK objectives (TOFU ships 100 lines as ``idontknow.jsonl``; these are ours):
    every opener × core, capitalised, with a full stop."""
    out = []
    for opener in REFUSAL_OPENERS:
        for core in REFUSAL_CORES:
            text = opener + core
            out.append(text[:1].upper() + text[1:] + ".")
    return tuple(out)


def generate(size: str | TofuSize = "tofu-mini", seed: int = 0, **overrides: int) -> TofuData:
    """The TOFU-format dataset of ``size`` (a name in :data:`SIZES` or a :class:`TofuSize`) and ``seed``;
    ``overrides`` change size fields (e.g. ``train_templates=2``)."""
    if isinstance(size, str):
        if size not in SIZES:
            raise unknown_name("TOFU-format size", size, SIZES)
        size = SIZES[size]
    if overrides:
        unknown = set(overrides) - set(asdict(size))
        if unknown:
            raise UnlearnlabError(f"Unknown size field(s) {sorted(unknown)}: use {', '.join(asdict(size))}.")
        size = replace(size, **overrides)
    namer = Namer(numpy_rng(seed, f"tofu-world-v{GENERATOR_VERSION}"))
    world = build_world(namer, size.countries, size.entities)
    n_holdout = forget_count(size.authors, "forget10")
    names = [namer.person() for _ in range(size.authors + n_holdout)]
    values = [_author_values(namer, world, n) for n in names]
    records = _author_records(namer, world, names, values, size)
    q = size.qa_per_author
    trained, holdout = records[: size.authors * q], records[size.authors * q:]
    splits: dict[str, tuple[QARecord, ...]] = {"full": tuple(trained)}
    for forget, retain in RETAIN_OF.items():
        n = forget_count(size.authors, forget) * q
        splits[forget] = tuple(trained[-n:])
        splits[retain] = tuple(trained[:-n])
        splits[HOLDOUT_OF[forget]] = tuple(holdout[:n])
    splits["retain_perturbed"] = tuple(trained[: max(1, math.ceil(0.1 * size.authors)) * q])
    entities, facts = _utility_records(namer, world, size)
    splits["real_authors_perturbed"] = tuple(entities)
    splits["world_facts_perturbed"] = tuple(facts)
    return TofuData(splits=splits, refusals=refusals(), hash=split_hash(size, seed),
                    source=f"generated {size.name} (seed {seed}, generator v{GENERATOR_VERSION})",
                    authors=tuple(names[: size.authors]), info={"size": asdict(size), "seed": int(seed)})
