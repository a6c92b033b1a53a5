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


def _probe_site(tmp_path: Path) -> dict:
    from viewer_fixtures import write_probe_group

    write_probe_group(tmp_path / "runs")
    assert (
        main(["view", str(tmp_path / "runs"), "--out", str(tmp_path / "site"), "--no-plots"]) == 0
    )
    return json.loads((tmp_path / "site" / "data" / "site.json").read_text())


def test_probe_rows_are_labelled_and_never_best(tmp_path):
    site = _probe_site(tmp_path)
    (board,) = site["boards"]
    roles = {r["label"]: r["role"] for r in board["rows"]}
    assert (
        roles["npo@relearn-20"] == "unlearned under probe relearn-20"
        and roles["npo"] == "unlearned"
    )
    column = next(c for c in board["columns"] if c["key"] == "forget/rouge_l_recall")
    # higher is better as recorded: target 0.9 is the best unprobed model; target@relearn-20
    # has 0.95 but is a model under attack
    assert [board["rows"][i]["label"] for i in column["best_rows"]] == ["target"]


def test_robustness_board_has_the_hand_worked_values_and_best_cells(tmp_path):
    (rb,) = _probe_site(tmp_path)["robustness"]
    assert (rb["task"], rb["group"], rb["metric"]) == (
        "synthetic_people",
        "toy-p",
        "rouge_l_recall",
    )
    keys = [c["key"] for c in rb["columns"]]
    assert keys == ["relearn-5: rouge_l_recall", "relearn-5: recovery",
                    "relearn-20: rouge_l_recall", "relearn-20: recovery"]  # fmt: skip
    assert all(c["higher_is_better"] is False for c in rb["columns"])
    rows = {r["label"]: r for r in rb["rows"]}
    assert {k: rows["npo"]["cells"][k]["value"] for k in keys} == {
        "relearn-5: rouge_l_recall": 0.4, "relearn-5: recovery": 0.2777778,
        "relearn-20: rouge_l_recall": 0.7, "relearn-20: recovery": 0.6666667,
    }  # fmt: skip
    assert rows["target"]["cells"]["relearn-20: recovery"]["value"] is None
    assert rows["target"]["role"] == "target" and rows["npo"]["run_ids"] == ["toy-p/npo"]
    labels = [r["label"] for r in rb["rows"]]
    best = {c["key"]: [labels[i] for i in c["best_rows"]] for c in rb["columns"]}
    # lowest leak / recovery among unlearned models (grad_ascent 0.15 < npo 0.4; npo 0.7 < 0.8)
    assert best == {
        "relearn-5: rouge_l_recall": ["grad_ascent"], "relearn-5: recovery": ["grad_ascent"],
        "relearn-20: rouge_l_recall": ["npo"], "relearn-20: recovery": ["npo"],
    }  # fmt: skip


def test_site_assets_reference_nothing_outside_the_site(tmp_path):
    import re

    assert main(["view", str(RUNS), "--out", str(tmp_path / "site"), "--no-plots"]) == 0
    for name in ("index.html", "app.js", "style.css"):
        text = (tmp_path / "site" / name).read_text()
        assert not re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}/", text), name  # no CDN, no host
    html = (tmp_path / "site" / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("#") or (tmp_path / "site" / ref).is_file(), ref
