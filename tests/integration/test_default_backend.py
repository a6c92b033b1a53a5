"""The default backend (auto) through the real ``eval`` command: same numbers as plain ``hf``.

Without vLLM (or with ``UNLEARN_BENCH_NO_VLLM=1``, which conftest sets for tests not marked
``vllm``), auto is HF alone: identical scores, the same identity (so the same cache entries) and
the routing said in the header. The vLLM-marked test runs auto with vLLM generating.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn_bench.cli import main

PHASES = {"load", "logprobs", "grad_norms", "generate", "score"}


def _eval(tiny_model_dir: Path, data: Path, root: Path, run_id: str, *extra: str) -> dict:
    """Run ``unlearn-bench eval`` on TOFU forget01 (2 items per set); its one run's header."""
    argv = [
        "eval", "--task", "tofu_forget01", "--model", str(tiny_model_dir),
        "--data-dir", str(data / "tofu"), "--limit", "2", "--no-cache",
        "--runs-dir", str(root / "runs"), "--run-id", run_id, *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    (header,) = (root / "runs" / run_id).glob("*/header.json")
    return json.loads(header.read_text())


def _samples(header_path: Path) -> list[dict]:
    from unlearn_bench.runs import RunRecord

    return RunRecord(header_path.parent).read_samples("tofu_forget01")


def test_default_is_auto_and_gives_plain_hf_numbers(tiny_model_dir, shared_data, tmp_path):
    default = _eval(tiny_model_dir, shared_data, tmp_path, "default")
    plain = _eval(tiny_model_dir, shared_data, tmp_path, "plain", "--backend", "hf")
    assert default["config"]["backend"] == "auto" and plain["config"]["backend"] == "hf"
    assert default["routing"] == "all: hf (UNLEARN_BENCH_NO_VLLM=1)"
    assert plain["routing"] == "all: hf"
    # HF alone computes everything: HF's own identity, hence HF's cache entries.
    assert default["backend"] == plain["backend"] and default["backend"]["backend"] == "hf"
    assert default["set_results"] == plain["set_results"]
    runs = tmp_path / "runs"
    (d_header,) = (runs / "default").glob("*/header.json")
    (p_header,) = (runs / "plain").glob("*/header.json")
    samples = _samples(d_header)
    assert samples and samples == _samples(p_header)
    # The run record says where the evaluation's time went, phase by phase.
    seconds = default["stages"]["evaluate"]["backend_stats"]["seconds"]
    assert set(seconds) == PHASES and all(v >= 0 for v in seconds.values())


def test_auto_without_vllm_installed_says_so(monkeypatch, tiny_model_dir):
    import unlearn_bench.backends.auto as auto_module

    monkeypatch.delenv("UNLEARN_BENCH_NO_VLLM")
    monkeypatch.setattr(auto_module, "vllm_available", lambda: False)
    auto = auto_module.AutoBackend(str(tiny_model_dir), progress=False)
    assert auto.fast is None and auto.routing == "all: hf (vLLM is not installed)"


def test_auto_reads_pickle_weights_with_hf_only(monkeypatch, tmp_path, tiny_model_dir):
    import shutil

    import torch
    from safetensors.torch import load_file

    import unlearn_bench.backends.auto as auto_module

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    monkeypatch.delenv("UNLEARN_BENCH_NO_VLLM")
    monkeypatch.setattr(auto_module, "vllm_available", lambda: True)  # decided before vLLM
    auto = auto_module.AutoBackend(str(folder), progress=False, allow_pickle=True)
    assert auto.fast is None
    assert auto.routing == "all: hf (pickle-only weights: HF's checked loader reads them)"
    assert auto.hf.identity()["weights_format"].startswith("pickle")


@pytest.mark.vllm
def test_default_with_vllm_generates_with_vllm_and_scores_like_hf(shared_data, tmp_path):
    from tiny_model import build_vllm_tiny_model

    from unlearn_bench.backends.auto import ROUTING_CPU

    model = build_vllm_tiny_model(tmp_path / "tiny-vllm")  # head_dim 64 for vLLM's CPU kernels
    default = _eval(model, shared_data, tmp_path, "default")
    plain = _eval(model, shared_data, tmp_path, "plain", "--backend", "hf")
    assert default["routing"] == ROUTING_CPU and default["backend"]["backend"] == "auto"
    runs = tmp_path / "runs"
    (d_header,) = (runs / "default").glob("*/header.json")
    (p_header,) = (runs / "plain").glob("*/header.json")
    d_samples, p_samples = _samples(d_header), _samples(p_header)
    assert len(d_samples) == len(p_samples)
    for a, b in zip(d_samples, p_samples, strict=True):
        # Log-probs come from the same HF path; greedy texts from vLLM match HF's.
        assert a == b
    assert default["set_results"] == plain["set_results"]
    assert "engine_start" in default["stages"]["evaluate"]["backend_stats"]["seconds"]


@pytest.mark.vllm
def test_auto_falls_back_to_hf_when_vllm_cannot_run_the_model(tiny_model_dir, capsys):
    """The tiny model's head size (8) is one vLLM's CPU attention lacks: found at build time."""
    from unlearn_bench.backends.auto import AutoBackend
    from unlearn_bench.backends.hf import HFBackend

    auto = AutoBackend(str(tiny_model_dir), progress=False)
    assert auto.fast is None
    assert auto.routing.startswith("all: hf (vLLM engine failed to start")
    assert "HF computes everything instead" in capsys.readouterr().err
    assert auto.identity() == HFBackend(str(tiny_model_dir), progress=False).identity()
