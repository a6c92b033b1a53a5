"""A diverged unlearning run (gradient ascent at lr 10) is scored, not crashed.

Four GA steps at lr 10 push the tiny model's per-token NLLs into the tens of thousands of nats,
so an item's log truth ratio lands beyond float range (|log R| > ln(max float) ~ 709.78). Before
the fix ``math.exp`` raised OverflowError (R -> +inf) and the score refused R = 0.0 (underflow),
ending the run in a traceback. Expected scores come from TOFU's definitions, computed here in
log space from the stored per-token log-probabilities: min(R, 1/R) = exp(-|log R|) on forget,
max(0, 1 - R) on retain.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from unlearn_bench.cli import main

LOG_MAX_FLOAT = math.log(1.7976931348623157e308)  # ~709.78


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _log_r(sample: dict) -> float:
    obs = sample["obs"]
    perturbed = _mean([_mean(p["logprobs"]) for p in obs["perturbed_answer"]])
    return perturbed - _mean(obs["paraphrased_answer"]["logprobs"])


def test_ga_at_lr_10_finishes_with_limit_scores(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"task: synthetic_people\nmodel: {tiny_model_dir}\nruns_dir: {tmp_path / 'runs'}\n"
        f"leaderboards_dir: {tmp_path / 'lb'}\nrun_id: g\n"
        "finetune: {epochs: 1, lr: 1.0e-2, batch_size: 8}\n"
        "unlearn: [{method: grad_ascent, max_steps: 4, lr: 10.0, batch_size: 4}]\n"
        "eval: {limit: 6}\n"
    )
    assert main(["run", "--config", str(config)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    group = json.loads((tmp_path / "runs" / "g" / "GROUP.json").read_text())
    assert group["status"] == "finished"
    root = tmp_path / "runs" / "g" / "grad_ascent"
    samples = [
        json.loads(line)
        for line in (root / "samples" / "synthetic_people.jsonl").read_text().splitlines()
    ]
    scored = [s for s in samples if s["eval_set"] in ("forget", "retain")]
    logs = [_log_r(s) for s in scored]
    # The case is real: some ratio really is beyond float range, on both sides of 1.
    assert any(x > LOG_MAX_FLOAT for x in logs) and any(x < -LOG_MAX_FLOAT for x in logs), logs
    for sample, log_r in zip(scored, logs, strict=True):
        if sample["eval_set"] == "forget":
            assert sample["scores"]["truth_ratio_forget"] == pytest.approx(
                math.exp(-abs(log_r)), rel=1e-9, abs=1e-300
            )
        else:
            expected = 0.0 if log_r > 0 else 1.0 - math.exp(log_r)
            assert sample["scores"]["truth_ratio"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # A run this broken is marked collapsed, so its numbers are never ranked.
    assert json.loads((root / "header.json").read_text())["collapsed"] is not None
