"""The viewer's data and bad input, without a browser (tests/browser drives the real pages)."""

from __future__ import annotations

import json
from pathlib import Path

from unlearn_bench.cli import main
from unlearn_bench.leaderboard.tables import rows_by_task
from unlearn_bench.runs import find_runs
from unlearn_bench.viewer.data import board

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def test_view_on_a_folder_without_runs_is_one_line_error(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"unlearn-bench: error: no run records (header.json) under {tmp_path}\n"
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_board_marks_best_by_direction_and_none_without_one():
    rows = rows_by_task(find_runs(RUNS))["toy_tofu"]
    columns = {c["key"]: c for c in board("toy_tofu", rows)["columns"]}
    labels = [r.label for r in rows]  # target, retain, grad_ascent x2, npo (fixture literals)
    assert [labels[i] for i in columns["forget_quality"]["best_rows"]] == ["retain"]  # 1.0
    assert [labels[i] for i in columns["forget/mean_nll"]["best_rows"]] == ["target"]  # 0.11 min
    assert columns["forget/truth_ratio_forget"]["best_rows"] == []  # no better direction


def test_site_data_keeps_generations_and_scores_not_logprobs(tmp_path):
    assert main(["view", str(RUNS), "--out", str(tmp_path / "site"), "--no-plots"]) == 0
    site = json.loads((tmp_path / "site" / "data" / "site.json").read_text())
    npo = next(r for r in site["runs"] if r["run_id"] == "toy-a/npo")
    page = json.loads((tmp_path / "site" / npo["file"].replace(".js", ".json")).read_text())
    first = page["samples"]["toy_tofu"][0]
    assert first == {
        "eval_set": "forget", "index": 0, "question": "Where was Ada Quill born?",
        "answer": "Ada Quill was born in Lisbon.", "generation": "I don't know.",
        "scores": {"probability": 0.2, "rouge": 0.0},
    }  # fmt: skip
    assert site["plot_note"] == "plots not requested"
    script = (tmp_path / "site" / "data" / "site.js").read_text()
    assert script.startswith('UB.load("site", ') and "</" not in script


def test_utility_columns_name_their_lm_eval_task():
    from unlearn_bench.viewer.data import describe_metric

    text = describe_metric("utility/wmdp_bio/acc")
    assert text == "lm-evaluation-harness task wmdp_bio, metric acc, on the same weights"
