import json

import pytest

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import atomic_write_text
from unlearn_bench.runs import RunRecord, find_runs


def test_create_header_has_provenance(tmp_path):
    record = RunRecord.open_or_create(tmp_path / "r", "g/r", {"fingerprint": "abc", "seed": 7})
    header = json.loads((tmp_path / "r" / "header.json").read_text())
    assert header["status"] == "running"
    assert header["seed"] == 7
    assert "torch" in header["packages"] and "python" in header["packages"]
    assert "git_commit" in header
    assert record.run_id == "g/r"


def test_stages_resume_and_finished_run_is_refused(tmp_path):
    root = tmp_path / "r"
    record = RunRecord.open_or_create(root, "r", {"fingerprint": "abc"})
    record.mark_stage("evaluate", 1.234, cache_hits=3)
    # An interrupted run reopens with its finished stages intact.
    again = RunRecord.open_or_create(root, "r", {"fingerprint": "abc"})
    assert again.stage("evaluate") == {"seconds": 1.23, "cache_hits": 3}
    assert again.header["resumed"] == 1
    with pytest.raises(UnlearnBenchError, match="different config"):
        RunRecord.open_or_create(root, "r", {"fingerprint": "other"})
    again.write_results({"t": {}})
    again.finish()
    with pytest.raises(UnlearnBenchError, match="already holds a finished run"):
        RunRecord.open_or_create(root, "r", {"fingerprint": "abc"})


def test_results_absent_until_written(tmp_path):
    record = RunRecord.open_or_create(tmp_path / "r", "r", {"fingerprint": "f"})
    with pytest.raises(UnlearnBenchError, match="no results.json"):
        record.results()
    assert not record.is_finished()


def test_samples_roundtrip(tmp_path):
    record = RunRecord.open_or_create(tmp_path / "r", "r", {"fingerprint": "f"})
    samples = [{"eval_set": "forget", "index": 0, "obs": {"generation": "x"}}]
    record.write_samples("task", samples)
    assert record.read_samples("task") == samples


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    atomic_write_text(path, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    # A refusal of the file system is one line naming the file (no traceback from the CLI).
    with pytest.raises(UnlearnBenchError, match=f"^cannot write {path}: disk full$"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_find_runs_orders_by_creation(tmp_path):
    for name, created in (("b", "2026-01-02"), ("a", "2026-01-03"), ("c", "2026-01-01")):
        RunRecord.open_or_create(tmp_path / name, name, {"fingerprint": "f"}).update_header(
            created=created
        )
    assert [r.run_id for r in find_runs(tmp_path)] == ["c", "b", "a"]
