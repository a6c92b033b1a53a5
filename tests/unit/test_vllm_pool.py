"""The vLLM engine pool's rules, without vLLM: which model reuses, swaps into or restarts an engine.

The engine is a stand-in that records the calls the pool makes (start, swap, prefix-cache reset,
shutdown); the key is computed from real tiny model folders. That a swapped engine answers as a
fresh one is tested with vLLM itself in tests/integration/test_vllm_engine_pool.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tiny_model import build_tiny_model_dir

from unlearn_bench.backends import vllm_engine, vllm_pool
from unlearn_bench.backends.vllm_engine import EngineSpec


def _spec(path: Path | str, **changes: object) -> EngineSpec:
    base = EngineSpec(
        model=str(path), tokenizer=str(path), revision=None, dtype="float32",
        max_model_len=512, seed=0, trust_remote_code=False, kv_cache_gb=1.0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pool-models")
    a = build_tiny_model_dir(root / "a", seed=0)
    b = build_tiny_model_dir(root / "b", seed=1)
    # b as a fine-tuned copy saves it: other name and dtype fields, the same architecture.
    config = json.loads((b / "config.json").read_text())
    config.update(_name_or_path="/somewhere/else", torch_dtype="bfloat16")
    (b / "config.json").write_text(json.dumps(config))
    other = build_tiny_model_dir(root / "other", seed=2)
    config = json.loads((other / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5  # an architecture change: the same tensors, other outputs
    (other / "config.json").write_text(json.dumps(config))
    return {"a": a, "b": b, "other": other}


def test_key_ignores_weights_and_file_names_only(folders):
    a, b, other = folders["a"], folders["b"], folders["other"]
    key = vllm_pool.engine_key
    assert key(_spec(a), "tok") == key(_spec(b), "tok")
    assert key(_spec(a), "tok") != key(_spec(other), "tok")  # config.json differs
    assert key(_spec(a), "tok") != key(_spec(b), "other tokenizer")
    assert key(_spec(a), "tok") != key(_spec(b, dtype="bfloat16"), "tok")
    assert key(_spec(a), "tok") != key(_spec(b, max_lora_rank=8), "tok")
    assert key(_spec(a), "tok") != key(_spec(b, kv_cache_gb=2.0), "tok")
    generation = b / "generation_config.json"
    saved = generation.read_text()
    generation.write_text(json.dumps({**json.loads(saved), "eos_token_id": 5}))
    try:
        assert key(_spec(a), "tok") != key(_spec(b), "tok")  # stop tokens come from here
    finally:
        generation.write_text(saved)
    # A hub id is no folder: reused only by the very same model, never swapped into.
    assert key(_spec("org/m"), "tok") != key(_spec("org/n"), "tok")


class FakeLLM:
    """Records what the pool asks of an engine; ``incomplete`` makes its swaps fail."""

    def __init__(self, log: list[str], name: str, incomplete: bool = False) -> None:
        self.log, self.name, self.incomplete = log, name, incomplete

    def collective_rpc(self, method: str, args: tuple = ()) -> list[dict[str, list[str]]]:
        self.log.append(f"{self.name}: {method} {Path(args[0]).name}")
        return [{"incomplete": ["lm_head.weight"] if self.incomplete else [], "reprepared": []}]

    def reset_prefix_cache(self) -> bool:
        self.log.append(f"{self.name}: reset_prefix_cache")
        return True


@pytest.fixture
def fake_engines(monkeypatch):
    log: list[str] = []
    state = {"incomplete": False}

    def start(spec: EngineSpec, on_cpu: bool) -> tuple[FakeLLM, Path]:
        name = f"engine{sum(line.startswith('start') for line in log) + 1}"
        log.append(f"start {name} on {Path(spec.model).name}")
        return FakeLLM(log, name, state["incomplete"]), Path("log")

    monkeypatch.setattr(vllm_engine, "start_engine", start)
    monkeypatch.setattr(vllm_engine, "shutdown_engine", lambda llm: log.append(f"stop {llm.name}"))
    return log, state


def test_pool_starts_swaps_reuses_and_stops(folders, fake_engines):
    log, _ = fake_engines
    a, b, other = (str(folders[k]) for k in ("a", "b", "other"))
    with vllm_pool.shared_engines() as pool:
        events = [
            pool.acquire(_spec(a), "tok", True, user=1).event,
            pool.acquire(_spec(a), "tok", True, user=1).event,  # the same backend again
            pool.acquire(_spec(b), "tok", True, user=2).event,
            pool.acquire(_spec(b), "tok", True, user=3).event,  # another backend, same weights
            pool.acquire(_spec(other), "tok", True, user=4).event,
        ]
    assert events == ["started", None, "swapped", "reused", "started"]
    assert log == [
        "start engine1 on a",
        "engine1: unlearn_bench_swap_weights b",
        "engine1: reset_prefix_cache",
        "stop engine1",
        "start engine2 on other",
        "stop engine2",  # the end of the scope
    ]
    assert not vllm_pool.POOL.active and vllm_pool.POOL.slot is None


def test_incomplete_swap_restarts_the_engine(folders, fake_engines):
    log, state = fake_engines
    state["incomplete"] = True
    with vllm_pool.shared_engines() as pool:
        pool.acquire(_spec(folders["a"]), "tok", True, user=1)
        assert pool.acquire(_spec(folders["b"]), "tok", True, user=2).event == "restarted"
        assert pool.slot is not None and pool.slot.weights == str(folders["b"])
    assert log == [
        "start engine1 on a",
        "engine1: unlearn_bench_swap_weights b",
        "stop engine1",
        "start engine2 on b",
        "stop engine2",
    ]
