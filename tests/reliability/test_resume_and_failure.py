"""Resuming a group demands the same settings (--limit included); a failed run says "failed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn_bench import evaluate
from unlearn_bench.cli import main


def _argv(model: Path, runs: Path, limit: int) -> list[str]:
    return [
        "eval", "--task", "synthetic_people", "--backend", "fake", "--model", str(model),
        "--run-id", "g", "--runs-dir", str(runs), "--limit", str(limit),
    ]  # fmt: skip


def _crash_in_evaluation(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def crash(*_: object, **__: object) -> None:
        raise exc

    monkeypatch.setattr(evaluate, "score_samples", crash)


def test_resume_refuses_another_limit(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    runs = tmp_path / "runs"
    with monkeypatch.context() as m:
        _crash_in_evaluation(m, KeyboardInterrupt())
        assert main(_argv(tiny_model_dir, runs, 4)) == 130
    capsys.readouterr()
    assert main(_argv(tiny_model_dir, runs, 2)) == 2
    err = capsys.readouterr().err.strip()
    assert "other settings" in err and "eval" in err and "\n" not in err
    assert main(_argv(tiny_model_dir, runs, 4)) == 0
    assert json.loads((runs / "g" / "GROUP.json").read_text())["status"] == "finished"


def test_failed_run_says_failed_with_the_error(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    _crash_in_evaluation(monkeypatch, RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError):
        main(_argv(tiny_model_dir, runs, 4))
    group = json.loads((runs / "g" / "GROUP.json").read_text())
    assert group["status"] == "failed" and "disk on fire" in group["error"]
    headers = [json.loads(p.read_text()) for p in (runs / "g").glob("*/header.json")]
    assert headers and all(h["status"] == "failed" for h in headers)
    assert all("disk on fire" in h["error"] for h in headers)
