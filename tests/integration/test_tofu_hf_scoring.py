"""HF scoring paths on the tiny model: shared prefix = plain, vocab moments, gradient norms."""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_bench.backends.base import Message, ScoreRequest
from unlearn_bench.backends.hf import HFBackend
from unlearn_bench.backends.hf_scoring import vocab_moments

QUESTIONS = ["In which city was the author born?", "What is the capital of France?", "Who?"]
ANSWERS = [
    "The author was born in a coastal town.",
    "Paris.",
    "She wrote it in nineteen ninety, in the capital of France.",
    "No",
]


def test_vocab_moments_by_hand() -> None:
    # p = (1/2, 1/4, 1/4): mu = 1/2 ln(1/2) + 1/2 ln(1/4) = -1.5 ln 2;
    # deviations of log p from mu: +0.5 ln 2 (p = 1/2) and -0.5 ln 2 (p = 1/4 twice), so the
    # variance is (0.5 ln 2)^2 and the std 0.5 ln 2.
    row = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    means, stds = vocab_moments(row)
    assert means[0] == pytest.approx(-1.5 * math.log(2), rel=1e-12)
    assert stds[0] == pytest.approx(0.5 * math.log(2), rel=1e-12)


@pytest.fixture(scope="module")
def backends(tiny_model_dir):
    torch.set_num_threads(1)
    plain = HFBackend(str(tiny_model_dir), progress=False, share_prefix=False, batch_size=4)
    shared = HFBackend(str(tiny_model_dir), progress=False, share_prefix=True, batch_size=4)
    return plain, shared


def _requests(backend: HFBackend) -> list[ScoreRequest]:
    contexts = [backend.chat_prompt([Message("user", q)]) for q in QUESTIONS]
    return [
        ScoreRequest(c, a, vocab_stats=i % 2 == 0) for c in contexts for i, a in enumerate(ANSWERS)
    ] + [ScoreRequest("Question: Who?\nAnswer:", " Paris.", add_special_tokens=True)]


def test_shared_prefix_gives_the_plain_numbers(backends) -> None:
    plain, shared = backends
    assert shared.share_prefix and not plain.share_prefix
    requests = _requests(plain)
    a, b = plain.logprobs(requests), shared.logprobs(requests)
    assert shared.stats.extra["shared_prefix_groups"] == len(QUESTIONS)
    for x, y, req in zip(a, b, requests, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-5)
        assert x.greedy == y.greedy
        if req.vocab_stats:
            assert x.vocab_means == pytest.approx(y.vocab_means, abs=1e-5)
            assert x.vocab_stds == pytest.approx(y.vocab_stds, abs=1e-5)
        else:
            assert x.vocab_means is None and y.vocab_means is None


def test_plain_path_matches_a_direct_forward(backends) -> None:
    plain, _ = backends
    request = _requests(plain)[2]
    [scores] = plain.logprobs([request])
    ctx = plain._encode(request.context, False)
    cont = plain._encode(request.continuation, False)
    with torch.no_grad():
        logits = plain.model(input_ids=torch.tensor([ctx + cont])).logits[0]
    logprobs = torch.log_softmax(logits.float(), -1)
    expected = [logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)]
    assert scores.logprobs == pytest.approx(expected, abs=1e-5)
    probs = logprobs[len(ctx) - 1].double().exp()
    mu = float((probs * logprobs[len(ctx) - 1].double()).sum())
    assert scores.vocab_means[0] == pytest.approx(mu, abs=1e-6)


def test_grad_norm_matches_autograd_on_the_hf_loss(backends) -> None:
    plain, _ = backends
    context = plain.chat_prompt([Message("user", QUESTIONS[0])])
    request = ScoreRequest(context, ANSWERS[0], grad_norm=True, vocab_stats=True)
    [scores] = plain.logprobs([request])
    [reference] = plain.logprobs([ScoreRequest(context, ANSWERS[0], vocab_stats=True)])
    assert scores.logprobs == pytest.approx(reference.logprobs, abs=1e-5)
    assert scores.vocab_stds == pytest.approx(reference.vocab_stds, abs=1e-5)
    # Independent route: transformers' own shifted cross-entropy over the answer labels.
    ctx, cont = plain._encode(context, False), plain._encode(ANSWERS[0], False)
    ids = torch.tensor([ctx + cont])
    labels = torch.tensor([[-100] * len(ctx) + cont])
    model = plain.model
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = model(input_ids=ids, labels=labels).loss
        grads = torch.autograd.grad(loss, params)
    norms = [g.double().norm().item() for g in grads]
    assert scores.grad_norm == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-4)
    assert scores.grad_norm_mean_param == pytest.approx(sum(norms) / len(norms), rel=1e-4)
    assert all(p.grad is None for p in params)  # the backend left no gradients behind
