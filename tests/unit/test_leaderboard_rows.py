"""How run records become leaderboard rows: values checked against hand arithmetic on the
literal numbers of tests/fixtures/make_fixture_runs.py."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from unlearn_bench.leaderboard.formats import fmt, tex_escape, to_html, to_latex, to_markdown
from unlearn_bench.leaderboard.rows import columns_for, rows_from_records
from unlearn_bench.runs import find_runs

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def tofu_rows():
    return [r for r in rows_from_records(find_runs(RUNS)) if r.task == "toy_tofu"]


def _row(rows, label, hparams_start):
    (row,) = [r for r in rows if r.label == label and r.hparams.startswith(hparams_start)]
    return row


def test_seeds_are_averaged_and_a_same_seed_rerun_supersedes(tofu_rows):
    row = _row(tofu_rows, "grad_ascent", "lr=1e-05")
    # toy-a (seed 0, FQ 0.05) is superseded by the newer seed-0 rerun toy-d (FQ 0.2);
    # toy-b is seed 1 (FQ 0.4). Forget quality is a p-value: the median of (0.2, 0.4) is 0.3,
    # with no standard error and no interval, each seed's value in the note.
    fq = row.metrics["forget_quality"]
    assert fq.value == pytest.approx(0.3)
    assert (fq.stderr, fq.ci) == (None, None)
    assert (fq.n, fq.over) == (2, "seeds")
    assert "(0.2, 0.4)" in fq.note and "median" in fq.ci_method
    assert row.run_ids == ["toy-d/grad_ascent", "toy-b/grad_ascent"]
    assert row.seeds == [0, 1]
    # model utility 0.5 and 0.54: mean 0.52, stderr |0.54 - 0.5| / 2 = 0.02.
    mu = row.metrics["model_utility"]
    assert mu.value == pytest.approx(0.52)
    assert mu.stderr == pytest.approx(0.02)
    # Bootstrap over two seeds: a resample's mean is 0.5, 0.52 or 0.54 with probability
    # 1/4, 1/2, 1/4, so of 2000 resamples far more than 50 sit at each end and the 2.5% and
    # 97.5% quantiles are exactly the two seeds' values. (The old Student-t interval with one
    # degree of freedom was 0.52 -+ 12.706 x 0.02 = [0.266, 0.774].)
    assert mu.ci == (pytest.approx(0.5), pytest.approx(0.54))
    assert "over seeds" in mu.ci_method


def test_single_run_without_stored_item_scores_gets_no_interval(tofu_rows):
    # The fixture run stores no samples: no per-item scores, so no interval is made up from
    # the mean and stderr alone (the old code printed a Student-t interval here).
    cell = _row(tofu_rows, "npo", "lr=1e-05").metrics["forget/probability"]
    assert (cell.value, cell.stderr, cell.n, cell.over) == (0.4, 0.03, 40, "items")
    assert (cell.ci, cell.ci_method) == (None, "")


def test_unfinished_and_failed_runs_never_reach_a_row(tofu_rows):
    labels = {r.label for r in tofu_rows}
    assert labels == {"target", "retain", "grad_ascent", "npo"}
    assert not any("toy-e" in run for r in tofu_rows for run in r.run_ids)


def test_rows_are_ordered_by_role_then_method(tofu_rows):
    assert [(r.label, r.hparams.split()[0]) for r in tofu_rows] == [
        ("target", "ft"), ("retain", "ft"), ("grad_ascent", "lr=1e-05"),
        ("grad_ascent", "lr=2e-05"), ("npo", "lr=1e-05"),
    ]  # fmt: skip


def test_columns_put_derived_metrics_first_with_directions(tofu_rows):
    columns = columns_for(tofu_rows)
    assert [c.key for c in columns[:2]] == ["forget_quality", "model_utility"]
    direction = {c.key: c.higher_is_better for c in columns}
    assert direction["forget/mean_nll"] is False
    assert direction["forget/truth_ratio_forget"] is None
    header = to_markdown(tofu_rows).splitlines()[0]
    assert "forget/mean_nll ↓" in header and "forget_quality ↑" in header
    assert "| forget/truth_ratio_forget |" in header  # no arrow: no better direction


def _write_run(root: Path, group: str, version: int, finetune_lr: float, created: str) -> None:
    run = root / group / "ga"
    run.mkdir(parents=True)
    header = {
        "run_id": f"{group}/ga", "status": "finished", "created": created, "label": "ga",
        "role": "unlearned", "seed": 0, "task": {"name": "t", "version": 1, "fingerprint": "x"},
        "method": {"method": "grad_ascent", "lr": 1e-5, "epochs": 1.0, "batch_size": 2},
        "config": {"model": "m", "finetune": {"lr": finetune_lr, "epochs": 1.0}},
    }  # fmt: skip
    results = {"t": {"forget/probability": {"value": 0.5 * version, "stderr": None, "n": 3,
                                            "higher_is_better": True, "version": version}}}  # fmt: skip
    (run / "header.json").write_text(json.dumps(header))
    (run / "results.json").write_text(json.dumps(results))


def test_two_versions_of_a_metric_are_two_columns_never_averaged(tmp_path):
    _write_run(tmp_path, "a", 1, 1e-4, "2025-01-01")
    _write_run(tmp_path, "b", 2, 2e-4, "2025-01-02")
    rows = rows_from_records(find_runs(tmp_path))
    assert [c.key for c in columns_for(rows)] == ["forget/probability@v1", "forget/probability@v2"]
    by_col = {k: c.value for r in rows for k, c in r.metrics.items()}
    assert by_col == {"forget/probability@v1": 0.5, "forget/probability@v2": 1.0}


def test_rows_differing_only_in_hidden_settings_get_a_config_tag(tmp_path):
    # Same method settings, different finetune of the starting model: two rows, told apart.
    _write_run(tmp_path, "a", 1, 1e-4, "2025-01-01")
    _write_run(tmp_path, "b", 1, 2e-4, "2025-01-02")
    rows = rows_from_records(find_runs(tmp_path))
    assert len(rows) == 2
    assert all(r.hparams.startswith("lr=1e-05 ep=1 bs=2 [cfg ") for r in rows)
    assert rows[0].hparams != rows[1].hparams


def test_number_formatting_and_escaping():
    assert fmt(1.66e-21) == "1.66e-21"  # tiny p-values keep three significant digits
    assert fmt(0.5) == "0.5000"
    assert fmt(None) == "-" and fmt(math.nan) == "-"
    assert tex_escape("a_b & 50%") == r"a\_b \& 50\%"


def test_html_and_latex_escape_labels(tofu_rows):
    row = dataclasses.replace(tofu_rows[0], label="<b>&x_y|z")
    assert "&lt;b&gt;&amp;x_y|z" in to_html([row])
    assert r"<b>\&x\_y|z" in to_latex([row])
    assert r"| <b>&x_y\|z |" in to_markdown([row])  # a pipe must not split the table cell
