"""Damaged run records and folders in the way, driven through the real CLI (issue 14, round 2).

A finished run (fake backend, so no model is loaded) is copied for each case and one of its
files damaged as an editor, a full disk or a copy cut short would: the command that reads it
must exit non-zero with one line naming the file, print no traceback, and leave every file as
it was (no record rewritten, no "failed" written over a group it never ran).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_checks import assert_one_clear_line
from cli_checks import file_tree as _tree

from unlearn_bench.cli import main

EVAL = ["eval", "--task", "synthetic_people", "--backend", "fake", "--model", "nobody/none"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished evaluation group ``runs/e`` (target only), made once."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARN_BENCH_CACHE", str(root / "cache"))
        code = main([*EVAL, "--limit", "2", "--runs-dir", str(root / "runs"), "--run-id", "e"])
    assert code == 0
    return root / "runs"


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _header_garbled(runs: Path, tmp: Path) -> list[str]:
    _truncate(runs / "e" / "target" / "header.json", 20)
    return ["leaderboard", "--runs-dir", str(runs), "--out", str(tmp / "lb")]


def _header_a_list(runs: Path, tmp: Path) -> list[str]:
    (runs / "e" / "target" / "header.json").write_text("[1, 2]\n")
    return ["view", str(runs), "--out", str(tmp / "site"), "--no-plots"]


def _results_garbled(runs: Path, tmp: Path) -> list[str]:
    (runs / "e" / "target" / "results.json").write_text("{nope")
    return ["compare-runs", str(runs / "e" / "target"), str(runs / "e" / "target")]


def _samples_cut_mid_line(runs: Path, tmp: Path) -> list[str]:
    path = runs / "e" / "target" / "samples" / "synthetic_people.jsonl"
    _truncate(path, len(path.read_bytes()) - 40)
    return ["score", str(runs / "e" / "target")]


def _samples_value_edited(runs: Path, tmp: Path) -> list[str]:
    path = runs / "e" / "target" / "samples" / "synthetic_people.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["obs"]["answer"]["logprobs"][0] = "x"  # not a number
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["score", str(runs / "e" / "target")]


def _group_garbled(runs: Path, tmp: Path) -> list[str]:
    (runs / "e" / "GROUP.json").write_text("{")
    return [*EVAL, "--limit", "2", "--runs-dir", str(runs), "--run-id", "e"]


def _reference_not_a_number(runs: Path, tmp: Path) -> list[str]:
    ref = tmp / "ref.json"
    ref.write_text('{"forget_truth_ratio": {"value_by_index": {"0": {"score": "x"}}}}')
    return [*EVAL, "--limit", "2", "--runs-dir", str(runs), "--reference", str(ref)]


def _runs_dir_is_a_file(runs: Path, tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return [*EVAL, "--limit", "2", "--runs-dir", str(tmp / "file")]


def _site_is_a_file(runs: Path, tmp: Path) -> list[str]:
    (tmp / "site").write_text("x")
    return ["view", str(runs), "--out", str(tmp / "site"), "--no-plots"]


def _leaderboard_out_is_a_file(runs: Path, tmp: Path) -> list[str]:
    (tmp / "lb").write_text("x")
    return ["leaderboard", "--runs-dir", str(runs), "--out", str(tmp / "lb")]


# (name, damage + argv, words the one line must contain)
CASES: list[tuple[str, Callable[[Path, Path], list[str]], list[str]]] = [
    ("header.json cut short", _header_garbled, ["target/header.json", "damaged", "not valid"]),
    ("header.json a list", _header_a_list, ["target/header.json", "JSON object", "list"]),
    ("results.json garbled", _results_garbled, ["target/results.json", "damaged"]),
    ("samples cut mid-line", _samples_cut_mid_line, ["synthetic_people.jsonl", "line 1"]),
    ("sample value edited", _samples_value_edited, ["probability", "forget item 0", "'x'"]),
    ("GROUP.json garbled", _group_garbled, ["e/GROUP.json", "damaged"]),
    ("reference score not a number", _reference_not_a_number, ["ref.json", "malformed"]),
    ("runs folder is a file", _runs_dir_is_a_file, ["runs folder", "file", "not a folder"]),
    ("site folder is a file", _site_is_a_file, ["site folder", "not a folder"]),
    ("leaderboards folder is a file", _leaderboard_out_is_a_file, ["leaderboards folder"]),
]


@pytest.mark.parametrize("name,damage,words", CASES, ids=[c[0] for c in CASES])
def test_damaged_record_is_one_clear_line(
    name: str,
    damage: Callable[[Path, Path], list[str]],
    words: list[str],
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    work = tmp_path / "work"
    work.mkdir()
    argv = damage(runs, work)
    before = _tree(runs)
    code = main(argv)
    assert_one_clear_line(code, capsys.readouterr(), words, name)
    assert _tree(runs) == before


def test_cache_folder_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cachefile"))
    assert main([*EVAL, "--limit", "2", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"unlearn-bench: error: cache folder {tmp_path / 'cachefile'} is not a folder "
        "(a file is in the way)"
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("header.json"))
