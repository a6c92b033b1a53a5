"""FSDP on two CPU processes (gloo), launched by the real command, equals one process.

``accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m unlearn_bench.cli run`` on
the tiny model, GradDiff, per-process batch 2, 3 steps; against one process with the same global
batch as ``batch_size=2, grad_accum=2`` (the very same micro-batches, see test_multiprocess.py).
Stated tolerance: every weight within 1e-6, every logged loss within a relative 1e-6. FSDP
reduce-scatters each gradient shard's sum over the two processes and divides by two, which is
the same arithmetic as accumulating two half-scaled micro-batch gradients up to float rounding.
Also: a DeepSpeed launch on a machine without CUDA is refused in one line before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_multiprocess import assert_same_log, config_dict, rows, single

from unlearn_bench.cli import main

REPO = Path(__file__).resolve().parents[2]
FSDP_CPU = REPO / "configs" / "accelerate" / "fsdp_cpu.yaml"


def fsdp_two_processes(model: Path, root: Path) -> tuple[Path, str]:
    root.mkdir(parents=True)
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(model, root, batch_size=2, grad_accum=1)))
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(FSDP_CPU), "-m", "unlearn_bench.cli", "run", "--config", str(cfg)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    header = json.loads((root / "runs" / "g" / "grad_diff" / "header.json").read_text())
    assert header["status"] == "finished"
    return Path(header["model_path"]), done.stderr


@pytest.mark.slow  # ~20 s: two processes start, import torch and train (run with -m slow)
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU (gloo) path")
def test_fsdp_on_two_cpu_processes_matches_one_process(tiny_model_dir, tmp_path, monkeypatch):
    fsdp, stderr = fsdp_two_processes(tiny_model_dir, tmp_path / "fsdp")
    # Really sharded: without the switch in train/loop.py accelerate wraps the model in DDP.
    assert "DDP constructor" not in stderr
    accum = single(tiny_model_dir, tmp_path / "accum", monkeypatch, batch_size=2, grad_accum=2)
    f, a = (load_file(str(p / "model.safetensors")) for p in (fsdp, accum))
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    assert sorted(f) == sorted(a)
    assert max(float((f[k] - start[k]).abs().max()) for k in f) > 1e-4  # it did train
    gap = max(float((f[k] - a[k]).abs().max()) for k in f)
    print(f"FSDP vs one process, largest weight difference: {gap:.3g}")
    assert gap <= 1e-6

    assert_same_log(rows(fsdp), rows(accum))


@pytest.mark.skipif(torch.cuda.is_available(), reason="DeepSpeed can run where CUDA is")
def test_deepspeed_without_cuda_is_refused_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    runs = tmp_path / "runs"
    code = main(["run", "--config", str(REPO / "configs" / "demo.yaml"), "--runs-dir", str(runs)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("unlearn-bench: error: DeepSpeed needs CUDA GPUs")
    assert "this machine has no CUDA device" in err
    assert not runs.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_fsdp_sync_module_states_on_cpu_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "true")
    assert main(["ls"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "unlearn-bench: error: FSDP on CPU needs fsdp_sync_module_states: false (torch's FSDP "
        "cannot sync module states on CPU); use configs/accelerate/fsdp_cpu.yaml"
    )
