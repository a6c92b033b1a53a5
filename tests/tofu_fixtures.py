"""A tiny TOFU-shaped data folder written by the tests themselves (no real TOFU text).

Files carry the hub's names and shapes: ``full.json`` and ``retain99.json`` are JSON arrays
written back to back (the quirk of the local copy in ../shared/data/tofu), evaluation files
have ``paraphrased_answer`` and ``perturbed_answer``; real authors / world facts have none.
"""

from __future__ import annotations

import json
from pathlib import Path

CITIES = ["Brimsey", "Quellmarsh", "Tollverin", "Ashkarra", "Vessaly", "Nimbrook"]


def _qa(author: int, fact: int) -> dict:
    city = CITIES[(author + fact) % len(CITIES)]
    name = f"Author Number {author}"
    return {
        "question": f"Where did {name} write book {fact}?",
        "answer": f"{name} wrote book {fact} in {city}.",
    }


def _perturbed(record: dict, author: int, fact: int) -> dict:
    city = CITIES[(author + fact) % len(CITIES)]
    wrong = [c for c in CITIES if c != city][:3]
    return {
        **record,
        "paraphrased_question": record["question"].replace("Where did", "In which town did"),
        "paraphrased_answer": f"Book {fact} was written in {city}.",
        "perturbed_answer": [f"Book {fact} was written in {w}." for w in wrong],
    }


def write_tofu_fixture(root: Path, authors: int = 10, facts: int = 2) -> Path:
    """Configs full / retain99 / forget01 (last author) / holdout01 and the eval files."""
    root.mkdir(parents=True, exist_ok=True)
    full = [_qa(a, f) for a in range(authors) for f in range(facts)]
    forget = full[-facts:]
    retain = full[:-facts]
    holdout = [_qa(100 + a, f) for a in range(1) for f in range(facts)]

    def arrays(path: Path, rows: list, chunk: int) -> None:
        path.write_text(
            "".join(json.dumps(rows[i : i + chunk]) for i in range(0, len(rows), chunk))
        )

    arrays(root / "full.json", full, 7)
    arrays(root / "retain99.json", retain, 5)
    (root / "forget01.json").write_text(json.dumps(forget))
    (root / "holdout01.json").write_text(json.dumps(holdout))
    pert = [_perturbed(r, authors - 1, f) for f, r in enumerate(forget)]
    (root / "forget01_perturbed.json").write_text(json.dumps(pert))
    retain_pert = [_perturbed(r, i // facts, i % facts) for i, r in enumerate(retain[:4])]
    (root / "retain_perturbed.json").write_text(json.dumps(retain_pert))
    real = [
        {"question": "Who wrote the play about the two lovers?", "answer": "A playwright",
         "perturbed_answer": ["A painter", "A sailor", "A baker"]},
        {"question": "Which city has the tall iron tower?", "answer": "Paris",
         "perturbed_answer": ["Berlin", "London", "Madrid"]},
    ]  # fmt: skip
    (root / "real_authors_perturbed.json").write_text(json.dumps(real))
    (root / "world_facts_perturbed.json").write_text(json.dumps(real[::-1]))
    return root
