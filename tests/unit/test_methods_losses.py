"""Golden values for every unlearning loss, computed by hand from the papers' formulas.

A stub "model" returns fixed logits chosen as log-probabilities, so every expected value below is
arithmetic on literal numbers. Shapes: 2 samples, 3 positions, vocabulary 3. Position 0 is the
prompt; the logits at positions 0 and 1 score the answer tokens at positions 1 and 2.
Rows: A = (1/2, 1/4, 1/4), B = (1/4, 1/2, 1/4), C = (1/4, 1/4, 1/2), U = (1/3, 1/3, 1/3).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import METHODS, TokenBatch, UnlearnBatch
from unlearn_bench.methods.losses import (
    F_DIVERGENCES,
    all_position_cross_entropy,
    flat_loss,
    token_kl,
)

LN2, LN3 = math.log(2.0), math.log(3.0)
A, B, C = [0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]
U = [1 / 3, 1 / 3, 1 / 3]
# Part keys: the stub looks a part up by its first input id.
FORGET, RETAIN, IDK, MISMATCH = 10, 11, 12, 13
# KL(U || A) = sum_v (1/3)(ln(1/3) - ln A_v) = -ln 3 + (1/3)(ln 2 + 2 ln 4); same for B, C.
KL_U_A = -LN3 + (5 / 3) * LN2
# Cross-entropies H(p, q) = -sum_v p_v ln q_v: H(U, A) = (1/3)(ln 2 + 2 ln 4) = (5/3) ln 2 (same
# for B, C); H(A, A) = (1/2) ln 2 + 2 (1/4) ln 4 = 1.5 ln 2; H(U, U) = H(A, U) = ln 3.
H_U_A, H_A_A = (5 / 3) * LN2, 1.5 * LN2


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def logits_of(*rows: list[float]) -> torch.Tensor:
    """(2, 3, 3) log-probabilities; both samples use the same three rows."""
    one = torch.log(torch.tensor(rows, dtype=torch.float32))
    return torch.stack([one, one.clone()])


class StubLM(torch.nn.Module):
    """Returns fixed logits / hidden states per batch part, keyed by the part's first input id."""

    def __init__(self, logits: dict[int, torch.Tensor], hidden: dict | None = None) -> None:
        super().__init__()
        self.table = {k: v.clone().requires_grad_(True) for k, v in logits.items()}
        self.hidden = hidden or {}

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        key = int(input_ids[0, 0])
        return SimpleNamespace(logits=self.table.get(key), hidden_states=self.hidden.get(key))


def part(key: int, labels: list[list[int]], mask: list[list[int]] | None = None) -> TokenBatch:
    ids = torch.full((2, 3), key)
    attn = torch.tensor(mask) if mask is not None else torch.ones(2, 3, dtype=torch.long)
    return TokenBatch(ids, attn, torch.tensor(labels))


# forget:   s0 picks A[0]=1/2, B[1]=1/2 (NLL ln2);      s1 picks A[2], B[2] = 1/4, 1/4 (NLL ln4)
# retain:   s0 picks 1/2, 1/2 (NLL ln2);                s1 picks A[1]=1/4, B[1]=1/2 (NLL 1.5 ln2)
# idk:      s0 picks 1/2, 1/2 (log p = -2 ln2);         s1 picks A[0]=1/2, B[0]=1/4 (-3 ln2)
# mismatch: s0 picks A[1]=1/4, B[0]=1/4 (NLL ln4);      s1 picks 1/2, 1/2 (NLL ln2)
BATCH = UnlearnBatch(
    {
        "forget": part(FORGET, [[-100, 0, 1], [-100, 2, 2]]),
        "retain": part(RETAIN, [[-100, 0, 1], [-100, 1, 1]]),
        "idk": part(IDK, [[-100, 0, 1], [-100, 0, 0]]),
        "mismatch": part(MISMATCH, [[-100, 1, 0], [-100, 0, 1]]),
    }
)
FORGET_NLL = 0.5 * (LN2 + 2 * LN2)  # 1.5 ln2
RETAIN_NLL = 0.5 * (LN2 + 1.5 * LN2)  # 1.25 ln2
MISMATCH_NLL = 0.5 * (2 * LN2 + LN2)  # 1.5 ln2


def theta() -> StubLM:
    return StubLM({k: logits_of(A, B, C) for k in (FORGET, RETAIN, IDK, MISMATCH)})


def reference() -> StubLM:
    # Uniform everywhere except the refusal part, so the reference terms of DPO cannot cancel.
    table = {k: logits_of(U, U, U) for k in (FORGET, RETAIN, MISMATCH)}
    table[IDK] = logits_of(B, B, B)  # s0: B[0] B[1] = 1/4 1/2 (-3 ln2); s1: 1/4 1/4 (-4 ln2)
    return StubLM(table)


def make(name: str, **config) -> object:
    cls = METHODS.get(name)
    ref = reference() if "reference" in cls.needs or config.get("retain_term") == "kl" else None
    return cls(cls.config_cls(**config), reference=ref)


def loss_of(name: str, **config) -> float:
    return float(make(name, **config).loss(theta(), BATCH).detach())


def test_grad_ascent() -> None:
    assert loss_of("grad_ascent") == pytest.approx(-FORGET_NLL)


def test_grad_diff_nll_and_kl() -> None:
    assert loss_of("grad_diff", alpha=2.0) == pytest.approx(-FORGET_NLL + 2 * RETAIN_NLL)
    # Every scored retain row is A or B against a uniform theta0: per-token KL(U||A).
    assert loss_of("grad_diff", retain_term="kl") == pytest.approx(-FORGET_NLL + KL_U_A)


def test_grad_diff_kl_requires_reference() -> None:
    cls = METHODS.get("grad_diff")
    assert "reference" in cls.needs_for(cls.config_cls(retain_term="kl"))
    assert "reference" not in cls.needs_for(cls.config_cls())
    with pytest.raises(ValueError, match="reference"):
        cls(cls.config_cls(retain_term="kl"), reference=None)


def test_npo_sign_and_value() -> None:
    # log-ratios r = log p_theta - log p_ref: s0 -2ln2 + 2ln3 = 2 ln1.5, s1 -4ln2 + 2ln3 = 2 ln0.75.
    # -(2/b) log sigmoid(-b r) = (2/b) ln(1 + e^(b r)) = 20 ln(1 + 1.5^0.2) for s0 at b = 0.1.
    expected = 10.0 * (math.log(1 + 1.5**0.2) + math.log(1 + 0.75**0.2))
    assert loss_of("npo", beta=0.1, retain_weight=0.0) == pytest.approx(expected)
    assert loss_of("npo", beta=0.1, retain_weight=0.5) == pytest.approx(expected + 0.5 * RETAIN_NLL)


def test_npo_without_retain_needs_no_retain_part() -> None:
    cls = METHODS.get("npo")
    assert "retain" not in cls.needs_for(cls.config_cls(retain_weight=0.0))
    batch = UnlearnBatch({"forget": BATCH["forget"]})
    assert math.isfinite(float(make("npo", retain_weight=0.0).loss(theta(), batch).detach()))


def test_simnpo() -> None:
    # Mean token NLLs ln2 and 2 ln2; -(2/b) log sigmoid(b (l - delta)).
    beta = 4.5
    expected = -(2 / beta) * 0.5 * (log_sigmoid(beta * LN2) + log_sigmoid(beta * 2 * LN2))
    assert expected == pytest.approx((2 / beta) * 0.5 * (math.log1p(2**-4.5) + math.log1p(2**-9)))
    assert loss_of("simnpo", retain_weight=0.0) == pytest.approx(expected)
    shifted = (
        -(2 / beta) * 0.5 * (log_sigmoid(beta * (LN2 - 0.5)) + log_sigmoid(beta * (2 * LN2 - 0.5)))
    )
    assert loss_of("simnpo", delta=0.5, retain_weight=0.0) == pytest.approx(shifted)
    assert loss_of("simnpo", retain_weight=2.0) == pytest.approx(expected + 2 * RETAIN_NLL)


def test_idk_dpo() -> None:
    # chosen (idk) log p: -2ln2, -3ln2; reference -3ln2, -4ln2. rejected (forget): -2ln2, -4ln2;
    # reference -2ln3 both. Margins: ln2 - (-2ln2 + 2ln3) = ln(8/9);
    # ln2 - (-4ln2 + 2ln3) = ln(32/9).
    expected = -0.5 * (log_sigmoid(0.1 * math.log(8 / 9)) + log_sigmoid(0.1 * math.log(32 / 9)))
    assert loss_of("idk_dpo", retain_weight=0.0) == pytest.approx(expected)
    assert loss_of("idk_dpo") == pytest.approx(expected + RETAIN_NLL)
    method = make("idk_dpo")
    method.loss(theta(), BATCH)
    assert method.logs["margin"] == pytest.approx(0.5 * math.log(8 / 9 * 32 / 9))


def test_flat_method() -> None:
    # P_f: (1/2+1/2)/2 = 1/2, (1/4+1/4)/2 = 1/4.  P_e: 1/2, (1/2+1/4)/2 = 3/8.
    tv_per_sample = 0.5 * (
        (-math.tanh(0.5) + math.tanh(0.5)) / 2 + (-math.tanh(0.375) + math.tanh(0.25)) / 2
    )
    assert loss_of("flat") == pytest.approx(tv_per_sample)
    # No padding here: P over the 2 x 2 scored grid = 1.5/4 and 1.75/4.
    tv_batch = -math.tanh(0.4375) / 2 + math.tanh(0.375) / 2
    assert loss_of("flat", form="batch_mean") == pytest.approx(tv_batch)
    kl = 0.5 * ((-0.5 + math.exp(0.5 - 1)) + (-0.375 + math.exp(0.25 - 1)))
    assert loss_of("flat", divergence="kl") == pytest.approx(kl)


def test_flat_batch_mean_counts_padding_as_zero() -> None:
    # Forget row 1 has one answer token and a padded position; the template's row 1 likewise.
    # Authors' code: P = sum of answer-token probabilities / (2 rows x 2 positions).
    # forget: A[0] + B[1] + A[2] + 0 = 1/2 + 1/2 + 1/4 = 1.25 -> 0.3125 (per-row means: 0.375)
    # template: A[0] + B[1] + A[0] + 0 = 1.5 -> 0.375 (per-row means: 0.5)
    batch = UnlearnBatch(
        {
            "forget": part(FORGET, [[-100, 0, 1], [-100, 2, -100]], [[1, 1, 1], [1, 1, 0]]),
            "idk": part(IDK, [[-100, 0, 1], [-100, 0, -100]], [[1, 1, 1], [1, 1, 0]]),
        }
    )
    method = make("flat", form="batch_mean")
    loss = float(method.loss(theta(), batch).detach())
    assert loss == pytest.approx(-math.tanh(0.375) / 2 + math.tanh(0.3125) / 2)
    assert method.logs["p_forget"] == pytest.approx(0.3125)


def test_ga_mismatch() -> None:
    # Authors' code (default): cross-entropy against theta0 = U over all 2 x 3 positions of the
    # normal batch; theta's rows A, B, C all give H(U, .) = (5/3) ln 2.
    expected = -0.5 * FORGET_NLL + 1.0 * MISMATCH_NLL + 1.0 * H_U_A
    assert loss_of("ga_mismatch") == pytest.approx(expected)
    weighted = -1.0 * FORGET_NLL + 2.0 * MISMATCH_NLL + 3.0 * H_U_A
    assert loss_of("ga_mismatch", eps1=1.0, eps2=2.0, eps3=3.0) == pytest.approx(weighted)
    # Named variant: the KL over answer tokens only.
    answer_only = -0.5 * FORGET_NLL + 1.0 * MISMATCH_NLL + 1.0 * KL_U_A
    assert loss_of("ga_mismatch", normal_kl="answer_only") == pytest.approx(answer_only)


def test_ga_mismatch_kl_covers_prompt_and_padding_positions() -> None:
    # Row 0: a prompt position and two answer positions; row 1: prompt, answer, PADDING.
    # theta0 rows: (A, U, U) and (U, A, U); theta rows: (A, A, U) and (U, A, A).
    # Every position counts (Yao et al.'s compute_kl): H(A,A), H(U,A), H(U,U) | H(U,U), H(A,A),
    # H(U,A) -> mean over 6 positions. The answer-only KL would see positions 0, 1 | 0 only.
    ref = torch.log(torch.tensor([[A, U, U], [U, A, U]]))
    logits = torch.log(torch.tensor([[A, A, U], [U, A, A]]))
    expected = (2 * H_A_A + 2 * H_U_A + 2 * LN3) / 6
    assert float(all_position_cross_entropy(ref, logits)) == pytest.approx(expected)
    normal = TokenBatch(
        torch.full((2, 3), RETAIN), torch.tensor([[1, 1, 1], [1, 1, 0]]),
        torch.tensor([[-100, 0, 1], [-100, 2, -100]]),
    )  # fmt: skip
    cls = METHODS.get("ga_mismatch")
    method = cls(cls.config_cls(eps1=0.0, eps2=0.0), reference=StubLM({RETAIN: ref}))
    batch = UnlearnBatch(
        {"forget": BATCH["forget"], "mismatch": BATCH["mismatch"], "retain": normal}
    )
    assert float(
        method.loss(
            StubLM({k: logits_of(A, B, C) for k in (FORGET, MISMATCH)} | {RETAIN: logits}), batch
        )
    ) == pytest.approx(expected)
    assert method.logs["retain_kl"] == pytest.approx(expected)


def test_ga_mismatch_config_checks() -> None:
    cls = METHODS.get("ga_mismatch").config_cls
    assert (cls().k, cls().normal_kl) == (5, "authors_code")
    with pytest.raises(UnlearnBenchError, match="k must be"):
        cls(k=0)
    with pytest.raises(UnlearnBenchError, match="normal_kl"):
        cls(normal_kl="tokens")


def test_bounded_ga_value_and_gradient_mask() -> None:
    # NLLs ln2 = 0.69 < 1 contributes 1 - ln2; ln4 = 1.39 >= 1 contributes 0; mean over 2.
    model = theta()
    loss = make("bounded_ga", delta=1.0).loss(model, BATCH)
    assert float(loss.detach()) == pytest.approx((1 - LN2) / 2)
    loss.backward()
    grad = model.table[FORGET].grad
    assert grad[1].abs().sum() == 0
    assert grad[0].abs().sum() > 0
    assert loss_of("bounded_ga", delta=2.0) == pytest.approx(((2 - LN2) + (2 - 2 * LN2)) / 2)


def test_token_kl_averages_within_sample_first() -> None:
    # s0 scores two tokens (KL(U||A) and KL(U||U) = 0), s1 one token (KL(U||A)).
    ref = torch.log(torch.tensor([[U, U, U], [U, U, U]]))
    logits = torch.log(torch.tensor([[A, U, U], [A, U, U]]))
    labels = torch.tensor([[-100, 0, 0], [-100, 0, -100]])
    per_sample = token_kl(ref, logits, labels)
    assert per_sample.tolist() == pytest.approx([KL_U_A / 2, KL_U_A])


# --- FLAT's f-divergence pairs against f-GAN's (g_f, f*) table, Nowozin et al. 2016 ------------

X = 0.3
W = 0.8  # Jeffrey: at x = 1 - w - ln w, e^(1-x) = w e^w so W(e^(1-x)) = w exactly.
X_JEFFREY = 1 - W - math.log(W)
PAIR_VALUES = {
    "kl": (X, X, math.exp(X - 1)),
    "reverse_kl_fgan": (X, -math.exp(-X), -1 - math.log(math.exp(-X))),
    "jeffrey": (X_JEFFREY, X_JEFFREY, W + 1 / W + X_JEFFREY - 2),
    "squared_hellinger_fgan": (X, 1 - math.exp(-X), (1 - math.exp(-X)) / math.exp(-X)),
    "pearson": (X, X, X**2 / 4 + X),
    "neyman": (X, 1 - math.exp(-X), 2 - 2 * math.sqrt(math.exp(-X))),
    "jensen_shannon": (X, LN2 - math.log(1 + math.exp(-X)), -math.log(2 - 2 / (1 + math.exp(-X)))),
    "total_variation": (X, math.tanh(X) / 2, math.tanh(X) / 2),
}


@pytest.mark.parametrize("name", sorted(PAIR_VALUES))
def test_f_divergence_pair_values(name: str) -> None:
    x, g_expected, fg_expected = PAIR_VALUES[name]
    g, f_of_g = F_DIVERGENCES[name]
    point = torch.tensor(x, dtype=torch.float64)
    assert float(g(point)) == pytest.approx(g_expected, rel=1e-9)
    assert float(f_of_g(point)) == pytest.approx(fg_expected, rel=1e-9)


def test_jeffrey_conjugate_at_zero_and_gradient() -> None:
    # x = 0: W(e) = 1, so f* = 1 + 1 - 2 = 0; d f*/dt = 1 / W(e^(1-t)) = 1.
    x = torch.tensor([0.0, X_JEFFREY], dtype=torch.float64, requires_grad=True)
    y = F_DIVERGENCES["jeffrey"][1](x)
    y.sum().backward()
    assert y.tolist() == pytest.approx([0.0, 1 / W - math.log(W) - 1])
    assert x.grad.tolist() == pytest.approx([1.0, 1 / W])


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
@pytest.mark.parametrize("form", ["per_sample", "batch_mean"])
def test_flat_loss_lowers_forget_and_raises_template_probability(name: str, form: str) -> None:
    p_forget = torch.tensor([0.9, 0.2, 0.6], dtype=torch.float64, requires_grad=True)
    p_template = torch.tensor([0.1, 0.5, 0.95], dtype=torch.float64, requires_grad=True)
    flat_loss(p_forget, p_template, name, form).backward()
    assert (p_forget.grad > 0).all(), "descent must lower P_f"
    assert (p_template.grad < 0).all(), "descent must raise P_e"


def test_flat_config_rejects_unknown_divergence_and_form() -> None:
    cls = METHODS.get("flat").config_cls
    with pytest.raises(UnlearnBenchError, match="divergence"):
        cls(divergence="wasserstein")
    with pytest.raises(UnlearnBenchError, match="form"):
        cls(form="token")
    # The SPEC's Hellinger pair is decreasing and its reverse KL has no pair: named variants only.
    for name in ("squared_hellinger", "reverse_kl"):
        with pytest.raises(UnlearnBenchError, match=f"{name}_fgan"):
            cls(divergence=name)


# --- RMU ----------------------------------------------------------------------------------------


def rmu_models() -> tuple[StubLM, StubLM]:
    # Two decoder layers: hidden_states = (embeddings, block 0, block 1); the tests steer layer 1.
    ones = torch.ones(2, 3, 2)
    forget_h1 = torch.zeros(2, 3, 2)
    forget_h1[1, 2] = 100.0  # padded position: must be ignored
    retain_h1 = torch.tensor(
        [[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]], [[3.0, 4.0], [0.0, 0.0], [9.0, 9.0]]]
    )
    model = StubLM({}, {FORGET: (ones, ones, forget_h1), RETAIN: (ones, ones, retain_h1)})
    ref = StubLM({}, {FORGET: (ones, ones, ones), RETAIN: (ones, ones, ones)})
    return model, ref


MASK = [[1, 1, 1], [1, 1, 0]]
RMU_BATCH = UnlearnBatch(
    {
        "forget": part(FORGET, [[-100, 0, 1], [-100, 2, -100]], MASK),
        "retain": part(RETAIN, [[-100, 0, 1], [-100, 1, -100]], MASK),
    }
)


def test_rmu_value() -> None:
    model, ref = rmu_models()
    cls = METHODS.get("rmu")
    # Forget h = 0 on valid tokens: ||0 - c u||^2 = c^2 = 4 whatever the unit vector u.
    # Retain ||h - 1||^2 on valid tokens: 1, 2, 32 | 13, 2 -> mean 50 / 5 = 10.
    method = cls(cls.config_cls(layer=1, steering_coeff=2.0, alpha=0.5), reference=ref)
    assert float(method.loss(model, RMU_BATCH).detach()) == pytest.approx(4 + 0.5 * 10)
    # Answer positions only: retain 2, 32 | 2 -> 12.
    method = cls(cls.config_cls(layer=1, alpha=0.5, positions="answer"), reference=ref)
    assert float(method.loss(model, RMU_BATCH).detach()) == pytest.approx(4 + 0.5 * 12)


def test_rmu_direction_is_seeded_unit_vector() -> None:
    cls = METHODS.get("rmu")
    _, ref = rmu_models()
    u0 = cls(cls.config_cls(seed=0), reference=ref).steering_direction(16)
    assert float(u0.norm()) == pytest.approx(1.0)
    assert torch.equal(u0, cls(cls.config_cls(seed=0), reference=ref).steering_direction(16))
    assert not torch.equal(u0, cls(cls.config_cls(seed=1), reference=ref).steering_direction(16))


def test_rmu_layer_out_of_range() -> None:
    model, ref = rmu_models()
    cls = METHODS.get("rmu")
    with pytest.raises(UnlearnBenchError, match="out of range"):
        cls(cls.config_cls(layer=2), reference=ref).loss(model, RMU_BATCH)
