"""Without vLLM installed: error messages, backend ``auto`` routing, re-scoring with no model.

These run in the default suite; the tests that start a vLLM engine are in test_vllm_backend.py
and test_vllm_parity.py (marked ``vllm``).
"""

from __future__ import annotations

import json

import pytest

from unlearn_bench.backends import vllm_engine
from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
from unlearn_bench.backends.fake import FakeBackend

START_FAILURE_LOG = """\
(EngineCore pid=11028) WARNING 11-22 21:15:15 [ompmultiprocessing.py:63] VLLM_CPU_NUM_OF_RESERVED_CPU is less than the minimum requirement: 1 cores
(VllmWorker-0 pid=11116) ERROR 11-22 21:15:29 [multiproc_executor.py:953]     raise ValueError(
(VllmWorker-0 pid=11116) ERROR 11-22 21:15:29 [multiproc_executor.py:953] ValueError: Available memory on node 0 (9.17/12.59 GiB) on startup is less than desired CPU memory utilization (0.92, 11.58 GiB).
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_root_cause_skips_generic_wrappers():
    cause = vllm_engine.root_cause(START_FAILURE_LOG)
    assert cause.startswith("ValueError: Available memory on node 0 (9.17/12.59 GiB)")


def test_start_failure_is_one_line_with_a_suggestion(tmp_path):
    log = tmp_path / "engine.log"
    log.write_text(START_FAILURE_LOG)
    error = vllm_engine.explain("engine failed to start", RuntimeError("see above"), log)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("vLLM engine failed to start: ValueError: Available memory")
    assert "kv_cache_gb" in message and "--backend hf" in message and str(log) in message


@pytest.mark.parametrize(
    ("cause", "advice"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", "gpu_memory_utilization"),
        (
            "ValueError: max_model_len (9000) is greater than the derived max_model_len",
            "max_length",
        ),
        ("ValueError: Model architectures ['Foo'] are not supported for now", "--backend hf"),
        ("RuntimeError: An attempt has been made ... bootstrapping phase", "__main__"),
    ],
)
def test_suggestions_match_causes(cause, advice):
    assert advice in vllm_engine.suggestion(cause)


def test_without_a_log_the_exception_text_is_the_cause():
    cause = vllm_engine.root_cause("", RuntimeError("Engine core died\nmore"))
    assert cause == "RuntimeError: Engine core died"


@pytest.mark.parametrize("handler", ["default", "ignore"])
def test_interrupts_are_noted_and_handled_as_before(handler):
    import os
    import signal
    import time

    # a job started in the background of a shell inherits SIGINT ignored: both cases are set
    # here explicitly, and each keeps its behaviour inside the watch
    before = signal.getsignal(signal.SIGINT)
    handlers = {"default": signal.default_int_handler, "ignore": signal.SIG_IGN}
    signal.signal(signal.SIGINT, handlers[handler])
    try:
        with vllm_engine.watch_interrupts() as quiet:
            pass
        assert not quiet.interrupted and signal.getsignal(signal.SIGINT) is handlers[handler]
        raised = False
        try:
            with vllm_engine.watch_interrupts() as watch:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs at the next bytecode; sleep is interrupted
        except KeyboardInterrupt:
            raised = True
        assert watch.interrupted and raised is (handler == "default")
        assert signal.getsignal(signal.SIGINT) is handlers[handler]
    finally:
        signal.signal(signal.SIGINT, before)


def test_cpu_ranges_and_environment(monkeypatch):
    assert vllm_engine.cpu_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert vllm_engine.cpu_ranges([3]) == "3"
    for key in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_LOGGING_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # a user's own setting wins
    vllm_engine.prepare_environment(on_cpu=True)
    import os

    assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == vllm_engine.cpu_ranges(
        sorted(os.sched_getaffinity(0))
    )
    assert os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_engine_kwargs_pass_parallel_settings_through():
    spec = vllm_engine.EngineSpec(
        model="m", tokenizer="m", revision=None, dtype="bfloat16", max_model_len=4096, seed=1,
        trust_remote_code=False, tensor_parallel_size=4, pipeline_parallel_size=2,
        data_parallel_size=2, kv_cache_gb=0.5, enforce_eager=False, max_lora_rank=16,
    )  # fmt: skip
    kwargs = vllm_engine.engine_kwargs(spec)
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["pipeline_parallel_size"] == 2
    assert kwargs["data_parallel_size"] == 2
    assert kwargs["kv_cache_memory_bytes"] == 512 * 1024 * 1024
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 16
    assert kwargs["dtype"] == "bfloat16" and kwargs["max_model_len"] == 4096


def test_device_dtype_and_adapter_rules(tmp_path, monkeypatch):
    from unlearn_bench.errors import UnlearnBenchError

    monkeypatch.setattr(vllm_engine, "cpu_build", lambda: True)
    assert vllm_engine.check_device("auto") is True
    with pytest.raises(UnlearnBenchError, match="CPU only"):
        vllm_engine.check_device("cuda")
    monkeypatch.setattr(vllm_engine, "cpu_build", lambda: False)
    assert vllm_engine.check_device("cuda") is False
    with pytest.raises(UnlearnBenchError, match="CUDA_VISIBLE_DEVICES"):
        vllm_engine.check_device("cuda:1")
    with pytest.raises(UnlearnBenchError, match="GPU build"):
        vllm_engine.check_device("cpu")
    assert vllm_engine.pick_dtype("auto", on_cpu=True) == "float32"
    assert vllm_engine.pick_dtype("auto", on_cpu=False) == "bfloat16"
    with pytest.raises(UnlearnBenchError, match="unknown dtype"):
        vllm_engine.pick_dtype("fp8", on_cpu=True)
    # A LoRA checkpoint: merged weights at the root, the adapter in adapter/.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert vllm_engine.find_adapter(tmp_path, use_checkpoint_adapter=False) is None
    assert vllm_engine.find_adapter(tmp_path, use_checkpoint_adapter=True) == tmp_path / "adapter"
    # A bare adapter folder is always served as base model + adapter.
    assert vllm_engine.find_adapter(tmp_path / "adapter", False) == tmp_path / "adapter"


class _Recorder(FakeBackend):
    """A fake engine that records which requests reached it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[object] = []

    def logprobs(self, requests):
        self.seen += requests
        return super().logprobs(requests)

    def generate(self, requests):
        self.seen += requests
        return super().generate(requests)


def _recording_auto(device: str):
    from unlearn_bench.backends.auto import AutoBackend

    auto = AutoBackend.__new__(AutoBackend)  # the two engines are replaced by recorders
    auto.fast, auto._hf, auto._identity, auto.model = _Recorder("fast"), _Recorder("hf"), None, "m"
    auto._hf_kwargs = {"device": device}
    return auto


def test_auto_on_cpu_scores_with_hf_and_generates_with_vllm():
    # Measured on CPU: HF's shared-prefix scoring beat vLLM's prompt log-probs (460 s vs 777 s).
    auto = _recording_auto("cpu")
    plain = ScoreRequest("q", "a b")
    extras = ScoreRequest("q", "a b", vocab_stats=True)
    out = auto.logprobs([plain, extras, plain])
    assert auto.fast.seen == [] and auto._hf.seen == [plain, extras, plain]
    assert out[0] == FakeBackend("hf").logprobs([plain])[0]
    gen = [GenerateRequest("p", 4), GenerateRequest("p", 4, images=("aGk=",))]
    auto.generate(gen)
    assert auto.fast.seen == [gen[0]] and auto._hf.seen[-1] == gen[1]


def test_auto_routes_each_request_to_one_engine():
    auto = _recording_auto("cuda")  # off the CPU, plain log-probs go to vLLM
    plain = ScoreRequest("q", "a b")
    extras = ScoreRequest("q", "a b", vocab_stats=True)
    out = auto.logprobs([plain, extras, plain])
    assert auto.fast.seen == [plain, plain] and auto._hf.seen == [extras]
    # Order is kept: the first and third answers are the fast engine's, the second HF's.
    assert out[0] == out[2] == FakeBackend("fast").logprobs([plain])[0]
    assert out[1] == FakeBackend("hf").logprobs([extras])[0]
    gen = [GenerateRequest("p", 4), GenerateRequest("p", 4, images=("aGk=",))]
    auto.generate(gen)
    assert auto.fast.seen[-1] == gen[0] and auto._hf.seen[-1] == gen[1]
    assert auto.stats.forward_batches == 4  # two calls on each engine


def test_auto_without_vllm_is_hf_with_hf_identity(monkeypatch, tiny_model_dir):
    import unlearn_bench.backends.auto as auto_module
    from unlearn_bench.backends.hf import HFBackend

    monkeypatch.setattr(auto_module, "vllm_available", lambda: False)
    auto = auto_module.AutoBackend(str(tiny_model_dir), progress=False)
    assert auto.fast is None
    assert auto.identity() == HFBackend(str(tiny_model_dir), progress=False).identity()


def test_vllm_backend_refused_for_tasks_needing_vocab_stats():
    from unlearn_bench.backends.base import BACKENDS
    from unlearn_bench.backends.vllm import VLLMBackend

    assert BACKENDS.get("vllm") is VLLMBackend
    assert {"vocab_stats", "grad"}.isdisjoint(VLLMBackend.capabilities)
    assert {"vocab_stats", "grad"} <= BACKENDS.get("auto").capabilities


def test_score_of_a_finished_run_makes_no_forward_pass(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    """``unlearn-bench score`` reads stored observations: no backend is ever built."""
    from unlearn_bench.backends import base
    from unlearn_bench.cli import main
    from unlearn_bench.config import RunConfig
    from unlearn_bench.runner import run_protocol

    config = RunConfig.from_dict(
        {"task": "synthetic_people", "backend": "fake", "model": str(tiny_model_dir),
         "finetune": None, "unlearn": [], "retain_model": False, "run_id": "g",
         "runs_dir": str(tmp_path / "runs"), "eval": {"limit": 4}}
    )  # fmt: skip
    _, records, _ = run_protocol(config, echo=lambda _: None)
    run_dir = records[0].root
    stored = json.loads((run_dir / "results.json").read_text())["synthetic_people"]
    assert records[0].header["stages"]["evaluate"]["backend_stats"]["forward_batches"] > 0
    built: list[str] = []

    def forbidden(*args, **kwargs):
        built.append("backend")
        raise AssertionError("a backend was built during score")

    for name in base.BACKENDS.names():
        monkeypatch.setitem(base.BACKENDS._entries, name, forbidden)
    capsys.readouterr()
    assert main(["score", str(run_dir)]) == 0
    rescored = json.loads(capsys.readouterr().out)["synthetic_people"]
    assert built == []
    for key in ("forget/probability", "forget/rouge_l_recall", "retain/truth_ratio"):
        assert rescored[key]["value"] == pytest.approx(stored[key]["value"])
