"""The whole protocol on a tiny random model: finetune, unlearn, evaluate, score, leaderboard."""

import json
from pathlib import Path

import by_hand
import pytest

from unlearn_bench.cli import main
from unlearn_bench.config import RunConfig
from unlearn_bench.runner import run_protocol
from unlearn_bench.runs import find_runs


def _config(model_dir: Path, tmp_path: Path, **extra) -> RunConfig:
    data = {
        "task": "synthetic_people",
        "model": str(model_dir),
        "runs_dir": str(tmp_path / "runs"),
        "leaderboards_dir": str(tmp_path / "lb"),
        "run_id": "g",
        "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
        "unlearn": [{"method": "grad_ascent", "epochs": 2, "lr": 1e-2, "batch_size": 4}],
        "eval": {"limit": 6},
        **extra,
    }
    return RunConfig.from_dict(data)


def test_protocol_end_to_end(tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, tmp_path)
    group, records, seconds = run_protocol(config, echo=lambda _: None)
    assert [r.header["label"] for r in records] == ["target", "retain", "grad_ascent"]
    assert {"finetune target on full", "unlearn grad_ascent", "evaluate target"} <= set(seconds)
    results = {r.header["label"]: r.results()["synthetic_people"] for r in records}
    # The retain model against itself: identical truth-ratio samples give a KS p-value of 1.
    assert results["retain"]["forget_quality"]["value"] == pytest.approx(1.0)
    # Forget quality: KS p-value of the per-item truth ratios vs the retain model's, from the
    # stored samples (was a [0, 1] range check).
    expected = by_hand.forget_quality(
        records[2].read_samples("synthetic_people"), records[1].read_samples("synthetic_people")
    )
    assert results["grad_ascent"]["forget_quality"]["value"] == pytest.approx(expected, rel=1e-9)
    # Gradient ascent at this learning rate must lower the forget-answer probability.
    assert (
        results["grad_ascent"]["forget/probability"]["value"]
        < results["target"]["forget/probability"]["value"]
    )
    header = records[2].header
    assert header["status"] == "finished"
    assert header["backend"]["weights_sha256"]
    assert header["stages"]["evaluate"]["seconds"] > 0  # a real evaluation took some time
    samples = records[2].read_samples("synthetic_people")
    assert {s["eval_set"] for s in samples} == {"forget", "retain", "holdout"}
    forget = [s for s in samples if s["eval_set"] == "forget"]
    assert len(forget[0]["obs"]["perturbed_answer"]) == 3
    assert "probability" in forget[0]["scores"]


def test_rerun_is_refused_and_new_group_reuses_cached_stages(tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, tmp_path)
    run_protocol(config, echo=lambda _: None)
    assert main(["run", "--config", _write(config, tmp_path)]) == 2  # finished group
    fresh = _config(tiny_model_dir, tmp_path, run_id="g2")
    _, records, _ = run_protocol(fresh, echo=lambda _: None)
    stats = [r.header["stages"]["evaluate"] for r in records]
    # Checkpoints came from the cache, and every response too: zero forward passes.
    assert all(r.header["stage_info"]["cached"] for r in records)
    assert all(s["backend_stats"]["forward_batches"] == 0 for s in stats)


def test_interrupted_run_resumes_from_finished_stages(tiny_model_dir, tmp_path, monkeypatch):
    import unlearn_bench.runner as runner

    config = _config(tiny_model_dir, tmp_path)
    real = runner.evaluate_subject
    calls = []

    def flaky(p, subject, timer):
        calls.append(subject.label)
        if subject.label == "grad_ascent" and calls.count("grad_ascent") == 1:
            raise KeyboardInterrupt
        return real(p, subject, timer)

    monkeypatch.setattr(runner, "evaluate_subject", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(config, echo=lambda _: None)
    group = tmp_path / "runs" / "g"
    assert not (group / "grad_ascent" / "results.json").exists()
    assert not (group / "target" / "results.json").exists()  # nothing looks complete
    done_before = json.loads((group / "target" / "header.json").read_text())["stages"]["evaluate"]
    run_protocol(config, echo=lambda _: None)
    after = json.loads((group / "target" / "header.json").read_text())
    assert after["stages"]["evaluate"] == done_before  # not redone
    assert after["status"] == "finished" and after["resumed"] == 1


def test_score_recomputes_from_stored_samples(tiny_model_dir, tmp_path, capsys):
    config = _config(tiny_model_dir, tmp_path)
    run_protocol(config, echo=lambda _: None)
    run_dir = tmp_path / "runs" / "g" / "grad_ascent"
    stored = json.loads((run_dir / "results.json").read_text())["synthetic_people"]
    capsys.readouterr()
    assert (
        main(["score", str(run_dir), "--reference", str(tmp_path / "runs" / "g" / "retain")]) == 0
    )
    rescored = json.loads(capsys.readouterr().out)["synthetic_people"]
    for key in ("forget/probability", "retain/rouge_l_recall", "forget_quality"):
        assert rescored[key]["value"] == pytest.approx(stored[key]["value"])


def test_leaderboard_written_from_records(tiny_model_dir, tmp_path, capsys):
    config = _config(tiny_model_dir, tmp_path)
    run_protocol(config, echo=lambda _: None)
    out = tmp_path / "tables"
    assert main(["leaderboard", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 0
    table = (out / "synthetic_people.md").read_text()
    assert "forget_quality ↑" in table
    for record in find_runs(tmp_path / "runs"):
        assert record.run_id in table
    csv_lines = (out / "synthetic_people.csv").read_text().splitlines()
    assert len(csv_lines) == 4  # header + target, retain, grad_ascent


def _write(config: RunConfig, tmp_path: Path) -> str:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    return str(path)
