"""HF backend on the tiny model: log-probs exact to a manual forward pass, padding safe."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
from unlearn_bench.backends.hf import HFBackend


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return HFBackend(str(tiny_model_dir), batch_size=4, progress=False)


def _manual_logprobs(backend, context, continuation):
    tok, model = backend.tokenizer, backend.model
    ctx = tok(context, add_special_tokens=False).input_ids
    cont = tok(continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ctx + cont])).logits[0]
    logprobs = torch.log_softmax(logits.float(), -1)
    return [logprobs[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)]


def test_logprobs_match_manual_forward(backend):
    context = backend.chat_prompt(
        [
            __import__("unlearn_bench.backends.base", fromlist=["Message"]).Message(
                "user", "Where was the author born?"
            )
        ]
    )
    continuation = "The author was born in Paris."
    [scores] = backend.logprobs([ScoreRequest(context, continuation)])
    expected = _manual_logprobs(backend, context, continuation)
    assert scores.logprobs == pytest.approx(expected, abs=1e-5)
    assert len(scores.greedy) == len(expected)


def test_batched_scores_equal_single_scores_with_eot_padding(backend):
    """The pad token is <|im_end|>, which also ends turns inside the prompts (SPEC pitfall 1)."""
    from unlearn_bench.backends.base import Message

    contexts = [
        backend.chat_prompt([Message("system", "Be brief."), Message("user", q)])
        for q in ("Who?", "What is the capital of France and who wrote the book?", "Why?")
    ]
    requests = [ScoreRequest(c, " Paris is the capital.") for c in contexts]
    batched = backend.logprobs(requests)
    for request, scores in zip(requests, batched, strict=True):
        single = _manual_logprobs(backend, request.context, request.continuation)
        assert scores.logprobs == pytest.approx(single, abs=1e-4)


def test_greedy_generation_matches_unbatched_and_is_deterministic(backend):
    prompts = ["Question: Who wrote the book?\nAnswer:", "Hi"]
    batched = backend.generate([GenerateRequest(p, 8) for p in prompts])
    singles = [backend.generate([GenerateRequest(p, 8)])[0] for p in prompts]
    assert batched == singles
    assert backend.generate([GenerateRequest(prompts[0], 8)]) == [batched[0]]


def test_identity_has_weights_hash(backend):
    ident = backend.identity()
    assert len(ident["weights_sha256"]) == 64 and ident["dtype"] == "float32"


def test_too_long_request_is_a_clear_error(backend):
    from unlearn_bench.errors import UnlearnBenchError

    with pytest.raises(UnlearnBenchError, match="exceeds max length"):
        backend.logprobs([ScoreRequest("word " * 600, "end")])


def test_hub_id_loads_from_a_local_hub_cache(tiny_model_dir, tmp_path):
    """The hub path (org/name -> snapshot) on a local copy laid out as the Hub cache is."""
    import shutil

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(tiny_model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    code = textwrap.dedent(
        """
        from unlearn_bench.backends.hf import HFBackend
        b = HFBackend("tiny-org/tiny-llama", progress=False)
        print(b.identity()["revision"], b.model.config.num_hidden_layers)
        """
    )
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["main", "2"]


def test_missing_hub_model_is_a_one_line_error(tmp_path):
    code = (
        "from unlearn_bench.cli import main; import sys; sys.exit(main(['eval','--task','synthetic_people','--model','nobody/nothing','--runs-dir','"
        + str(tmp_path)
        + "']))"
    )
    env = {
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "UNLEARN_BENCH_CACHE": str(tmp_path / "c"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("unlearn-bench: error: cannot load model 'nobody/nothing'")


def test_plain_text_log_probs_match_manual_forward(backend):
    # A context with no chat template: the continuation's log-probs are those of one forward
    # pass over context + continuation (was only 'finite and <= 0').
    [scores] = backend.logprobs([ScoreRequest("Hi", " there")])
    expected = _manual_logprobs(backend, "Hi", " there")
    assert expected and scores.logprobs == pytest.approx(expected, abs=1e-5)
    assert all(lp <= 0 and math.isfinite(lp) for lp in scores.logprobs)
