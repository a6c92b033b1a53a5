"""Regression checks: tolerance grammar, direction rules (hand arithmetic), baseline files, CLI."""

from pathlib import Path

import pytest
import yaml

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.regress import (
    Tolerance,
    check_metric,
    parse_tolerance_spec,
    tolerance_for,
)
from unlearn_bench.leaderboard.rows import Cell

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
GA_ROW = "toy_tofu | smollm2-135m | grad_ascent | lr=1e-05 ep=5 bs=4"


def test_tolerance_spec_grammar_and_precedence():
    spec = parse_tolerance_spec(
        "forget/probability=0.02, forget_quality=rel:0.5,forget/*=abs:0.1,*=0.3"
    )
    assert spec["forget/probability"] == Tolerance(0.02)
    assert spec["forget_quality"] == Tolerance(0.5, relative=True)
    assert tolerance_for("forget/probability", spec) == ("forget/probability", Tolerance(0.02))
    assert tolerance_for("forget/rouge", spec) == ("forget/*", Tolerance(0.1))  # longer glob
    assert tolerance_for("retain/rouge", spec) == ("*", Tolerance(0.3))
    assert tolerance_for("anything", {}) == ("(none)", Tolerance(0.0))  # default: exact
    assert parse_tolerance_spec("") == {} and parse_tolerance_spec(None) == {}


@pytest.mark.parametrize("bad", ["forget", "=0.1", "x=abc", "x=-1", "x=rel:inf"])
def test_bad_tolerance_specs_are_one_line_errors(bad):
    with pytest.raises(UnlearnBenchError):
        parse_tolerance_spec(bad)


def _cell(value, version=1):
    return Cell(value, None, None, True, version)


@pytest.mark.parametrize(
    ("better", "current", "tol", "status"),
    [
        # baseline 0.3, higher is better: -0.05 is beyond 0.02 -> regressed
        ("higher", 0.25, Tolerance(0.02), "regressed"),
        # rel:0.5 allows 0.5 x |0.3| = 0.15: -0.05 is within
        ("higher", 0.25, Tolerance(0.5, True), "ok"),
        # +0.2 beyond 0.02 the right way -> improved, not a failure
        ("higher", 0.5, Tolerance(0.02), "improved"),
        # lower is better: +0.05 beyond 0.02 -> regressed; -0.05 -> improved
        ("lower", 0.35, Tolerance(0.02), "regressed"),
        ("lower", 0.25, Tolerance(0.02), "improved"),
        # no better direction: any move beyond tolerance fails, either way
        ("either", 0.25, Tolerance(0.02), "regressed"),
        ("either", 0.35, Tolerance(0.02), "regressed"),
        ("either", 0.31, Tolerance(0.02), "ok"),
        # no change passes even with the default tolerance 0
        ("higher", 0.3, Tolerance(0.0), "ok"),
    ],
)
def test_direction_rules(better, current, tol, status):
    entry = {"value": 0.3, "version": 1, "better": better}
    finding = check_metric("row", "m", entry, _cell(current), {"m": tol})
    assert finding.status == status


def test_missing_empty_and_version_changes_regress():
    entry = {"value": 0.3, "version": 1, "better": "higher"}
    assert check_metric("r", "m", entry, None, {}).reason == "metric missing from the current runs"
    assert check_metric("r", "m", entry, _cell(None), {}).reason == "value became empty"
    changed = check_metric("r", "m", entry, _cell(0.3, version=2), {})
    assert changed.status == "regressed" and "v1 -> v2" in changed.reason
    fresh = check_metric("r", "m", {**entry, "value": None}, _cell(0.3), {})
    assert fresh.status == "new"


def _baseline(tmp_path, *extra):
    path = tmp_path / "baseline.yaml"
    args = ["regress", "--runs-dir", str(RUNS), "--task", "toy_tofu", "--write-baseline", str(path)]
    assert main([*args, *extra]) == 0
    return path


def test_written_baseline_is_sorted_reviewable_yaml_and_passes(tmp_path, capsys):
    path = _baseline(tmp_path, "--tolerance", "forget_quality=rel:0.5")
    text = path.read_text()
    assert text.startswith("# unlearn-bench regression baseline")
    data = yaml.safe_load(text)
    assert list(data) == sorted(data) and list(data["rows"]) == sorted(data["rows"])
    assert data["tolerances"] == {"forget_quality": "rel:0.5"}
    entry = data["rows"][GA_ROW]["forget_quality"]
    assert entry == {"better": "higher", "value": pytest.approx(0.3), "version": 1}
    assert data["rows"][GA_ROW]["forget/mean_nll"]["better"] == "lower"
    assert data["rows"][GA_ROW]["forget/truth_ratio_forget"]["better"] == "either"
    capsys.readouterr()
    assert main(["regress", "--runs-dir", str(RUNS), "--baseline", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("regress: 0 regressed, 0 improved, 30 within tolerance")
    assert "toy_muse" in out  # rows of another task are reported as new, not failures


def test_a_drop_beyond_tolerance_exits_1_with_a_readable_diff(tmp_path, capsys):
    path = _baseline(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["rows"][GA_ROW]["forget_quality"]["value"] = 0.5  # runs now show 0.3: a drop of 0.2
    data["rows"][GA_ROW]["model_utility"]["value"] = 0.4  # runs show 0.52: an improvement
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    capsys.readouterr()
    args = ["regress", "--runs-dir", str(RUNS), "--task", "toy_tofu", "--baseline", str(path)]
    assert main([*args, "--tolerance", "forget_quality=0.05,model_utility=0.05"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("regress: 1 regressed, 1 improved, 28 within tolerance, 0 new")
    assert GA_ROW in out
    assert "REGRESSED forget_quality: 0.5000 -> 0.3000 (change -0.2, allowed 0.0500" in out
    assert "IMPROVED  model_utility: 0.4000 -> 0.5200" in out
    # A relative tolerance of 0.5 x 0.5 = 0.25 admits the 0.2 drop.
    assert main([*args, "--tolerance", "forget_quality=rel:0.5,model_utility=0.05"]) == 0


def test_missing_row_regresses(tmp_path, capsys):
    path = _baseline(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["rows"]["toy_tofu | smollm2-135m | simnpo | lr=1e-05"] = {}
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["regress", "--runs-dir", str(RUNS), "--baseline", str(path)]) == 1
    assert "row missing from the runs" in capsys.readouterr().out


def test_bad_baseline_files_are_input_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: {}\n")
    assert main(["regress", "--runs-dir", str(RUNS), "--baseline", str(bad)]) == 2
    assert "not a baseline file" in capsys.readouterr().err
    bad.write_text("format: unlearn-bench-baseline/1\nrows: {r: {m: {value: 1, better: up}}}\n")
    assert main(["regress", "--runs-dir", str(RUNS), "--baseline", str(bad)]) == 2
    assert main(["regress", "--runs-dir", str(RUNS)]) == 2
