"""Robustness probes: Leak@k estimator, recovery and bad-input checks, values by hand."""

from __future__ import annotations

import math

import pytest

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.probes.base import make_probe, parse_name
from unlearn_bench.probes.leak import expected_max_at_k, ks_for, prompt_seed
from unlearn_bench.probes.recovery import recovery_entries
from unlearn_bench.probes.relearn import read_slice


def test_expected_max_over_k_by_hand():
    scores = [0.9, 0.2, 0.5]
    # k = 1: the mean; k = 2: the three pairs' maxima 0.5, 0.9, 0.9; k = 3: the maximum.
    assert expected_max_at_k(scores, 1) == pytest.approx(1.6 / 3)
    assert expected_max_at_k(scores, 2) == pytest.approx(2.3 / 3)
    assert expected_max_at_k(scores, 3) == pytest.approx(0.9)


def test_binary_scores_give_the_pass_at_k_estimator():
    # c = 1 correct of n = 4: pass@2 = 1 - C(3, 2) / C(4, 2) = 1 - 3 / 6.
    assert expected_max_at_k([0, 1, 0, 0], 2) == pytest.approx(0.5)
    assert expected_max_at_k([0, 1, 1, 0], 3) == pytest.approx(1 - 0 / math.comb(4, 3))


def test_k_larger_than_n_is_an_error_and_ks_are_powers_of_two():
    with pytest.raises(UnlearnBenchError, match="k=5, n=4"):
        expected_max_at_k([0.1, 0.2, 0.3, 0.4], 5)
    assert ks_for(8) == [1, 2, 4, 8]
    assert ks_for(6) == [1, 2, 4, 6]
    assert ks_for(1) == [1]


def test_prompt_seed_depends_on_prompt_and_run_seed_only():
    assert prompt_seed(0, "q") == prompt_seed(0, "q")
    assert prompt_seed(0, "q") != prompt_seed(1, "q")
    assert prompt_seed(0, "q") != prompt_seed(0, "q2")


def test_probe_names():
    assert (parse_name("relearn-20").family, parse_name("relearn-20").arg) == ("relearn", 20)
    assert (parse_name("int4").family, parse_name("int4").arg) == ("int", 4)
    assert make_probe("int4").label == "int4"
    assert make_probe("leak-8").label == "leak-8"
    with pytest.raises(UnlearnBenchError, match="unknown probe 'jitter'"):
        make_probe("jitter")
    with pytest.raises(UnlearnBenchError, match="bad probe name"):
        make_probe("Relearn 20")
    with pytest.raises(UnlearnBenchError, match="needs a number"):
        make_probe("relearn")
    with pytest.raises(UnlearnBenchError, match="takes no number"):
        make_probe("prefix-3")


def test_read_slice():
    splits = {"forget": [{"q": i} for i in range(6)]}
    assert read_slice("forget[:2]", splits, "t")[1] == [{"q": 0}, {"q": 1}]
    assert read_slice("forget[4:]", splits, "t")[1] == [{"q": 4}, {"q": 5}]
    with pytest.raises(UnlearnBenchError, match="selects no items"):
        read_slice("forget[6:]", splits, "t")
    with pytest.raises(UnlearnBenchError, match="unknown split"):
        read_slice("retain[:2]", splits, "t")
    with pytest.raises(UnlearnBenchError, match="split\\[start:stop\\]"):
        read_slice("forget", splits, "t")


def _samples(values, score="rouge_l_recall", paraphrased=False):
    out = []
    for i, v in enumerate(values):
        sample = {"eval_set": "forget", "question": f"q{i}", "scores": {score: v}}
        if paraphrased:
            sample |= {"question": f"p{i}", "source_question": f"q{i}"}
        out.append(sample)
    return out


def test_recovery_by_hand_on_matching_items():
    # Unlearned before: items q0, q1 at 0.1 and 0.3 (q2 is not probed and must be ignored);
    # probed unlearned 0.4, 0.4; probed target 0.9, 0.7. Recovery = (0.4 - 0.2) / (0.8 - 0.2).
    before = _samples([0.1, 0.3, 1.0])
    after = _samples([0.4, 0.4], paraphrased=True)
    target = _samples([0.9, 0.7], paraphrased=True)
    out = recovery_entries("rouge_l_recall", "rouge_l_recall", after, before, target)
    assert out["forget/before_rouge_l_recall"]["value"] == pytest.approx(0.2)
    assert out["forget/recovery_rouge_l_recall"]["value"] == pytest.approx(1 / 3)
    assert out["forget/recovery_rouge_l_recall"]["n"] == 2
    no_gap = recovery_entries("rouge_l_recall", "rouge_l_recall", after, before, before[:2])
    assert no_gap["forget/recovery_rouge_l_recall"]["value"] is None


def test_task_file_probe_section_is_checked(tmp_path):
    from pathlib import Path

    from unlearn_bench.evaluate import parse_task

    base = Path(__file__).resolve().parents[2] / "tasks/synthetic_people/synthetic_people.yaml"
    for body, message in [
        ("probes: {eval_sets: [nope]}", "unknown eval set 'nope'"),
        ("probes: {metric: no_such_metric}", "unknown metric 'no_such_metric'"),
        ("probes: {relearn: {steps: 3}}", "unknown key 'steps'"),
    ]:
        task = tmp_path / "t.yaml"
        task.write_text(f"include: {base}\nname: t\n{body}\n")
        with pytest.raises(UnlearnBenchError, match=message):
            parse_task(task)
