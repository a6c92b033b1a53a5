"""The collapse detectors on hand-built inputs; expected values worked out from the definitions."""

import math

import pytest
import torch

from unlearn_bench.train.collapse import (
    generation_collapse,
    one_token_or_empty,
    retain_collapse,
    training_collapse,
    uniformity_stats,
)


def test_uniformity_stats_by_hand():
    # Vocabulary of 4; equal logits give p = 1/4: NLL = ln 4, KL from uniform 0.
    labels = torch.tensor([[-100, 2, 3]])
    flat = uniformity_stats(torch.zeros(1, 3, 4), labels)
    assert flat["collapse/forget_nll"] == pytest.approx(math.log(4))
    assert flat["collapse/forget_kl_uniform"] == pytest.approx(0.0, abs=1e-7)
    assert flat["collapse/ln_vocab"] == pytest.approx(math.log(4))
    # Logits (ln 3, 0, 0, 0) at every position: p = (1/2, 1/6, 1/6, 1/6); labels 2 then 3 both
    # get 1/6 (NLL ln 6); H = 1/2 ln 2 + 1/2 ln 6, so KL = ln 4 - H.
    logits = torch.tensor([math.log(3), 0.0, 0.0, 0.0]).repeat(1, 3, 1)
    stats = uniformity_stats(logits, labels)
    assert stats["collapse/forget_nll"] == pytest.approx(math.log(6))
    kl = math.log(4) - (0.5 * math.log(2) + 0.5 * math.log(6))
    assert stats["collapse/forget_kl_uniform"] == pytest.approx(kl)


LN_V = math.log(384)


def _row(step, nll, kl, ln_v=LN_V):
    return {"step": step, "collapse/forget_nll": nll, "collapse/forget_kl_uniform": kl,
            "collapse/ln_vocab": ln_v}  # fmt: skip


def test_training_collapse_rules():
    ln_v = math.log(384)
    pinned = [_row(1, 3.2, 2.4), _row(2, ln_v + 0.05, 0.01), _row(3, ln_v - 0.02, 0.0)]
    found = training_collapse(pinned)
    assert found is not None and found.where == "step 2" and found.value == ln_v - 0.02
    # Passing through ln|V| while confident (KL large) is gradient ascent at work, not collapse.
    assert training_collapse([_row(1, 3.2, 2.4), _row(2, ln_v, 2.0)]) is None
    # Left the band before the end: the final model is not uniform.
    assert training_collapse(pinned + [_row(4, 20.0, 3.0)]) is None
    # NLL 0.2 nats off ln|V| is outside the 0.1 band.
    assert training_collapse([_row(1, 3.2, 2.4), _row(2, ln_v + 0.2, 0.0)]) is None
    # A start model already uniform (a random model) has nothing to collapse from.
    assert training_collapse([_row(1, ln_v, 0.02), _row(2, ln_v, 0.0)]) is None


def test_one_token_or_empty():
    for text in ["", "   ", "...", "!!!!", "the the the", "NoNoNoNo", "rrrrrrrr", "i\ni\ni\ni"]:
        assert one_token_or_empty(text), text
    for text in ["No", "1990", "A", "Paris.", "abab", "He was born in Vessaly."]:
        assert not one_token_or_empty(text), text


def test_generation_collapse_is_relative_to_the_target():
    target = ["Paris.", "rrrr", "He wrote it.", "1990"]  # 1 of 4 degenerate: 0.25
    assert generation_collapse(["x x x", "rrrr", "", "1990"], target) is not None  # 0.75
    assert generation_collapse(["x x x", "rrrr", "ok", "1990"], target) is None  # 0.5: +0.25
    assert generation_collapse(["rrrr"] * 4, ["rrrr"] * 4) is None  # the target loops too


def test_retain_floor():
    found = retain_collapse("retain/probability", 0.001, 0.04)  # floor 0.05 x 0.04 = 0.002
    assert found is not None and found.threshold == pytest.approx(0.002)
    assert retain_collapse("retain/probability", 0.003, 0.04) is None
    assert retain_collapse("retain/probability", 0.001, None) is None
