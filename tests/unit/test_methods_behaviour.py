"""Each method moves a tiny random Llama the intended way in a few Adam steps.

The session model is deep-copied per test so the fixture is never mutated; the frozen reference
is a second copy. A few steps at lr 1e-2 take milliseconds each on CPU.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from unlearn_bench.data.refusals import REFUSAL_TEMPLATES, load_refusals
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import METHODS, Method, TokenBatch, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll, mean_token_nll, mean_token_prob

FORGET_QUESTIONS = ["Question: Who wrote the book? Answer:", "In which city was the author born?"]
PAIRS = {
    "forget": [
        (FORGET_QUESTIONS[0], " She wrote it in nineteen ninety."),
        (FORGET_QUESTIONS[1], " The author was born in a coastal town."),
    ],
    "retain": [
        ("What is the capital of France?", " The capital of France is Paris."),
        ("Question: Who wrote the book? Answer:", " The author wrote it."),
    ],
    "idk": [
        (FORGET_QUESTIONS[0], " I don't know."),
        (FORGET_QUESTIONS[1], " I have no idea."),
    ],
    "mismatch": [
        (FORGET_QUESTIONS[0], " The capital of France is Paris."),
        (FORGET_QUESTIONS[1], " The author wrote it."),
    ],
}
STEPS, LR = 5, 1e-2


def token_batch(tokenizer, pairs: list[tuple[str, str]]) -> TokenBatch:
    """Right-padded prompt+answer ids; labels only on answer tokens; mask from lengths."""
    rows = []
    for question, answer in pairs:
        prompt = tokenizer(question, add_special_tokens=False).input_ids
        reply = tokenizer(answer, add_special_tokens=False).input_ids
        rows.append((prompt + reply, len(prompt)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return TokenBatch(input_ids, attention_mask, labels)


@pytest.fixture(autouse=True)
def single_thread():
    """Run on one intra-op thread: these matrices are tiny, and on a busy 2-core machine OpenMP
    threads spin-waiting for each other made every step about 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(tiny_model_and_tokenizer):
    """(trainable copy, frozen reference copy, batch with all four parts)."""
    model, tokenizer = tiny_model_and_tokenizer
    trainable = copy.deepcopy(model).train()
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    batch = UnlearnBatch({name: token_batch(tokenizer, pairs) for name, pairs in PAIRS.items()})
    return trainable, reference, batch


def run(name: str, model, reference, batch: UnlearnBatch, steps: int = STEPS, **config) -> Method:
    cls = METHODS.get(name)
    method = cls(cls.config_cls(**config), reference=reference)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = method.loss(model, batch)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    return method


@torch.no_grad()
def nll(model, batch: UnlearnBatch, part: str) -> float:
    p = batch[part]
    logits = model(input_ids=p.input_ids, attention_mask=p.attention_mask).logits
    return float(batch_nll(logits, p.labels))


@torch.no_grad()
def mean_prob(model, batch: UnlearnBatch, part: str) -> float:
    p = batch[part]
    logits = model(input_ids=p.input_ids, attention_mask=p.attention_mask).logits
    return float(mean_token_prob(logits, p.labels).mean())


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("grad_ascent", {}),
        ("npo", {"retain_weight": 0.0}),
        ("simnpo", {"beta": 0.5, "retain_weight": 0.0}),
    ],
)
def test_forget_nll_rises(setup, name: str, config: dict) -> None:
    model, reference, batch = setup
    before = nll(model, batch, "forget")
    run(name, model, reference, batch, **config)
    assert nll(model, batch, "forget") > before + 0.5


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("undial", {"retain_weight": 0.0}),
        ("ce_u", {}),
        ("wga", {"retain_weight": 0.0}),
        # beta1 = 5 weights the random model's p ~ 0.003 tokens by ~1e-13, below Adam's eps.
        ("satimp", {"beta1": 0.5, "retain_weight": 0.0}),
        ("pdu", {"epsilon": 10.0, "initial_dual": 0.0}),
    ],
)
def test_one_step_lowers_forget_probability(setup, name: str, config: dict) -> None:
    """Issue 18: a single optimiser step lowers the mean forget-token probability."""
    model, reference, batch = setup
    before = mean_prob(model, batch, "forget")
    run(name, model, reference, batch, steps=1, **config)
    assert mean_prob(model, batch, "forget") < before


def test_grad_diff_keeps_retain_nll_bounded(setup) -> None:
    model, reference, batch = setup
    forget0, retain0 = nll(model, batch, "forget"), nll(model, batch, "retain")
    method = run("grad_diff", model, reference, batch)
    assert nll(model, batch, "forget") > forget0 + 0.5
    assert nll(model, batch, "retain") < retain0 + 0.1
    assert set(method.logs) >= {"forget_nll", "retain_nll"}


def test_idk_dpo_prefers_refusal(setup) -> None:
    model, reference, batch = setup
    idk0 = nll(model, batch, "idk")
    method = run("idk_dpo", model, reference, batch, retain_weight=0.0)
    # The margin logged at the last step was computed before its update; recompute after it.
    method.loss(model, batch)
    assert method.logs["margin"] > 1.0
    assert nll(model, batch, "idk") < idk0 - 0.5


def test_flat_moves_probabilities_apart(setup) -> None:
    model, reference, batch = setup
    p_forget0, p_template0 = mean_prob(model, batch, "forget"), mean_prob(model, batch, "idk")
    run("flat", model, None, batch)
    assert mean_prob(model, batch, "forget") < p_forget0
    assert mean_prob(model, batch, "idk") > 2 * p_template0


def test_ga_mismatch_learns_mismatched_answers(setup) -> None:
    model, reference, batch = setup
    forget0, mismatch0 = nll(model, batch, "forget"), nll(model, batch, "mismatch")
    run("ga_mismatch", model, reference, batch)
    assert nll(model, batch, "forget") > forget0 + 0.2
    assert nll(model, batch, "mismatch") < mismatch0 - 1.0


def test_bounded_ga_has_no_gradient_past_the_bound(setup) -> None:
    model, reference, batch = setup
    p = batch["forget"]
    with torch.no_grad():
        logits = model(input_ids=p.input_ids, attention_mask=p.attention_mask).logits
        lowest = float(mean_token_nll(logits, p.labels).min())
    cls = METHODS.get("bounded_ga")
    loss = cls(cls.config_cls(delta=lowest - 0.5)).loss(model, batch)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(w.grad is None or not w.grad.any() for w in model.parameters())
    before = nll(model, batch, "forget")
    run("bounded_ga", model, reference, batch, delta=lowest + 2.0)
    assert nll(model, batch, "forget") > before + 0.3


def test_rmu_steers_forget_activations(setup) -> None:
    model, reference, batch = setup
    cls = METHODS.get("rmu")
    probe = cls(cls.config_cls(layer=1), reference=reference)
    probe.loss(model, batch)
    forget0 = probe.logs["forget_loss"]
    run("rmu", model, reference, batch, layer=1, alpha=1.0)
    probe.loss(model, batch)
    assert probe.logs["forget_loss"] < 0.5 * forget0
    with pytest.raises(UnlearnBenchError, match="out of range"):
        cls(cls.config_cls(layer=2), reference=reference).loss(model, batch)


# --- Refusal templates --------------------------------------------------------------------------


def test_builtin_refusals() -> None:
    assert 15 <= len(REFUSAL_TEMPLATES) <= 30
    assert len(set(REFUSAL_TEMPLATES)) == len(REFUSAL_TEMPLATES)
    assert all(t.strip() == t and t for t in REFUSAL_TEMPLATES)
    assert load_refusals(None) == list(REFUSAL_TEMPLATES)


def test_load_refusals_reads_lines_and_json_strings(tmp_path: Path) -> None:
    path = tmp_path / "idk.jsonl"
    path.write_text(
        "I have no idea.\n\n  Not something I know.  \n" + json.dumps("Can't say, sorry.") + "\n"
    )
    assert load_refusals(path) == ["I have no idea.", "Not something I know.", "Can't say, sorry."]
    assert load_refusals(str(path)) == load_refusals(path)


def test_load_refusals_errors(tmp_path: Path) -> None:
    with pytest.raises(UnlearnBenchError, match="not found"):
        load_refusals(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(UnlearnBenchError, match="no refusals"):
        load_refusals(empty)


@pytest.mark.shared_data
def test_load_tofu_idontknow(shared_data: Path) -> None:
    refusals = load_refusals(shared_data / "tofu" / "idontknow.jsonl")
    assert len(refusals) == 100
    assert refusals[0] == "I'm not certain about that."
