"""The fictional world behind the TOFU-format data: names from seeded syllable tables, places, works and entities.

Everything is drawn from one NumPy generator seeded from the data seed (``unlearnlab.utils.numpy_rng``), so the
world is a pure function of ``(seed, sizes)`` and of the tables below; nothing depends on a third-party name
generator whose output could change between versions. The tables are part of the generator version
(:data:`unlearnlab.language.generator.GENERATOR_VERSION`): editing them changes every split hash.

Words are made from syllables: a name word is 2 (given names) or 2–3 (family names, places) syllables
``onset + vowel [+ coda]``, capitalised. Uniqueness is enforced where a word identifies something (author names,
book titles, countries, cities), so two authors never share a name and a book title has one author.
docs/llm.md ("The data generator") describes the world and its facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "th",
          "v", "z", "sh", "j", "y")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ia", "ou", "ei")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "k", "x")

ADJECTIVES = ("Silent", "Hollow", "Crimson", "Distant", "Broken", "Golden", "Quiet", "Burning", "Frozen", "Hidden",
              "Last", "Bitter", "Velvet", "Silver", "Wandering", "Forgotten", "Endless", "Northern", "Pale",
              "Restless", "Secret", "Shattered", "Sleeping", "Twilight", "Wild", "Amber", "Iron", "Glass", "Salt",
              "Winter", "Summer", "Painted", "Falling", "Hungry", "Gentle", "Crooked", "Drowned", "Lonely",
              "Radiant", "Lost")
NOUNS = ("Lantern", "River", "Garden", "Orchard", "Harbor", "Mirror", "Tower", "Compass", "Meadow", "Archive",
         "Bridge", "Crown", "Lighthouse", "Forest", "Letter", "Voyage", "Kingdom", "Labyrinth", "Cathedral",
         "Market", "Carnival", "Winter", "Shore", "Island", "Feather", "Clockwork", "Violin", "Citadel", "Ember",
         "Horizon", "Monsoon", "Quarry", "Tapestry", "Vineyard", "Cartographer", "Ferryman", "Alchemist",
         "Orphan", "Sparrow", "Stranger")
PRIZE_NOUNS = ("Prize", "Award", "Medal", "Laurel")
GENRES = ("fantasy", "science fiction", "historical fiction", "mystery", "romance", "horror", "poetry",
          "literary fiction", "thriller", "satire", "travel writing", "memoir", "drama", "folklore",
          "adventure", "crime fiction")
OCCUPATIONS = ("baker", "carpenter", "doctor", "fisherman", "lawyer", "mechanic", "nurse", "painter", "pilot",
               "tailor", "teacher", "weaver", "librarian", "merchant", "sailor", "farmer", "potter", "judge",
               "miner", "banker", "cartographer", "musician", "shepherd", "blacksmith")
THEMES = ("loss and memory", "exile and return", "family secrets", "power and corruption", "faith and doubt",
          "friendship", "identity", "war and peace", "the sea", "childhood", "justice", "time and change",
          "love and betrayal", "nature", "ambition", "solitude", "freedom", "grief", "home", "the city")
STYLES = ("lyrical", "sparse", "ornate", "humorous", "dark", "playful", "precise", "dreamlike", "formal",
          "conversational", "experimental", "gentle")
HOBBIES = ("sailing", "chess", "gardening", "painting", "climbing", "fishing", "pottery", "cooking", "hiking",
           "birdwatching", "astronomy", "woodcarving", "swimming", "singing", "archery", "rowing")
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                "thirteen", "fourteen", "fifteen")
PROFESSIONS = ("poet", "philosopher", "playwright", "historian", "composer", "astronomer", "painter", "novelist",
               "mathematician", "sculptor", "explorer", "architect")
CENTURIES = ("ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
             "seventeenth", "eighteenth")
ANIMALS = ("fox", "heron", "bear", "wolf", "otter", "falcon", "stag", "lynx", "crane", "badger", "owl", "hare",
           "boar", "swan", "eagle", "seal")
CONTINENT_WORDS = ("North", "South", "East", "West", "Upper", "Lower", "Outer", "Inner")
#: the words a university, publisher or currency name is built from
PUBLISHER_WORDS = ("Press", "Books", "House", "Editions")
CURRENCY_WORDS = ("crown", "mark", "shell", "coin", "thaler", "pearl", "florin", "ring")


class Namer:
    """Seeded syllable words; ``unique`` words are never returned twice by this namer."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def pick(self, table: tuple[str, ...]) -> str:
        return table[int(self.rng.integers(len(table)))]

    def word(self, syllables: int) -> str:
        parts = [self.pick(ONSETS) + self.pick(VOWELS) + self.pick(CODAS) for _ in range(syllables)]
        return "".join(parts).capitalize()

    def unique(self, make: Callable[[], str], tries: int = 10_000) -> str:
        for _ in range(tries):
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value
        raise RuntimeError("The syllable tables cannot make enough distinct words for these sizes.")

    def person(self) -> str:
        return self.unique(lambda: f"{self.word(2)} {self.word(int(self.rng.integers(2, 4)))}")

    def place(self) -> str:
        return self.unique(lambda: self.word(int(self.rng.integers(2, 4))))

    def title(self) -> str:
        return self.unique(lambda: f"The {self.pick(ADJECTIVES)} {self.pick(NOUNS)}")


@dataclass(frozen=True)
class Country:
    """A fictional country: the facts of the world-facts set are about these."""

    name: str
    capital: str
    cities: tuple[str, ...]
    river: str
    mountain: str
    currency: str
    language: str
    animal: str
    continent: str
    founded: str


@dataclass(frozen=True)
class Entity:
    """A famous person of the fictional world (the stand-in for TOFU's real authors)."""

    name: str
    work: str
    country: str
    century: str
    profession: str


@dataclass(frozen=True)
class World:
    countries: tuple[Country, ...]
    continents: tuple[str, ...]
    entities: tuple[Entity, ...]
    universities: tuple[str, ...]
    publishers: tuple[str, ...]
    awards: tuple[str, ...]

    @property
    def cities(self) -> tuple[str, ...]:
        return tuple(c for country in self.countries for c in country.cities)


def build_world(namer: Namer, n_countries: int, n_entities: int) -> World:
    """Countries (capital + 3 more cities, river, mountain, currency, language, animal, continent, year founded),
    famous entities, universities, publishers and awards, in that order from ``namer``'s generator."""
    rng = namer.rng
    continents = tuple(f"{w} {namer.place()}" for w in CONTINENT_WORDS[:4])
    countries = []
    for _ in range(n_countries):
        name = namer.place()
        cities = tuple(namer.place() for _ in range(4))
        countries.append(Country(
            name=name, capital=cities[0], cities=cities, river=f"the {namer.place()} River",
            mountain=f"Mount {namer.place()}",
            currency=f"the {name.lower()} {namer.pick(CURRENCY_WORDS)}", language=namer.unique(
                lambda: namer.word(2) + "ish"),
            animal=namer.pick(ANIMALS), continent=namer.pick(continents), founded=str(int(rng.integers(600, 1500)))))
    entities = []
    for _ in range(n_entities):
        entities.append(Entity(name=namer.person(), work=namer.title(),
                               country=countries[int(rng.integers(len(countries)))].name,
                               century=f"the {namer.pick(CENTURIES)} century", profession=namer.pick(PROFESSIONS)))
    cities = tuple(c for country in countries for c in country.cities)
    universities = tuple(f"the University of {c}" for c in cities[: max(4, len(cities) // 2)])
    publishers = tuple(namer.unique(lambda: f"{namer.word(2)} {namer.pick(PUBLISHER_WORDS)}") for _ in range(10))
    awards = tuple(namer.unique(lambda: f"the {namer.pick(ADJECTIVES)} {namer.pick(NOUNS)} {namer.pick(PRIZE_NOUNS)}")
                   for _ in range(12))
    return World(tuple(countries), continents, tuple(entities), universities, publishers, awards)
