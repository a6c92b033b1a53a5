"""Two CPU processes (torchrun + gloo) give the single-process result for the same effective batch.

The two-process run is the real command, ``torchrun --nproc_per_node 2 -m unlearn_bench.cli
run``, on the tiny model. Stated tolerances:

* against one process with ``grad_accum=2`` (the very same micro-batches): every weight within
  1e-6 (they agree exactly in practice: averaging two gradients over processes and accumulating
  two half-scaled gradients are the same float operations up to powers of two);
* against one process with ``batch_size=4`` (same examples, padded together): the weight
  difference is under 1e-3 of the size of the update itself (observed ~6e-6).
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

from unlearn_bench.config import RunConfig
from unlearn_bench.runner import run_protocol


def config_dict(model: Path, root: Path, batch_size: int, grad_accum: int) -> dict:
    return {
        "task": "synthetic_people", "model": str(model), "backend": "fake", "finetune": None,
        "retain_model": False, "runs_dir": str(root / "runs"),
        "leaderboards_dir": str(root / "lb"), "run_id": "g", "eval": {"limit": 2},
        "unlearn": [{"method": "grad_diff", "lr": 1e-3, "batch_size": batch_size,
                     "grad_accum": grad_accum, "max_steps": 3, "control": {"eval_every": 3}}],
    }  # fmt: skip


def single(model: Path, root: Path, monkeypatch, batch_size: int, grad_accum: int) -> Path:
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(root / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, records, _ = run_protocol(
            RunConfig.from_dict(config_dict(model, root, batch_size, grad_accum)),
            echo=lambda _: None,
        )
    finally:
        torch.set_num_threads(threads)
    return Path(records[-1].header["model_path"])


def two_processes(model: Path, root: Path) -> Path:
    root.mkdir(parents=True)
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(model, root, batch_size=2, grad_accum=1)))
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "unlearn_bench.cli", "run", "--config", str(cfg)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    header = json.loads((root / "runs" / "g" / "grad_diff" / "header.json").read_text())
    assert header["status"] == "finished"
    return Path(header["model_path"])


def rows(checkpoint: Path) -> list[dict]:
    return [json.loads(x) for x in (checkpoint / "train_log.jsonl").read_text().splitlines()]


def assert_same_log(multi_rows: list[dict], accum_rows: list[dict]) -> None:
    """3 rows written once (main process), losses averaged over processes, whole-batch tokens."""
    assert [r["step"] for r in multi_rows] == [1, 2, 3]
    for mine, theirs in zip(multi_rows, accum_rows, strict=True):
        for key in ("loss", "forget_loss", "retain_loss", "eval/retain_prob"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-7), key
        assert mine["tokens"] == theirs["tokens"]  # both count the whole global batch
    assert "eval/retain_prob" in multi_rows[-1]


def test_two_cpu_processes_match_one_process(tiny_model_dir, tmp_path, monkeypatch) -> None:
    multi = two_processes(tiny_model_dir, tmp_path / "multi")
    accum = single(tiny_model_dir, tmp_path / "accum", monkeypatch, batch_size=2, grad_accum=2)
    wide = single(tiny_model_dir, tmp_path / "wide", monkeypatch, batch_size=4, grad_accum=1)
    m, a, w = (load_file(str(p / "model.safetensors")) for p in (multi, accum, wide))
    start = load_file(str(tiny_model_dir / "model.safetensors"))

    assert max(float((m[k] - a[k]).abs().max()) for k in m) <= 1e-6
    update = sum(float((w[k] - start[k]).pow(2).sum()) for k in w) ** 0.5
    gap = sum(float((m[k] - w[k]).pow(2).sum()) for k in w) ** 0.5
    assert update > 0.01 and gap <= 1e-3 * update

    assert_same_log(rows(multi), rows(accum))


def test_global_batch_is_split_into_the_same_micro_batches(tiny_model_and_tokenizer) -> None:
    from unlearn_bench.config import TrainConfig
    from unlearn_bench.prompts import FormattedPrompt
    from unlearn_bench.train.loop import BatchSource, Example, total_steps

    _, tokenizer = tiny_model_and_tokenizer
    examples = [
        Example(FormattedPrompt(f"Question {i}?", True, " "), f"answer {i}") for i in range(5)
    ]

    def source() -> BatchSource:
        return BatchSource(tokenizer, {"forget": examples}, 2, 64, seed=7)

    one, rank0, rank1 = source(), source(), source()
    for _ in range(3):  # 3 steps x 4 examples crosses the 5-example epoch boundary
        accum = [b["forget"].input_ids for b in one.step(2, [0, 1])]
        (r0,), (r1,) = rank0.step(2, [0]), rank1.step(2, [1])
        assert torch.equal(accum[0], r0["forget"].input_ids)
        assert torch.equal(accum[1], r1["forget"].input_ids)
        assert r0["forget"].input_ids.shape[0] == r1["forget"].input_ids.shape[0] == 2
    # 10 examples, effective batch 2 x 1 x 2 processes = 4: ceil(10 / 4) = 3 steps per epoch.
    assert total_steps(TrainConfig(batch_size=2, epochs=2.0), 10, processes=2) == 6
    assert total_steps(TrainConfig(batch_size=2, epochs=2.0), 10) == 10
