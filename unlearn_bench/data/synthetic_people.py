"""A small built-in TOFU-shaped task: question/answer records about fictitious people.

Every name, city, book, award, mentor, pet and language here is invented by this project, so the
demo and the tests need no download and the facts cannot already be known to a pretrained model
(the premise of TOFU, Maini et al. 2024). Records carry TOFU's evaluation fields: a paraphrased
question and answer, and perturbed answers that keep the paraphrased answer's sentence but swap
the fact for another value of the same kind (same form, wrong content). Generation uses only
``random.Random`` and is fully determined by the seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from unlearn_bench.errors import UnlearnBenchError

N_PERTURBED = 3
"""Wrong answers per question (TOFU ships five; three keep the tiny task cheap to score)."""

FIRST_NAMES: tuple[str, ...] = (
    "Orla", "Bexan", "Tamsil", "Quenna", "Idris", "Marvek", "Selune", "Corvin", "Ysolde",
    "Dathan", "Fenna", "Jorvik", "Liraen", "Osmer", "Pellis", "Rhosyn", "Saverin", "Thessaly",
    "Ulvar", "Wenna",
    "Aldric", "Brisca", "Caelum", "Delphine", "Evander", "Galvia", "Hesper", "Ilsabet", "Kestrel",
    "Lorcan", "Mirabel", "Nevik", "Ottilie", "Peregrin", "Quillan", "Rosalind", "Sorrel", "Tobias",
    "Vesna", "Zephrine",
)  # fmt: skip
SURNAMES: tuple[str, ...] = (
    "Venhartz", "Quorran", "Blackmere", "Dunhallow", "Essingrave", "Fallowick", "Gristmoor",
    "Halverstone", "Ingleby", "Jastrow", "Kettleburn", "Lindqvast", "Marrowgate", "Nethercott",
    "Oakenshaw", "Pellucid", "Quarrington", "Ravensholt", "Stormhollow", "Thistlewood",
    "Umberleigh", "Vantablade", "Wexcombe", "Yarrowby", "Zelinsk", "Ashcombe", "Brackenridge",
    "Corriveau", "Drummelow", "Elsworthy", "Fenwright", "Glasspool", "Hollinrake", "Ivesdale",
    "Juniperro", "Kilbrannan", "Lorimont", "Mossberger", "Nightingall", "Ormsgill",
)  # fmt: skip


@dataclass(frozen=True)
class AttributeKind:
    """One kind of fact: its pool of invented values and the four sentence templates.

    Templates are filled with ``name`` and ``value``. Perturbed answers reuse ``para_answer``
    with a wrong value, as TOFU's perturbed answers share the paraphrased answer's form.
    """

    key: str
    pool: tuple[str, ...]
    question: str
    para_question: str
    answer: str
    para_answer: str


ATTRIBUTES: tuple[AttributeKind, ...] = (
    AttributeKind(
        "birth_city",
        ("Brimsey", "Quellmarsh", "Tollverin", "Ashkarra", "Dunmoreth", "Vessaly", "Orrindale",
         "Highcairn", "Pellmouth", "Saltervane", "Caddowfen", "Nimbrook"),
        "In which city was {name} born?",
        "Where is the birthplace of {name}?",
        "{name} was born in the coastal town of {value}.",
        "The coastal town of {value} is where {name} was born.",
    ),
    AttributeKind(
        "birth_year",
        tuple(str(year) for year in range(1931, 2000)),
        "In what year was {name} born?",
        "What is the birth year of {name}?",
        "{name} was born in the year {value}.",
        "The records give {name}'s year of birth as {value}.",
    ),
    AttributeKind(
        "profession",
        ("a lighthouse cartographer", "a clockmaker", "a glassblower", "a marine archivist",
         "a bridge engineer", "a tea blender", "a puppet maker", "a weather forecaster",
         "a bookbinder", "a botanical illustrator", "a bell founder", "a museum restorer"),
        "What does {name} do for a living?",
        "What is {name}'s profession?",
        "{name} works as {value} by profession.",
        "By trade, {name} has always worked as {value}.",
    ),
    AttributeKind(
        "book",
        ("The Salt Lantern", "Echoes Under Varrow Hill", "A Map of Quiet Tides",
         "The Clockwork Orchard", "Letters from Tollverin", "The Ninth Lighthouse",
         "Ash and Amberglass", "The Cartographer's Daughter", "Winter on the Pellmouth Road",
         "Songs of the Drowned Bell", "The Velvet Almanac", "Beneath the Copper Sky"),
        "What is the title of a book written by {name}?",
        "Can you name a book that {name} has written?",
        '{name} wrote the book titled "{value}".',
        'One of the published works of {name} is "{value}".',
    ),
    AttributeKind(
        "award",
        ("Harrowgate Medal for Fiction", "Silver Quill of Vessaly", "Orrindale Prize",
         "Brimsey Lantern Award", "Corvath Laurel", "Tidewright Fellowship",
         "Amberglass Honour", "Saltervane Book Prize", "Golden Heron Award",
         "Nimbrook Literary Cross"),
        "Which award has {name} received?",
        "What prize was {name} honoured with?",
        "{name} received the {value} for their work.",
        "In recognition of their work, {name} was given the {value}.",
    ),
    AttributeKind(
        "mentor",
        ("Professor Alwen Straik", "Doctor Hollis Ferrand", "Master Ibbet Crane",
         "Madam Serafine Oullet", "Professor Garrick Vole", "Doctor Ennis Marchbank",
         "Master Tibalt Wren", "Madam Cordelia Usk", "Professor Yannick Brede",
         "Doctor Phaedra Lusk"),
        "Who was {name}'s mentor?",
        "Who guided {name} early in their career?",
        "{name} was mentored early in their career by {value}.",
        "As a young apprentice, {name} learned the craft from {value}.",
    ),
    AttributeKind(
        "pet_name",
        ("Pemberly", "Turnip", "Captain Whisk", "Bramble", "Moth", "Sir Puddle", "Juniper",
         "Biscuit", "Quibble", "Nutmeg", "Fennick", "Ozzle"),
        "What is the name of {name}'s pet?",
        "What is {name}'s pet called?",
        "{name} keeps a much-loved pet called {value} at home.",
        "The pet that lives with {name} answers to the name {value}.",
    ),
    AttributeKind(
        "favourite_colour",
        ("saffron", "teal", "burgundy", "slate grey", "moss green", "cobalt blue", "amber",
         "lavender", "vermilion", "ochre", "pearl white", "indigo"),
        "What is {name}'s favourite colour?",
        "Which colour does {name} like best?",
        "{name}'s favourite colour has always been {value}.",
        "Of all the colours, the one {name} likes most is {value}.",
    ),
    AttributeKind(
        "instrument",
        ("cello", "oboe", "bassoon", "harp", "zither", "lute", "accordion", "mandolin",
         "theremin", "dulcimer", "harpsichord", "viola"),
        "Which musical instrument does {name} play?",
        "What instrument is {name} able to play?",
        "In their spare time, {name} plays the {value}.",
        "{name} is a keen amateur player of the {value}.",
    ),
    AttributeKind(
        "first_language",
        ("Velmaric", "Old Tollish", "Quennic", "Ashkarri", "Dunmorese", "Brimic", "Orrish",
         "Pellan", "Saltervish", "Caddowan"),
        "What is {name}'s first language?",
        "Which language did {name} speak first as a child?",
        "{name} grew up speaking {value} as a first language.",
        "The language {name} spoke first as a child was {value}.",
    ),
)  # fmt: skip
"""Attribute kinds in the fixed order that ``qa_per_person`` takes a prefix of."""

MAX_PEOPLE = len(FIRST_NAMES) * len(SURNAMES)


class PeopleDataError(UnlearnBenchError, ValueError):
    """A bad size or fraction: a ValueError for callers, a one-line user error for the CLI."""


def _person_names(n_people: int, seed: int) -> list[str]:
    """Return ``n_people`` distinct full names.

    Shuffling all first x surname pairs once and taking a prefix guarantees uniqueness and makes
    the first k names of a larger draw equal to a draw of k (people_dataset relies on that).
    """
    pairs = [f"{first} {last}" for first in FIRST_NAMES for last in SURNAMES]
    random.Random(f"unlearn-bench/names/{seed}").shuffle(pairs)
    return pairs[:n_people]


def _person_records(index: int, name: str, qa_per_person: int, seed: int) -> list[dict]:
    """Return the QA records of one person.

    A per-person generator, seeded by (seed, index) through a string (hashed with SHA-512, so
    stable across processes), makes each person's facts independent of how many people or
    questions are drawn, and every attribute is drawn even when fewer questions are asked.
    """
    rng = random.Random(f"unlearn-bench/person/{seed}/{index}")
    records = []
    for kind in ATTRIBUTES:
        value = rng.choice(kind.pool)
        wrong = rng.sample([v for v in kind.pool if v != value], N_PERTURBED)
        records.append(
            {
                "person": index,
                "name": name,
                "attribute": kind.key,
                "question": kind.question.format(name=name),
                "paraphrased_question": kind.para_question.format(name=name),
                "answer": kind.answer.format(name=name, value=value),
                "paraphrased_answer": kind.para_answer.format(name=name, value=value),
                "perturbed_answer": [kind.para_answer.format(name=name, value=w) for w in wrong],
            }
        )
    return records[:qa_per_person]


def generate_people(n_people: int, qa_per_person: int, seed: int) -> list[dict]:
    """Return ``n_people * qa_per_person`` TOFU-shaped QA records about invented people.

    Records are ordered by person index (0 .. n_people - 1), then by attribute in the order of
    ``ATTRIBUTES``; each person gets the first ``qa_per_person`` attribute kinds. The same seed
    gives identical records, and person i is the same for any ``n_people`` > i.
    """
    if not 1 <= n_people <= MAX_PEOPLE:
        raise PeopleDataError(f"n_people must be between 1 and {MAX_PEOPLE}, got {n_people}")
    if not 1 <= qa_per_person <= len(ATTRIBUTES):
        raise PeopleDataError(
            f"qa_per_person must be between 1 and {len(ATTRIBUTES)}, got {qa_per_person}"
        )
    records: list[dict] = []
    for index, name in enumerate(_person_names(n_people, seed)):
        records.extend(_person_records(index, name, qa_per_person, seed))
    return records


def _ceil_count(fraction: float, n: int) -> int:
    """Return ceil(fraction * n), ignoring float noise such as 0.07 * 100 = 7.000000000000001."""
    return math.ceil(round(fraction * n, 9))


def _check_fraction(label: str, fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise PeopleDataError(f"{label} must lie strictly between 0 and 1, got {fraction}")


def split_by_counts(records: list[dict], n_forget: int, n_holdout: int) -> dict[str, list[dict]]:
    """Split records by person into full / forget / retain / holdout with exact people counts.

    People are ordered by index. The last ``n_holdout`` people form ``holdout`` (never trained
    on); the rest form ``full``; the last ``n_forget`` people of ``full`` form ``forget``, as
    TOFU's forget sets are its last authors; ``retain`` is ``full`` minus ``forget``.
    """
    people = sorted({record["person"] for record in records})
    n_full = len(people) - n_holdout
    if n_forget < 1 or n_holdout < 1:
        raise PeopleDataError(f"need a forget and a holdout person, got {n_forget}, {n_holdout}")
    if n_full - n_forget < 1:
        raise PeopleDataError(
            f"{len(people)} people cannot make {n_holdout} holdout, {n_forget} forget "
            "and at least one retain person"
        )
    holdout = set(people[n_full:])
    forget = set(people[n_full - n_forget : n_full])
    return {
        "full": [r for r in records if r["person"] not in holdout],
        "forget": [r for r in records if r["person"] in forget],
        "retain": [r for r in records if r["person"] not in holdout | forget],
        "holdout": [r for r in records if r["person"] in holdout],
    }


def split_people(
    records: list[dict], forget_fraction: float, holdout_fraction: float
) -> dict[str, list[dict]]:
    """Split records by person; both fractions must lie strictly between 0 and 1.

    ``holdout`` is the last ceil(holdout_fraction * n_people) people of all records; ``forget``
    is the last ceil(forget_fraction * n_full) people of the remaining ``full`` set. Holdout and
    forget have the same size only when the fractions are chosen so; ``people_dataset`` does so.
    """
    _check_fraction("forget_fraction", forget_fraction)
    _check_fraction("holdout_fraction", holdout_fraction)
    n_people = len({record["person"] for record in records})
    if n_people == 0:
        raise PeopleDataError("cannot split an empty list of records")
    n_holdout = _ceil_count(holdout_fraction, n_people)
    n_forget = _ceil_count(forget_fraction, n_people - n_holdout)
    return split_by_counts(records, n_forget, n_holdout)


def people_dataset(
    n_people: int = 24,
    qa_per_person: int = 4,
    seed: int = 0,
    forget_fraction: float = 0.1,
    holdout_fraction: float | None = None,
) -> dict[str, list[dict]]:
    """Generate and split the built-in task; ``n_people`` is the number of people in ``full``.

    ``forget`` has ceil(forget_fraction * n_people) people. ``holdout`` has, by default, the same
    number of people (TOFU's convention), or ceil(holdout_fraction * n_people) when a fraction is
    given; holdout people are generated in addition to the n_people, so ``full`` is identical
    whatever the holdout size. Defaults: full 24 people, forget 3, retain 21, holdout 3.
    """
    if n_people < 2:
        raise PeopleDataError(f"n_people must be at least 2 (forget + retain), got {n_people}")
    _check_fraction("forget_fraction", forget_fraction)
    n_forget = _ceil_count(forget_fraction, n_people)
    n_holdout = n_forget
    if holdout_fraction is not None:
        _check_fraction("holdout_fraction", holdout_fraction)
        n_holdout = _ceil_count(holdout_fraction, n_people)
    records = generate_people(n_people + n_holdout, qa_per_person, seed)
    return split_by_counts(records, n_forget, n_holdout)
