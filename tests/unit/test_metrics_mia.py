"""Golden tests for unlearn_bench.metrics.mia; expected values are worked out by hand."""

from __future__ import annotations

import pytest

from unlearn_bench.metrics.mia import (
    gradnorm_score,
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    reference_score,
    zlib_score,
)
from unlearn_bench.metrics.stats import privleak

TOL = 1e-12


def test_loss_score_is_negative_mean_nll() -> None:
    # NLLs 1 and 3 -> mean NLL 2 -> member-ness -2
    assert loss_score([-1.0, -3.0]) == pytest.approx(-2.0, rel=TOL)
    with pytest.raises(ValueError):
        loss_score([])


def test_zlib_score() -> None:
    # zlib.compress(b"ab") at the default level: 2-byte header (78 9c) + one fixed-Huffman
    # block (3 header bits + 2 literals x 8 bits + 7-bit end code = 26 bits -> 4 bytes)
    # + 4-byte Adler-32 = 10 bytes.  Mean NLL = (1 + 2) / 2 = 1.5 -> -1.5 / 10 = -0.15
    assert zlib_score([-1.0, -2.0], "ab") == pytest.approx(-0.15, rel=TOL)


def test_min_k_score_takes_lowest_fraction() -> None:
    # 5 tokens, k = 0.4 -> floor(2.0) = 2 lowest: -5, -4 -> mean -4.5
    assert min_k_score([-1.0, -5.0, -2.0, -4.0, -3.0]) == pytest.approx(-4.5, rel=TOL)
    # k = 0.5 of 5 -> floor(2.5) = 2 (floor, not round-half-up to 3)
    assert min_k_score([-1.0, -5.0, -2.0, -4.0, -3.0], k=0.5) == pytest.approx(-4.5, rel=TOL)
    # k = 1 -> all five: -15 / 5 = -3
    assert min_k_score([-1.0, -5.0, -2.0, -4.0, -3.0], k=1.0) == pytest.approx(-3.0, rel=TOL)


def test_min_k_score_short_answer_keeps_one_token() -> None:
    # 2 tokens, k = 0.4 -> floor(0.8) = 0, guarded up to 1 -> the single lowest, -2
    assert min_k_score([-1.0, -2.0]) == pytest.approx(-2.0, rel=TOL)


@pytest.mark.parametrize("k", [0.0, -0.1, 1.5])
def test_min_k_score_rejects_bad_k(k: float) -> None:
    with pytest.raises(ValueError):
        min_k_score([-1.0], k=k)


def test_min_k_plus_plus_score() -> None:
    # z = ((-1 - -1.5)/0.5, (-2 - -1)/2, (-3 - -2)/1) = (1, -0.5, -1)
    lp, mu, sigma = [-1.0, -2.0, -3.0], [-1.5, -1.0, -2.0], [0.5, 2.0, 1.0]
    # k = 0.4 -> floor(1.2) = 1 lowest: -1
    assert min_k_plus_plus_score(lp, mu, sigma) == pytest.approx(-1.0, rel=TOL)
    # k = 0.7 -> floor(2.1) = 2 lowest: (-1 + -0.5) / 2 = -0.75
    assert min_k_plus_plus_score(lp, mu, sigma, k=0.7) == pytest.approx(-0.75, rel=TOL)


def test_min_k_plus_plus_degenerate_position() -> None:
    # position 2 is a one-hot distribution (mu = sigma = 0, log p = 0): z defined as 0.
    # z = ((-2 - -1)/1, 0) = (-1, 0); k = 1 -> mean -0.5
    assert min_k_plus_plus_score([-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], k=1.0) == pytest.approx(
        -0.5, rel=TOL
    )
    with pytest.raises(ValueError):
        min_k_plus_plus_score([-2.0, -1.0], [-1.0, 0.0], [1.0, 0.0])


def test_min_k_plus_plus_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        min_k_plus_plus_score([-1.0, -2.0], [-1.0], [1.0, 1.0])


def test_gradnorm_and_reference_scores() -> None:
    assert gradnorm_score(2.5) == -2.5
    with pytest.raises(ValueError):
        gradnorm_score(-1.0)
    # NLL(target) = (1 + 3)/2 = 2; NLL(reference) = (2 + 2 + 5)/3 = 3; 2 - 3 = -1 -> member-ness 1
    assert reference_score([-1.0, -3.0], [-2.0, -2.0, -5.0]) == pytest.approx(1.0, rel=TOL)


def test_mia_auc_pairs_by_hand() -> None:
    # member-ness: members [3, 2], non-members [1, 2.5]; pairs with member > non-member:
    # (3,1) yes, (3,2.5) yes, (2,1) yes, (2,2.5) no -> standard AUC 3/4, MUSE AUC 1 - 3/4
    assert mia_auc([3.0, 2.0], [1.0, 2.5], convention="standard") == pytest.approx(0.75)
    assert mia_auc([3.0, 2.0], [1.0, 2.5]) == pytest.approx(0.25)


def test_mia_auc_ties_count_half() -> None:
    # one pair, tied -> 0.5 either way
    assert mia_auc([1.0], [1.0]) == 0.5


def test_privleak_signs_match_muse() -> None:
    # Target model still memorises the forget set: every forget sample has a higher Min-K
    # member-ness than every holdout sample -> MUSE AUC 0 -> (0 - 0.4772)/0.4772*100 = -100.
    forget = [min_k_score([-0.1, -0.2, -0.3]), min_k_score([-0.2, -0.4])]  # -0.3, -0.4
    holdout = [min_k_score([-2.0, -3.0]), min_k_score([-1.5, -2.5, -1.0])]  # -3.0, -2.5
    auc_target = mia_auc(forget, holdout)
    assert auc_target == 0.0
    assert privleak(auc_target, 0.4772) == pytest.approx(-100.0, rel=TOL)
    # Interleaved scores: forget loss-like values [1, 3], holdout [2, 4]; MUSE AUC counts pairs
    # where the forget loss is higher: (1>2) no, (1>4) no, (3>2) yes, (3>4) no -> 1/4
    assert mia_auc([-1.0, -3.0], [-2.0, -4.0]) == pytest.approx(0.25)
    # identical distributions -> 0.5 -> PrivLeak 0 against a 0.5 reference
    assert privleak(mia_auc([-1.0, -2.0], [-1.0, -2.0]), 0.5) == pytest.approx(0.0, abs=TOL)
    # over-unlearning: forget looks less familiar than holdout -> AUC 1 -> positive PrivLeak
    assert privleak(mia_auc([-5.0, -6.0], [-1.0, -2.0]), 0.4772) > 0


def test_mia_auc_rejects_empty_or_bad_convention() -> None:
    with pytest.raises(ValueError):
        mia_auc([], [1.0])
    with pytest.raises(ValueError):
        mia_auc([1.0], [2.0], convention="other")  # type: ignore[arg-type]
