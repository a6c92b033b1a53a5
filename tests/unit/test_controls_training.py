"""Controls inside a real unlearning stage on the tiny model: selection, early stop, mixing.

A module fixture finetunes the tiny random model on synthetic_people (40 steps) so forget and
retain answers have probabilities worth protecting; gradient ascent then drives both down.
Each check re-evaluates the SAVED checkpoint with the same probe and compares it with what the
controller recorded, so a control that logs one thing and saves another fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unlearn_bench.config import ControlConfig, FinetuneConfig, RunConfig, UnlearnConfig
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data
from unlearn_bench.train.controls import probe
from unlearn_bench.train.stages import StageInputs, control_probe_parts, finetune, unlearn


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin on a busy 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    spec = parse_task(find_task("synthetic_people"))
    return spec, load_task_data(spec, None)


@pytest.fixture(scope="module")
def target(tiny_model_dir, task, tmp_path_factory) -> str:
    spec, splits = task
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARN_BENCH_CACHE", str(tmp_path_factory.mktemp("ft-cache")))
        torch.set_num_threads(1)
        cfg = FinetuneConfig(lr=3e-2, batch_size=8, max_steps=40)
        return str(
            finetune(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), "full", cfg).path
        )


def run(target: str, task, **control) -> tuple[Path, dict, UnlearnConfig]:
    spec, splits = task
    ucfg = UnlearnConfig(
        method="grad_ascent", lr=3e-3, batch_size=4, max_steps=12, control=ControlConfig(**control)
    )
    path = unlearn(StageInputs(target, "target", spec, splits, 0), ucfg).path
    return path, json.loads((path / "controls.json").read_text()), ucfg


def reprobe(path: Path, task, ucfg: UnlearnConfig) -> dict[str, float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, splits = task
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    return probe(model, control_probe_parts(spec, tokenizer, splits, ucfg))


def log_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "train_log.jsonl").read_text().splitlines()]


def test_selection_keeps_the_best_step_not_the_last(target, task) -> None:
    path, summary, ucfg = run(target, task, eval_every=2, select="utility_floor", utility_floor=0.8)
    history = {h["step"]: h for h in summary["history"]}
    assert sorted(history) == [0, 2, 4, 6, 8, 10, 12]
    floor = 0.8 * history[0]["retain_prob"]
    eligible = [s for s, h in history.items() if h["retain_prob"] >= floor]
    expected = max(eligible, key=lambda s: (1 - history[s]["forget_prob"], -s))
    assert summary["best_step"] == expected
    assert 0 < expected < 12  # this run over-unlearns, so the rule must pick a middle step
    again = reprobe(path, task, ucfg)
    for key in ("forget_nll", "forget_prob", "retain_nll", "retain_prob"):
        assert again[key] == pytest.approx(history[expected][key], rel=1e-6)
    rows = log_rows(path)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all({"loss", "forget_loss"} <= set(r) for r in rows)
    assert rows[3]["eval/forget_prob"] == pytest.approx(history[4]["forget_prob"])
    assert not (path / "snapshots").exists()  # snapshots never ship inside a checkpoint


def test_early_stop_when_forget_nll_passes_bound(target, task) -> None:
    _, free, _ = run(target, task, eval_every=2)
    nll = {h["step"]: h["forget_nll"] for h in free["history"]}
    assert nll[2] < nll[4] < nll[6]  # gradient ascent raises the forget NLL
    path, summary, _ = run(target, task, eval_every=2, stop_forget_nll=nll[6])
    assert summary["steps"] == 6 and summary["stop_reason"].startswith("forget_nll")
    assert [r["step"] for r in log_rows(path)] == [1, 2, 3, 4, 5, 6]


def test_mixing_meets_the_utility_floor_with_the_smallest_r(target, task) -> None:
    path, summary, ucfg = run(target, task, eval_every=4, utility_floor=0.8, mix=True)
    mix = summary["mix"]
    assert mix["floor_value"] == pytest.approx(0.8 * mix["start_retain_prob"])
    assert mix["start_retain_prob"] == pytest.approx(summary["baseline"]["retain_prob"])
    tried = mix["tried"]
    assert mix["r"] == tried[-1]["r"] > 0  # the last step fell under the floor, so r > 0
    assert all(t["retain_prob"] < mix["floor_value"] for t in tried[:-1])
    assert tried[-1]["retain_prob"] >= mix["floor_value"]
    assert [t["r"] for t in tried] == pytest.approx([i / 10 for i in range(len(tried))])
    again = reprobe(path, task, ucfg)
    assert again["retain_prob"] == pytest.approx(tried[-1]["retain_prob"], rel=1e-6)


def test_run_record_gets_the_training_log(target, task, tmp_path) -> None:
    from unlearn_bench.runner import run_protocol

    config = RunConfig.from_dict(
        {
            "task": "synthetic_people", "model": target, "backend": "fake", "finetune": None,
            "retain_model": False, "runs_dir": str(tmp_path / "runs"), "run_id": "g",
            "eval": {"limit": 2},
            "unlearn": [{"method": "grad_diff", "lr": 1e-3, "batch_size": 2, "max_steps": 3,
                         "control": {"eval_every": 3}}],
        }
    )  # fmt: skip
    run_protocol(config, echo=lambda _: None)
    record = tmp_path / "runs" / "g" / "grad_diff"
    rows = log_rows(record)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss", "forget_loss", "retain_loss", "eval/retain_prob"} <= set(rows[-1])
    assert json.loads((record / "controls.json").read_text())["steps"] == 3
