"""Collapse detection on real tiny-model runs, and collapsed rows in every leaderboard output.

The uniform collapse is real: AdamW's decoupled decay multiplies every weight by 1 - lr x
weight_decay, so lr = 0.01 with weight_decay = 100 zeroes the weights each step and leaves only
the step's tiny Adam update: the logits go flat and the gradient-ascent loss pins at -ln|V|
while every weight stays finite. (Gradient ascent at a huge learning rate alone does not make
this tiny model uniform: it makes it emit one token with certainty, the second case below.)
"""

import json
import math

import pytest

from unlearn_bench.config import RunConfig
from unlearn_bench.leaderboard.formats import to_csv, to_json, to_markdown
from unlearn_bench.leaderboard.regress import baseline_from_rows, compare_with_baseline
from unlearn_bench.leaderboard.rows import rows_from_records
from unlearn_bench.runner import run_protocol
from unlearn_bench.viewer.data import best_cells

UNLEARN = [
    # Healthy: a gentle gradient ascent that leaves the target working.
    {"method": "grad_ascent", "max_steps": 4, "lr": 1e-4, "batch_size": 4, "label": "healthy"},
    {"method": "grad_ascent", "max_steps": 4, "lr": 1e-2, "batch_size": 4, "label": "uniform",
     "weight_decay": 100.0},
    {"method": "grad_ascent", "max_steps": 4, "lr": 2.0, "batch_size": 4, "label": "one_token"},
]  # fmt: skip


@pytest.fixture(scope="module")
def group(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collapse")
    config = RunConfig.from_dict(
        {
            "task": "synthetic_people", "model": str(tiny_model_dir),
            "runs_dir": str(tmp / "runs"), "leaderboards_dir": str(tmp / "lb"), "run_id": "g",
            # A target that predicts with confidence, far from uniform (KL ~2.4 nats).
            "finetune": {"epochs": 5, "lr": 1e-2, "batch_size": 8},
            "unlearn": UNLEARN, "eval": {"limit": 6},
        }
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARN_BENCH_CACHE", str(tmp / "cache"))
        _, records, _ = run_protocol(config, echo=lambda _: None)
    return {r.header["label"]: r for r in records}


def _log(record):
    return [json.loads(line) for line in (record.root / "train_log.jsonl").read_text().splitlines()]


def test_uniform_collapse_is_real_and_marked(group, tiny_model_dir):
    from transformers import AutoTokenizer

    ln_vocab = math.log(len(AutoTokenizer.from_pretrained(tiny_model_dir)))  # ln 384, by hand
    rows = _log(group["uniform"])
    # Really uniform: the model's forget NLL is ln|V| and the loss (-NLL) is pinned at -ln|V|.
    assert rows[-1]["collapse/forget_nll"] == pytest.approx(ln_vocab, abs=0.01)
    assert rows[-1]["loss"] == pytest.approx(-ln_vocab, abs=0.01)
    assert rows[-1]["collapse/forget_kl_uniform"] == pytest.approx(0.0, abs=0.01)
    assert rows[0]["collapse/forget_kl_uniform"] > 1.0  # the target was far from uniform
    results = group["uniform"].results()["synthetic_people"]
    # Uniform output gives every answer token probability 1/|V|.
    assert results["forget/probability"]["value"] == pytest.approx(1 / 384, rel=0.01)
    collapsed = group["uniform"].header["collapsed"]
    assert collapsed["reason"] == "uniform_output"
    assert collapsed["where"] == "step 2"  # the first step after the first update
    assert collapsed["threshold"] == pytest.approx(ln_vocab)
    check = group["uniform"].header["collapse_check"]
    assert check["thresholds"]["uniform_nll_nats"] == 0.1
    assert check["target"] == group["target"].run_id


def test_one_token_collapse_is_marked(group):
    gens = [
        s["obs"]["generation"]
        for s in group["one_token"].read_samples("synthetic_people")
        if "generation" in s["obs"]
    ]
    assert gens and all(len(set("".join(g.split()))) == 1 for g in gens)  # one character, looped
    reasons = {f["reason"] for f in group["one_token"].header["collapse_check"]["findings"]}
    assert "retain_probability_floor" in reasons
    assert group["one_token"].header["collapsed"] is not None


def test_healthy_run_and_other_roles_are_not_marked(group):
    assert group["healthy"].header["collapsed"] is None
    assert group["healthy"].header["collapse_check"]["findings"] == []
    assert "collapsed" not in group["target"].header  # only unlearned models are checked


def test_leaderboard_marks_collapsed_rows_and_never_ranks_them(group):
    rows = rows_from_records(list(group.values()))
    by_label = {r.label: r for r in rows}
    md = to_markdown(rows)
    lines = {r.label: next(x for x in md.splitlines() if f"| {r.label}" in x) for r in rows}
    assert "[COLLAPSED: uniform_output]" in lines["uniform"]
    assert "COLLAPSED" not in lines["healthy"] and "COLLAPSED" not in lines["target"]
    assert "never rank it" in md
    csv_rows = to_csv(rows).splitlines()
    header = csv_rows[0].split(",")
    col = header.index("collapsed")
    assert [line.split(",")[col] for line in csv_rows[1:] if ",healthy," in line] == [""]
    data = json.loads(to_json(rows))
    marked = {r["method"]: r.get("collapsed") for r in data["rows"]}
    assert marked["uniform"]["reason"] == "uniform_output" and marked["healthy"] is None
    # Forget quality (higher is better): the collapsed rows are never the best cell.
    best = best_cells(rows, "forget_quality", True)
    assert best and all(not rows[i].collapsed for i in best)
    assert by_label["uniform"].collapsed is not None


def test_regress_reports_collapsed_rows(group):
    from unlearn_bench.leaderboard.regress import report

    rows = rows_from_records(list(group.values()))
    findings = compare_with_baseline(baseline_from_rows(rows, {}), rows, {})
    flagged = {f.row.split(" | ")[2] for f in findings if f.status == "collapsed"}
    assert flagged == {"uniform", "one_token"}
    text = report(findings)
    assert "2 collapsed" in text.splitlines()[0]
    assert "COLLAPSED" in text and "uniform_output" in text
    assert not any(f.status == "regressed" for f in findings)  # same numbers: no regression
