"""`unlearn-bench compare-runs`: metrics that differ, and the recorded settings that could explain."""

import json
from pathlib import Path

from unlearn_bench.cli import main


def _run(root: Path, capability: str, threads: int, probability: float) -> Path:
    root.mkdir(parents=True)
    header = {
        "run_id": root.name, "status": "finished", "label": root.name, "git_commit": "abc",
        "packages": {"torch": "2.13.0"}, "platform": {"machine": "x86_64"},
        "numerics": {"cpu_capability": capability, "torch_threads": threads},
        "config": {"task": "t", "run_id": root.name, "runs_dir": str(root.parent)},
    }  # fmt: skip
    results = {"t": {"forget/probability": {"value": probability}, "n_items": {"value": 3}}}
    (root / "header.json").write_text(json.dumps(header))
    (root / "results.json").write_text(json.dumps(results))
    return root


def test_identical_runs_exit_zero(tmp_path, capsys):
    a = _run(tmp_path / "a" / "npo", "AVX2", 2, 0.25)
    b = _run(tmp_path / "b" / "npo", "AVX2", 2, 0.25)
    assert main(["compare-runs", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "0 metric(s) differ" in out
    assert "what differs" not in out  # run_id and runs_dir are not settings


def test_a_difference_is_listed_with_the_settings_that_differ(tmp_path, capsys):
    _run(tmp_path / "a" / "npo", "AVX2", 2, 0.25)
    _run(tmp_path / "b" / "npo", "AVX512", 2, 0.2500001)
    _run(tmp_path / "b" / "ga", "AVX512", 2, 0.1)  # only in b: not paired
    assert main(["compare-runs", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "== npo: 1 metric(s) differ" in out
    assert "t/forget/probability: 0.25 -> 0.2500001" in out
    assert "numerics.cpu_capability: 'AVX2' -> 'AVX512'" in out
    assert "torch_threads" not in out  # equal in both
    assert "== ga" not in out


def test_tolerance_absorbs_small_differences(tmp_path):
    a = _run(tmp_path / "a" / "npo", "AVX2", 2, 0.25)
    b = _run(tmp_path / "b" / "npo", "AVX2", 1, 0.2500001)
    assert main(["compare-runs", str(a), str(b), "--tolerance", "1e-6"]) == 0
    assert main(["compare-runs", str(a), str(b)]) == 1


def test_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    a = _run(tmp_path / "a" / "npo", "AVX2", 2, 0.25)
    assert main(["compare-runs", str(a), str(tmp_path / "empty")]) == 2
    assert "neither a run record nor a run group" in capsys.readouterr().err
