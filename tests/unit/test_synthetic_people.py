"""Tests for the built-in fictitious-people task."""

from __future__ import annotations

import json

import pytest

from unlearn_bench.data.synthetic_people import (
    ATTRIBUTES,
    N_PERTURBED,
    generate_people,
    people_dataset,
    split_by_counts,
    split_people,
)
from unlearn_bench.errors import UnlearnBenchError

KEYS = {
    "person",
    "name",
    "question",
    "answer",
    "paraphrased_question",
    "paraphrased_answer",
    "perturbed_answer",
    "attribute",
}


def _dump(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)


def _people(records: list[dict]) -> set[int]:
    return {r["person"] for r in records}


def test_same_seed_gives_identical_json() -> None:
    assert _dump(generate_people(30, 8, seed=7)) == _dump(generate_people(30, 8, seed=7))
    assert _dump(people_dataset(seed=3)) == _dump(people_dataset(seed=3))


def test_different_seeds_give_different_people_and_facts() -> None:
    a, b = generate_people(20, 4, seed=0), generate_people(20, 4, seed=1)
    assert [r["name"] for r in a] != [r["name"] for r in b]
    assert [r["answer"].split()[2:] for r in a] != [r["answer"].split()[2:] for r in b]


def test_schema_and_counts() -> None:
    records = generate_people(12, 5, seed=0)
    assert len(records) == 60
    for r in records:
        assert set(r) == KEYS
        assert isinstance(r["person"], int) and isinstance(r["name"], str)
        assert r["name"] in r["question"] and r["name"] in r["paraphrased_question"]
        assert r["name"] in r["answer"] and r["name"] in r["paraphrased_answer"]
        assert r["question"] != r["paraphrased_question"]
        assert r["answer"] != r["paraphrased_answer"]
        assert 6 <= len(r["answer"].split()) <= 20
        assert len(r["perturbed_answer"]) == N_PERTURBED
    for person in range(12):
        mine = [r for r in records if r["person"] == person]
        assert [r["attribute"] for r in mine] == [k.key for k in ATTRIBUTES[:5]]
        assert len({r["name"] for r in mine}) == 1


def test_every_attribute_kind_is_usable() -> None:
    records = generate_people(3, len(ATTRIBUTES), seed=0)
    assert len(ATTRIBUTES) >= 8
    assert len({r["attribute"] for r in records}) == len(ATTRIBUTES)
    assert len({r["question"] for r in records}) == len(records)


def test_names_are_unique() -> None:
    records = generate_people(1600, 1, seed=5)
    assert len({r["name"] for r in records}) == 1600


def test_perturbed_answers_are_wrong_and_distinct() -> None:
    for r in generate_people(40, len(ATTRIBUTES), seed=2):
        wrong = r["perturbed_answer"]
        assert len(set(wrong)) == N_PERTURBED
        assert r["answer"] not in wrong
        assert r["paraphrased_answer"] not in wrong
        # Same form as the paraphrased answer: the name still appears, only the fact changes.
        assert all(r["name"] in w for w in wrong)


def test_perturbed_answers_keep_the_paraphrase_form_with_another_value() -> None:
    kinds = {kind.key: kind for kind in ATTRIBUTES}
    for r in generate_people(10, len(ATTRIBUTES), seed=3):
        kind = kinds[r["attribute"]]
        by_sentence = {kind.para_answer.format(name=r["name"], value=v): v for v in kind.pool}
        true_value = by_sentence[r["paraphrased_answer"]]
        assert kind.answer.format(name=r["name"], value=true_value) == r["answer"]
        wrong_values = {by_sentence[w] for w in r["perturbed_answer"]}
        assert true_value not in wrong_values


def test_facts_vary_between_people() -> None:
    records = generate_people(30, len(ATTRIBUTES), seed=0)
    for kind in ATTRIBUTES:
        answers = {
            r["answer"].replace(r["name"], "") for r in records if r["attribute"] == kind.key
        }
        assert len(answers) >= 4, kind.key


def test_person_is_stable_when_more_people_or_questions_are_drawn() -> None:
    small = generate_people(5, 2, seed=9)
    large = generate_people(9, 6, seed=9)
    assert small == [
        r for r in large if r["person"] < 5 and r["attribute"] in {"birth_city", "birth_year"}
    ]


def test_default_dataset_sizes_and_forget_is_last() -> None:
    data = people_dataset()
    assert set(data) == {"full", "forget", "retain", "holdout"}
    assert _people(data["full"]) == set(range(24))
    assert _people(data["forget"]) == {21, 22, 23}
    assert _people(data["retain"]) == set(range(21))
    assert _people(data["holdout"]) == {24, 25, 26}
    assert len(data["forget"]) == 3 * 4 and len(data["holdout"]) == 3 * 4
    assert data["full"] == data["retain"] + data["forget"]


def test_splits_are_disjoint_by_person() -> None:
    data = people_dataset(n_people=40, qa_per_person=3, seed=4, forget_fraction=0.05)
    forget, retain, holdout = (_people(data[k]) for k in ("forget", "retain", "holdout"))
    assert not forget & retain and not holdout & _people(data["full"])
    assert forget | retain == _people(data["full"])
    assert len(forget) == len(holdout) == 2


def test_explicit_holdout_fraction_keeps_full_unchanged() -> None:
    default = people_dataset(n_people=20, seed=1)
    wider = people_dataset(n_people=20, seed=1, holdout_fraction=0.25)
    assert wider["full"] == default["full"]
    assert _people(wider["holdout"]) == set(range(20, 25))


def test_split_people_counts() -> None:
    records = generate_people(30, 2, seed=0)
    data = split_people(records, forget_fraction=0.1, holdout_fraction=0.1)
    assert _people(data["holdout"]) == {27, 28, 29}
    assert _people(data["forget"]) == {24, 25, 26}
    assert _people(data["retain"]) == set(range(24))


def test_fraction_rounding_ignores_float_noise() -> None:
    # 0.07 * 100 is 7.000000000000001 in floating point; a naive ceil would give 8.
    records = generate_people(107, 1, seed=0)
    data = split_people(records, forget_fraction=0.07, holdout_fraction=7 / 107)
    assert len(_people(data["holdout"])) == 7 and len(_people(data["forget"])) == 7


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_fractions_raise(fraction: float) -> None:
    records = generate_people(10, 1, seed=0)
    with pytest.raises(ValueError, match="forget_fraction must lie strictly between 0 and 1"):
        split_people(records, forget_fraction=fraction, holdout_fraction=0.1)
    with pytest.raises(ValueError, match="holdout_fraction must lie strictly between 0 and 1"):
        split_people(records, forget_fraction=0.1, holdout_fraction=fraction)
    with pytest.raises(ValueError, match="forget_fraction"):
        people_dataset(forget_fraction=fraction)


def test_empty_splits_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_people([], forget_fraction=0.1, holdout_fraction=0.1)
    with pytest.raises(ValueError, match="at least one retain person"):
        split_people(generate_people(2, 1, seed=0), forget_fraction=0.1, holdout_fraction=0.1)
    with pytest.raises(ValueError, match="at least one retain person"):
        people_dataset(n_people=4, forget_fraction=0.9)
    with pytest.raises(ValueError, match="need a forget and a holdout person"):
        split_by_counts(generate_people(5, 1, seed=0), n_forget=0, n_holdout=1)


def test_bad_generation_sizes_raise_user_errors() -> None:
    with pytest.raises(UnlearnBenchError, match="qa_per_person"):
        generate_people(3, len(ATTRIBUTES) + 1, seed=0)
    with pytest.raises(ValueError, match="n_people"):
        generate_people(0, 1, seed=0)
    with pytest.raises(ValueError, match="n_people"):
        people_dataset(n_people=1)
