"""Issue 16: GA, GA+Mismatch and the SFT / DPO alignment baselines end to end on the harmful
scenario, through the real ``unlearn-bench run`` CLI, on the tiny model and a data fixture laid
out like ``shared/data`` (PKU-SafeRLHF v0 pairs and a TruthfulQA CSV, all written here).

Token counts are worked out from the definition: a training example is the formatted prompt's
tokens, then the answer prefix + answer, then one end-of-turn token; a step's tokens are those of
every part the method trains on (forget for GA; forget and safe for SFT and DPO; the frozen
reference's passes are not counted).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from llmu_harmful_fixture import TEMPLATE, run_harmful, write_harmful_data

from unlearn_bench.cli import main

torch.set_num_threads(1)

METHODS = ("grad_ascent", "ga_mismatch", "sft_safe", "dpo_safe")
N_FORGET = 4


def _tokens(tokenizer, question: str, answer: str) -> int:
    context = tokenizer(TEMPLATE.format(question=question)).input_ids
    return len(context) + len(tokenizer(" " + answer, add_special_tokens=False).input_ids) + 1


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("baselines")
    data = tmp_path / "data"
    pairs = write_harmful_data(data)
    # One epoch of batch 2 over the 4 forget pairs: every pair is trained on exactly once.
    train = {"lr": 1e-3, "batch_size": 2, "epochs": 1, "max_length": 128}
    records = run_harmful(
        tmp_path, tiny_model_dir, data, N_FORGET, [{"method": m, **train} for m in METHODS]
    )
    return tmp_path, pairs, records


def test_every_baseline_runs_and_is_evaluated(finished):
    _, _, records = finished
    assert set(records) == {"target", *METHODS}
    for label, record in records.items():
        assert record.header["status"] == "finished"
        results = record.results()["llmu_harmful"]
        for name in ("unlearned_harmful", "unseen_harmful", "normal"):
            assert results[f"{name}/diversity"]["n"] == 2
        if label != "target":
            assert record.header["method"]["method"] == label
        evaluate = record.header["stages"]["evaluate"]["cost"]  # the HF backend: counted
        assert evaluate["forward_tokens"] > 0
        assert evaluate["flops"] == 2 * evaluate["n_counted"] * evaluate["forward_tokens"]


def test_each_method_trained_on_its_parts_with_hand_counted_tokens(
    finished, tiny_model_and_tokenizer
):
    _, pairs, records = finished
    tokenizer = tiny_model_and_tokenizer[1]
    headers = {m: records[m].header for m in METHODS}
    for method in METHODS:
        cost = headers[method]["stage_info"]["cost"]
        assert cost["steps"] == N_FORGET // 2
        n = cost["n_total"]
        # Every parameter trained: 6N per trained token, 2N per reference (forward-only) token.
        expected_flops = 6 * n * cost["backward_tokens"] + 2 * n * cost["reference_tokens"]
        assert cost["flops"] == expected_flops
        assert cost["forward_only_tokens"] == 0
    forget_prompts = _forget_prompts(finished)
    assert len(forget_prompts) == N_FORGET
    unsafe = sum(_tokens(tokenizer, q, pairs[q][1]) for q in forget_prompts)
    safe = sum(_tokens(tokenizer, q, pairs[q][0]) for q in forget_prompts)

    def counts(method: str) -> tuple[int, int, int]:
        cost = headers[method]["stage_info"]["cost"]
        return cost["forward_tokens"], cost["backward_tokens"], cost["reference_tokens"]

    # (forward, backward, reference) tokens of the passes each loss makes, counted by hand:
    # GA runs the unsafe (forget) answers through the trained model only; SFT the safe answers
    # only (the forget part only names the prompts); DPO both answers through the trained model
    # and again through the frozen reference model.
    assert counts("grad_ascent") == (unsafe, unsafe, 0)
    assert counts("sft_safe") == (safe, safe, 0)
    assert counts("dpo_safe") == (2 * (unsafe + safe), unsafe + safe, unsafe + safe)


def _forget_prompts(finished) -> list[str]:
    """The forget split's prompts, from the data source with the task's options."""
    tmp_path, pairs, _ = finished
    from unlearn_bench.data.llmu import harmful

    task = yaml.safe_load((tmp_path / "llmu_harmful_tiny.yaml").read_text())
    splits = harmful(task["data"]["options"], tmp_path / "data")
    assert all(r["safe_answer"] == pairs[r["question"]][0] for r in splits["forget"])
    return [r["question"] for r in splits["forget"]]


def test_cost_command_lists_every_stage(finished, capsys):
    tmp_path, _, _ = finished
    capsys.readouterr()
    assert main(["cost", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    stages = sorted(tuple(line.split()[:2]) for line in lines[1:-1])
    expected = [("target", "evaluate")]
    expected += [(m, s) for m in METHODS for s in ("unlearn", "evaluate")]
    assert stages == sorted(expected)


def test_compute_comparison_through_the_cost_command(finished, tiny_model_and_tokenizer, tmp_path):
    """``unlearn-bench cost RUNS --out DIR`` (issue 16): each method's metrics beside its training
    FLOPs, wall seconds and tokens, and its FLOPs as a share of DPO's. Expected shares come from
    the hand-counted tokens: every method trains all N parameters (6N per trained token) and DPO
    also runs both answers through its frozen reference (2N per token). GA trains the unsafe
    answers (6N u), SFT the safe ones (6N s), DPO both, plus the reference: 8N (u + s)."""
    runs_dir, pairs, records = finished
    tokenizer = tiny_model_and_tokenizer[1]
    forget = _forget_prompts(finished)
    unsafe = sum(_tokens(tokenizer, q, pairs[q][1]) for q in forget)
    safe = sum(_tokens(tokenizer, q, pairs[q][0]) for q in forget)
    out = tmp_path / "lb"
    assert main(["cost", str(runs_dir / "runs"), "--out", str(out)]) == 0
    data = json.loads((out / "llmu_harmful.compute.json").read_text())
    rows = {r["registry_method"] or r["method"]: r for r in data["rows"]}
    assert set(rows) == {"target", *METHODS}
    assert rows["target"]["train_cost"]["flops"] is None  # the untrained base: no training cost
    dpo_units = 8 * (unsafe + safe)  # FLOPs / N
    # method: (forward tokens, FLOPs / N)
    expected = {"grad_ascent": (unsafe, 6 * unsafe), "ga_mismatch": None,
                "sft_safe": (safe, 6 * safe), "dpo_safe": (2 * (unsafe + safe), dpo_units)}  # fmt: skip
    for method, hand in expected.items():
        row, cost = rows[method], records[method].header["stage_info"]["cost"]
        assert row["train_cost"]["flops"] == cost["flops"]
        assert row["train_cost"]["wall_s"] == cost["wall_s"] > 0
        assert row["percent_of"]["ppo_rlhf"] == {"flops": None, "wall_s": None}  # no PPO run
        if hand is not None:
            assert row["train_cost"]["forward_tokens"] == hand[0]
            share = row["percent_of"]["dpo_safe"]["flops"]
            assert share == pytest.approx(100 * hand[1] / dpo_units, rel=1e-12)
    assert rows["dpo_safe"]["percent_of"]["dpo_safe"]["flops"] == pytest.approx(100.0)
    diversity = records["sft_safe"].results()["llmu_harmful"]["normal/diversity"]["value"]
    assert rows["sft_safe"]["metrics"]["normal/diversity"]["value"] == diversity
    page = (out / "llmu_harmful.compute.md").read_text()
    assert "% of ppo_rlhf (no finished run) FLOPs" in page and "% of dpo_safe FLOPs" in page
    # The tiny task measures no harmful rate and no fluency: said, not plotted.
    assert "- unlearned_harmful/harmful_rate_probe not measured" in page
    assert "- normal/fluency_ppl not measured" in page
    # The paper's side: its 2% claim, and the run times no reachable source states, unverified.
    assert "2 % of RLHF's computational time | primary" in page
    assert page.count("unverified: no reachable source states it") == 5


def test_compute_comparison_withholds_a_judge_below_its_bar(finished, tmp_path):
    """A harmful rate whose judge fails the validity bar is shown as the reason, never as a number,
    and is left out of the figure, which says so."""
    runs_dir, _, _ = finished
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir / "runs", copy)
    judge = {"judge": "probe", "heldout_accuracy": 0.53}
    for path in copy.rglob("results.json"):
        results = json.loads(path.read_text())
        results["llmu_harmful"]["unlearned_harmful/harmful_rate_probe"] = {
            "value": 0.25, "stderr": 0.1, "n": 2, "higher_is_better": False, "version": 1,
            "scorer:harm": judge,
        }  # fmt: skip
        path.write_text(json.dumps(results))
    out = tmp_path / "lb"
    assert main(["cost", str(copy), "--out", str(out)]) == 0
    data = json.loads((out / "llmu_harmful.compute.json").read_text())
    reason = "withheld: judge harm heldout_accuracy 0.53 < 0.80"
    for row in data["rows"]:
        cell = row["metrics"]["unlearned_harmful/harmful_rate_probe"]
        assert cell["value"] is None and cell["note"] == reason
    page = (out / "llmu_harmful.compute.md").read_text()
    assert "0.2500" not in page and reason in page
    assert "- unlearned_harmful/harmful_rate_probe not plotted for " in page


def test_compute_reference_matching_several_rows_is_refused(finished, tmp_path, capsys):
    """Two DPO rows (a second run with another learning rate): which is 100% is ambiguous, so
    the command refuses in one line, naming the rows, before writing anything."""
    runs_dir, _, records = finished
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir / "runs", copy)
    dpo = records["dpo_safe"].root
    twin = copy / dpo.relative_to(runs_dir / "runs").parent / "dpo_twin"
    shutil.copytree(copy / dpo.relative_to(runs_dir / "runs"), twin)
    header = json.loads((twin / "header.json").read_text())
    header["run_id"] += "-twin"
    header["method"]["lr"] = 5e-4
    (twin / "header.json").write_text(json.dumps(header))
    capsys.readouterr()
    assert main(["cost", str(copy), "--out", str(tmp_path / "lb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "several rows match compute reference 'dpo_safe'" in err[0]
    assert not (tmp_path / "lb" / "llmu_harmful.compute.md").exists()
    capsys.readouterr()
    assert main(["cost", str(copy), "--out", str(tmp_path / "lb2"), "--task", "nope"]) == 2
    assert "no finished runs of task 'nope'" in capsys.readouterr().err
