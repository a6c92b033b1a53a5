"""Leaderboard cells computed by hand from the fixture run records (tests/fixtures/runs).

The snapshot tests (test_leaderboard_golden.py) compare with our own earlier output; this one
compares with arithmetic done here on the records' numbers, through the real CLI.
"""

import csv
from pathlib import Path

import pytest

from unlearn_bench.cli import main

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[tuple[str, str], dict[str, str]]:
    out = tmp_path_factory.mktemp("lb")
    assert (
        main(["leaderboard", "--runs-dir", str(RUNS), "--out", str(out), "--formats", "csv"]) == 0
    )
    with (out / "toy_tofu.csv").open() as fh:
        return {(r["method"], r["hyperparameters"]): r for r in csv.DictReader(fh)}


def test_single_run_cells_are_the_records_values(rows) -> None:
    # toy-a/target/results.json: forget/probability 0.9 (stderr 0.02, n 40), model utility 0.6.
    target = rows[("target", "ft lr=0.0001 ep=5")]
    assert float(target["forget/probability"]) == pytest.approx(0.9)
    assert float(target["forget/probability:stderr"]) == pytest.approx(0.02)
    assert target["forget/probability:n"] == "40"
    assert float(target["model_utility"]) == pytest.approx(0.6)
    assert target["run_ids"] == "toy-a/target"


def test_two_seed_row_is_mean_and_standard_error_over_seeds(rows) -> None:
    # grad_ascent lr=1e-05: toy-d (seed 0) and toy-b (seed 1). With two values a and b the mean
    # is (a + b) / 2 and the standard error over seeds (sample std / sqrt 2) is |a - b| / 2.
    row = rows[("grad_ascent", "lr=1e-05 ep=5 bs=4")]
    assert row["seeds"] == "0 1"
    expected = {  # metric: (toy-d value, toy-b value)
        "forget/probability": (0.30, 0.25),
        "forget/mean_nll": (1.2, 1.4),
        "retain/probability": (0.70, 0.74),
        "model_utility": (0.50, 0.54),
    }
    for metric, (a, b) in expected.items():
        assert float(row[metric]) == pytest.approx((a + b) / 2), metric
        assert float(row[f"{metric}:stderr"]) == pytest.approx(abs(a - b) / 2), metric
        assert row[f"{metric}:n"] == "2", metric
