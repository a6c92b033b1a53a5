"""Gradient norms of several items from one batched pass (hf_gradbatch) = each item's alone.

Expected values: ``torch.autograd.grad`` of transformers' own shifted cross-entropy over one
item's answer labels, that item alone in a batch of one (an independent route), per parameter
tensor. Tiny random Llamas, tied and untied, with random norm weights (so a norm gradient
summed over the batch, or taken from the output instead of the normalised input, would show),
items of different lengths in one batch, and chat prompts that contain the pad token.
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_bench.backends import hf_gradbatch
from unlearn_bench.backends.base import Message, ScoreRequest
from unlearn_bench.backends.hf import HFBackend

QUESTIONS = [
    "In which city was the author born? Tell me about the coastal town and the book she wrote.",
    "What did she write first?",
    "Who?",
    "What is the capital of France? Paris or a coastal town?",
]
ANSWERS = ["The author was born in a coastal town.", "A novel, then poems.", "No one.", "Paris."]
# The parity rule for token scores across paths (nats per token).
LOGPROB_TOL = 3.4e-5


@pytest.fixture(scope="module", params=["tied", "untied"])
def backend(request, tmp_path_factory) -> HFBackend:
    from tiny_model import build_vllm_tiny_model

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp(request.param)
    build_vllm_tiny_model(folder, seed=7, tied=request.param == "tied")
    backend = HFBackend(str(folder), progress=False)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in backend.model.named_parameters():
            if "norm" in name:  # RMSNorm weights start at 1; make each one differ
                p.copy_(0.5 + torch.rand(p.shape, generator=generator))
    return backend


def _requests(backend: HFBackend) -> list[ScoreRequest]:
    return [
        ScoreRequest(backend.chat_prompt([Message("user", q)]), a, grad_norm=True)
        for q, a in zip(QUESTIONS, ANSWERS, strict=True)
    ]


def _alone(backend: HFBackend, req: ScoreRequest) -> tuple[list[float], list[float]]:
    """Per-tensor gradient norms and answer log-probs of one item in a batch of one."""
    ctx, cont = backend._encode(req.context, False), backend._encode(req.continuation, False)
    ids = torch.tensor([ctx + cont])
    labels = torch.tensor([[-100] * len(ctx) + cont])
    params = [p for p in backend.model.parameters() if p.requires_grad]
    with torch.enable_grad():
        out = backend.model(input_ids=ids, labels=labels)
        grads = torch.autograd.grad(out.loss, params)
    logprobs = torch.log_softmax(out.logits[0, len(ctx) - 1 : -1].detach().float(), dim=-1)
    picked = logprobs.gather(-1, torch.tensor(cont)[:, None]).squeeze(-1)
    return [g.double().norm().item() for g in grads], picked.tolist()


def test_the_prompts_hold_the_pad_token_and_differ_in_length(backend) -> None:
    encoded = [backend._encode_request(r) for r in _requests(backend)]
    assert all(backend.tokenizer.pad_token_id in ctx for ctx, _ in encoded)
    assert len({len(c) + len(a) for c, a in encoded}) == len(encoded)


def test_each_items_tensor_norms_from_one_batch_equal_its_own(backend) -> None:
    requests = _requests(backend)
    encoded = [backend._encode_request(r) for r in requests]
    pad = backend.tokenizer.pad_token_id
    width = max(len(c) + len(a) for c, a in encoded)
    ids = torch.full((len(encoded), width), pad)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ctx, cont) in enumerate(encoded):
        ids[row, : len(ctx) + len(cont)] = torch.tensor(ctx + cont)
        mask[row, : len(ctx) + len(cont)] = 1

    def run_loss():  # sum over rows of each row's transformers loss, written independently
        logits = backend.model(input_ids=ids, attention_mask=mask).logits
        total = 0.0
        for row, (ctx, cont) in enumerate(encoded):
            labels = torch.full((width,), -100)
            labels[len(ctx) : len(ctx) + len(cont)] = torch.tensor(cont)
            total = total + torch.nn.functional.cross_entropy(logits[row, :-1], labels[1:])
        return total, None

    _, squares = hf_gradbatch.batch_ghost_norms(backend.model, run_loss, mask)
    assert squares is not None
    for req, row in zip(requests, squares, strict=True):
        expected, _ = _alone(backend, req)
        got = [math.sqrt(s) for s in row]
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert all(p.grad is None and p.requires_grad for p in backend.model.parameters())


def test_the_backend_answers_a_batch_with_each_items_own_norms(backend) -> None:
    backend.stats.extra.clear()
    backend._ghost = None
    requests = _requests(backend) * 2  # two batches: the check, then a batched one
    backend.grad_batch_tokens = (
        max(len(c) + len(a) for c, a in map(backend._encode_request, requests)) * 4
    )
    scores = backend.logprobs(requests)
    extra = backend.stats.extra
    assert extra["grad_norm_ghost_checked"] == 2 and "grad_norm_ghost_rejected" not in extra
    assert extra["grad_norms_direct"] == 2 and extra["grad_norms_ghost"] == len(requests) - 2
    assert extra["grad_norm_batches"] == 1
    for req, got in zip(requests, scores, strict=True):
        norms, logprobs = _alone(backend, req)
        assert got.grad_norm == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-5)
        assert got.grad_norm_mean_param == pytest.approx(sum(norms) / len(norms), rel=1e-5)
        assert max(abs(a - b) for a, b in zip(got.logprobs, logprobs, strict=True)) <= LOGPROB_TOL


def test_a_batched_path_wrong_on_one_row_is_rejected(backend, monkeypatch) -> None:
    backend.stats.extra.clear()
    backend._ghost = None
    real = hf_gradbatch.batch_ghost_norms

    def last_row_off(model, run_loss, keep):  # right except the most padded row, off by 0.1%
        extra, squares = real(model, run_loss, keep)
        return extra, squares[:-1] + [[s * (1 + 1e-3) for s in squares[-1]]]

    monkeypatch.setattr(hf_gradbatch, "batch_ghost_norms", last_row_off)
    requests = _requests(backend)
    scores = backend.logprobs(requests)
    extra = backend.stats.extra
    assert extra["grad_norm_ghost_rejected"] == 1 and "grad_norms_ghost" not in extra
    assert extra["grad_norms_direct"] == len(requests)
    for req, got in zip(requests, scores, strict=True):
        norms, _ = _alone(backend, req)
        assert got.grad_norm == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-5)
    backend._ghost = None


def test_batches_keep_the_token_budget_longest_first() -> None:
    items = [([1] * 10, [2] * 5), ([1] * 3, [2]), ([1] * 20, [2] * 4), ([1] * 8, [2] * 2)]
    # lengths 15, 4, 24, 10: longest first; 2 rows of 24 = 48 > 40, so 24 alone; then 15 + 10
    # + 4 in rows of width 15 (45 > 40 for three): [15, 10], [4].
    assert hf_gradbatch.plan_grad_batches(items, 40, 16) == [[2], [0, 3], [1]]
    assert hf_gradbatch.plan_grad_batches(items, 1000, 2) == [[2, 0], [3, 1]]
