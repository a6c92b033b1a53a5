"""Leaderboards regenerated from the hand-made fixture runs must match the committed files byte
for byte (tests/fixtures/leaderboards, reviewed by hand; see tests/fixtures/make_fixture_runs.py).
"""

from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.leaderboard.tables import FORMATS, write_leaderboards

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = FIXTURES / "runs"
EXPECTED = FIXTURES / "leaderboards"


@pytest.mark.parametrize("task", ["toy_tofu", "toy_muse"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_regenerated_tables_match_committed_files(tmp_path, task, fmt):
    write_leaderboards(RUNS, tmp_path, formats=(fmt,))
    produced = (tmp_path / f"{task}.{fmt}").read_bytes()
    expected = (EXPECTED / f"{task}.{fmt}").read_bytes()
    assert produced == expected, f"{task}.{fmt} differs from the committed file"


def test_cli_writes_exactly_the_expected_set(tmp_path, capsys):
    assert main(["leaderboard", "--runs-dir", str(RUNS), "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in EXPECTED.iterdir())
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (EXPECTED / path.name).read_bytes(), path.name


def test_only_named_task_and_formats(tmp_path):
    written = write_leaderboards(RUNS, tmp_path, task="toy_muse", formats=("md", "csv"))
    assert sorted(p.name for p in written) == ["toy_muse.csv", "toy_muse.md"]


def test_unknown_format_and_empty_runs_are_clear_errors(tmp_path, capsys):
    args = ["leaderboard", "--runs-dir", str(RUNS), "--out", str(tmp_path), "--formats", "pdf"]
    assert main(args) == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err
    assert main(["leaderboard", "--runs-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err
