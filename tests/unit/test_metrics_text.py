"""Golden tests for unlearn_bench.metrics.text; LCS counts are worked out by hand."""

from __future__ import annotations

import pytest

from unlearn_bench.metrics.text import rouge_l_f1, rouge_l_recall

TOL = 1e-12


def test_rouge_l_equal_lengths() -> None:
    # ref:  the cat sat on the mat   (6 tokens)
    # pred: the cat lay on a   mat   (6 tokens)
    # LCS = the, cat, on, mat = 4 -> R = 4/6, P = 4/6, F1 = 4/6
    pred, ref = "the cat lay on a mat", "the cat sat on the mat"
    assert rouge_l_recall(pred, ref) == pytest.approx(2 / 3, rel=TOL)
    assert rouge_l_f1(pred, ref) == pytest.approx(2 / 3, rel=TOL)


def test_rouge_l_recall_vs_f1_and_argument_order() -> None:
    # pred: the cat sat (3 tokens); ref: the cat sat on the mat (6 tokens); LCS = 3
    # R = 3/6 = 0.5, P = 3/3 = 1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    pred, ref = "the cat sat", "the cat sat on the mat"
    assert rouge_l_recall(pred, ref) == pytest.approx(0.5, rel=TOL)
    assert rouge_l_f1(pred, ref) == pytest.approx(2 / 3, rel=TOL)
    # swapping prediction and reference turns recall into precision: 3/3
    assert rouge_l_recall(ref, pred) == pytest.approx(1.0, rel=TOL)


def test_rouge_l_uses_stemmer_lowercase_and_drops_punctuation() -> None:
    # tokens (lower-cased, punctuation dropped, Porter stem on tokens longer than 3 chars):
    # pred "The cats were running!" -> the cat were run
    # ref  "the cat was running"    -> the cat was run
    # LCS = the, cat, run = 3 -> R = 3/4 (no stemmer: the, running = 2 -> 0.5)
    assert rouge_l_recall("The cats were running!", "the cat was running") == pytest.approx(
        0.75, rel=TOL
    )


def test_rouge_l_empty_and_disjoint_score_zero() -> None:
    assert rouge_l_recall("", "the cat") == 0.0
    assert rouge_l_f1("dog runs", "the cat") == 0.0


def test_rouge_l_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        rouge_l_recall(None, "the cat")  # type: ignore[arg-type]
