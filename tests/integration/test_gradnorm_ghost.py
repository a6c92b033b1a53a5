"""Gradient norms from activations and output gradients (hf_gradnorm) = autograd's own.

The expected norms come from ``torch.autograd.grad`` of transformers' shifted cross-entropy
over the answer labels (an independent route), for a tied and an untied tiny Llama: the
one-item fast path and the HF backend's (batched, ``hf_gradbatch``; more in
test_gradnorm_batched.py). The backend's first gradient batch checks the batched path against
the direct one on its longest and shortest item (a path that disagrees on one row is rejected:
test_gradnorm_batched.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_bench.backends import hf_scoring
from unlearn_bench.backends.base import Message, ScoreRequest
from unlearn_bench.backends.hf import HFBackend

QUESTIONS = ["In which city was the author born?", "What did she write first?", "Who?"]
ANSWERS = ["The author was born in a coastal town.", "A novel, then poems.", "No one."]


@pytest.fixture(scope="module", params=["tied", "untied"])
def backend(request, tmp_path_factory) -> HFBackend:
    from tiny_model import build_vllm_tiny_model

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp(request.param)
    build_vllm_tiny_model(folder, seed=3, tied=request.param == "tied")
    return HFBackend(str(folder), progress=False)


def _autograd_norms(backend: HFBackend, context: str, answer: str) -> list[float]:
    ctx, cont = backend._encode(context, False), backend._encode(answer, False)
    labels = torch.tensor([[-100] * len(ctx) + cont])
    params = [p for p in backend.model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = backend.model(input_ids=torch.tensor([ctx + cont]), labels=labels).loss
        grads = torch.autograd.grad(loss, params)
    return [g.double().norm().item() for g in grads]


def _requests(backend: HFBackend) -> list[ScoreRequest]:
    return [
        ScoreRequest(backend.chat_prompt([Message("user", q)]), a, grad_norm=True)
        for q, a in zip(QUESTIONS, ANSWERS, strict=True)
    ]


def test_one_item_fast_norms_equal_autograd_norms(backend) -> None:
    for req in _requests(backend):
        item = backend._encode_request(req)
        got = hf_scoring.score_with_grad(backend.model, item, False, backend.device, ghost=True)
        norms = _autograd_norms(backend, req.context, req.continuation)
        assert got.grad_norm == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-5)
        assert got.grad_norm_mean_param == pytest.approx(sum(norms) / len(norms), rel=1e-5)
    assert all(p.grad is None and p.requires_grad for p in backend.model.parameters())


def test_backend_norms_equal_autograd_norms(backend) -> None:
    tied = backend.model.lm_head.weight is backend.model.model.embed_tokens.weight
    assert tied == (backend.model.config.tie_word_embeddings is True)
    requests = _requests(backend)
    scores = backend.logprobs(requests)
    extra = backend.stats.extra
    # One batch: its longest and shortest item ran both paths and agreed; the third is batched.
    assert extra["grad_norm_ghost_checked"] == 2 and "grad_norm_ghost_rejected" not in extra
    assert extra["grad_norms_ghost"] == len(requests) - 2
    for req, got in zip(requests, scores, strict=True):
        norms = _autograd_norms(backend, req.context, req.continuation)
        assert got.grad_norm == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-5)
        assert got.grad_norm_mean_param == pytest.approx(sum(norms) / len(norms), rel=1e-5)
    assert all(p.grad is None and p.requires_grad for p in backend.model.parameters())


def test_model_types_outside_the_list_use_the_direct_path(tmp_path, monkeypatch) -> None:
    from tiny_model import build_vllm_tiny_model

    build_vllm_tiny_model(tmp_path / "m", seed=5)
    backend = HFBackend(str(tmp_path / "m"), progress=False)
    monkeypatch.setattr(backend.model.config, "model_type", "gpt2")
    backend.logprobs(_requests(backend))
    extra = backend.stats.extra
    assert "grad_norms_ghost" not in extra and "grad_norm_ghost_rejected" not in extra
    assert extra["grad_norms_direct"] == len(QUESTIONS)
