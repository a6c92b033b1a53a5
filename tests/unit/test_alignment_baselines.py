"""SFT and DPO alignment baselines (issue 16): pairing, hand-computed losses, one step, refusal.

Fixture data has the PKU-SafeRLHF shape (prompt, unsafe answer, safe answer): the
synthetic_people forget rows with a made-up safe answer per row; nothing from ../shared.
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_bench.config import UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.methods import METHODS, UnlearnBatch
from unlearn_bench.tasks import find_task, load_task_data
from unlearn_bench.train.batches import collate
from unlearn_bench.train.parts import batch_source
from unlearn_bench.train.stages import StageInputs, unlearn


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    spec = parse_task(find_task("synthetic_people"))
    splits = load_task_data(spec, None)
    forget = [
        {**r, "safe_answer": f"I will not share that, item {i}."}
        for i, r in enumerate(splits[spec.splits.forget])
    ]
    return spec, {**splits, spec.splits.forget: forget}


def _answer(tokenizer, part, row: int) -> str:
    text = tokenizer.decode(part.input_ids[row][part.labels[row] != -100])
    return text.removesuffix("<|im_end|>").strip()


def _prompt(part, row: int) -> list[int]:
    keep = (part.attention_mask[row] == 1) & (part.labels[row] == -100)
    return part.input_ids[row][keep].tolist()


@pytest.mark.parametrize("method", ["sft_safe", "dpo_safe"])
def test_stage_pairs_each_forget_prompt_with_its_safe_answer(
    method, tiny_model_dir, tiny_model_and_tokenizer, task, monkeypatch
) -> None:
    spec, splits = task
    tokenizer = tiny_model_and_tokenizer[1]
    safe_of = {r["answer"].strip(): r["safe_answer"] for r in splits[spec.splits.forget]}
    cls = METHODS.get(method)
    seen: list[UnlearnBatch] = []
    real = cls.loss
    monkeypatch.setattr(cls, "loss", lambda self, m, b: (seen.append(b), real(self, m, b))[1])
    unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0),
            UnlearnConfig(method=method, lr=1e-3, batch_size=2, max_steps=2))  # fmt: skip
    assert len(seen) == 2
    for batch in seen:
        for row in range(2):
            assert _prompt(batch["safe"], row) == _prompt(batch["forget"], row)
            unsafe = _answer(tokenizer, batch["forget"], row)
            assert _answer(tokenizer, batch["safe"], row) == safe_of[unsafe]


def test_task_without_safe_responses_is_refused_before_batches(tiny_model_and_tokenizer) -> None:
    spec = parse_task(find_task("synthetic_people"))
    splits = load_task_data(spec, None)
    config = METHODS.get("sft_safe").config_cls()
    with pytest.raises(UnlearnBenchError, match="needs safe responses"):
        batch_source(spec, tiny_model_and_tokenizer[1], splits, METHODS.get("sft_safe").needs,
                     config, 2, 64, 0)  # fmt: skip


def _batch(task, tokenizer) -> UnlearnBatch:
    spec, splits = task
    needs = frozenset({"forget", "safe"})
    rows = batch_source(spec, tokenizer, splits, needs, None, 2, 64, 0).draw(1)[0]
    return {name: collate(tokenizer, examples, 64) for name, examples in rows.items()}


def _hand_seq_logprob(model, part) -> list[float]:
    """Sum over answer tokens of log softmax(logits[t-1])[token t], in plain Python loops."""
    with torch.no_grad():
        logits = model(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
    out = []
    for row in range(part.input_ids.shape[0]):
        total = 0.0
        for t in range(1, part.input_ids.shape[1]):
            label = int(part.labels[row, t])
            if label == -100:
                continue
            scores = logits[row, t - 1].double().tolist()
            top = max(scores)
            log_z = top + math.log(sum(math.exp(s - top) for s in scores))
            total += scores[label] - log_z
        out.append(total)
    return out


def _fresh(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def test_sft_loss_matches_hand_nll_and_one_step_raises_safe_logprob(
    tiny_model_dir, tiny_model_and_tokenizer, task
) -> None:
    model = _fresh(tiny_model_dir)
    batch = _batch(task, tiny_model_and_tokenizer[1])
    safe = batch["safe"]
    n_tokens = (safe.labels[:, 1:] != -100).sum(dim=1).tolist()
    before = _hand_seq_logprob(model, safe)
    # Definition: mean over samples of (mean answer-token NLL of the sample).
    expected = sum(-lp / n for lp, n in zip(before, n_tokens, strict=True)) / len(before)
    method = METHODS.get("sft_safe")(METHODS.get("sft_safe").config_cls())
    loss = method.loss(model, batch)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    loss.backward()
    optimiser.step()
    after = _hand_seq_logprob(model, safe)
    assert sum(after) > sum(before)  # descent on NLL(safe) makes the safe answers likelier


def test_dpo_loss_matches_hand_formula_and_one_step_widens_the_margin(
    tiny_model_dir, tiny_model_and_tokenizer, task
) -> None:
    model, reference = _fresh(tiny_model_dir), _fresh(tiny_model_dir)
    with torch.no_grad():  # move the policy off the reference so the margin is not zero
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    batch = _batch(task, tiny_model_and_tokenizer[1])
    beta = 0.1
    chosen, rejected = (
        _hand_seq_logprob(model, batch["safe"]),
        _hand_seq_logprob(model, batch["forget"]),
    )
    ref_c, ref_r = (
        _hand_seq_logprob(reference, batch["safe"]),
        _hand_seq_logprob(reference, batch["forget"]),
    )
    margins = [
        (c - rc) - (r - rr) for c, rc, r, rr in zip(chosen, ref_c, rejected, ref_r, strict=True)
    ]
    # -log sigmoid(beta * m) = log(1 + exp(-beta * m)), averaged over pairs.
    expected = sum(math.log1p(math.exp(-beta * m)) for m in margins) / len(margins)
    cls = METHODS.get("dpo_safe")
    method = cls(cls.config_cls(beta=beta), reference=reference)
    loss = method.loss(model, batch)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4)
    assert method.logs["margin"] == pytest.approx(sum(margins) / len(margins), rel=1e-3, abs=1e-4)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    loss.backward()
    optimiser.step()
    c2, r2 = _hand_seq_logprob(model, batch["safe"]), _hand_seq_logprob(model, batch["forget"])
    new = [(c - rc) - (r - rr) for c, rc, r, rr in zip(c2, ref_c, r2, ref_r, strict=True)]
    assert sum(new) > sum(margins)  # safe answer gains on the unsafe one relative to pi0


def test_dpo_beta_must_be_positive() -> None:
    with pytest.raises(UnlearnBenchError, match="beta"):
        METHODS.get("dpo_safe").config_cls(beta=0.0)
