"""Issue 16: GA, GA+Mismatch and the SFT / DPO alignment baselines end to end on the harmful
scenario, through the real ``unlearn-bench run`` CLI, on the tiny model and a data fixture laid
out like ``shared/data`` (PKU-SafeRLHF v0 pairs and a TruthfulQA CSV, all written here).

Token counts are worked out from the definition: a training example is the formatted prompt's
tokens, then the answer prefix + answer, then one end-of-turn token; a step's tokens are those of
every part the method trains on (forget for GA; forget and safe for SFT and DPO; the frozen
reference's passes are not counted).
"""

from __future__ import annotations

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
        assert cost["flops"] == 6 * cost["n_total"] * cost["forward_tokens"]
    forget_prompts = _forget_prompts(finished)
    assert len(forget_prompts) == N_FORGET
    unsafe = sum(_tokens(tokenizer, q, pairs[q][1]) for q in forget_prompts)
    safe = sum(_tokens(tokenizer, q, pairs[q][0]) for q in forget_prompts)
    assert headers["grad_ascent"]["stage_info"]["cost"]["forward_tokens"] == unsafe
    # SFT and DPO: the forget part (the unsafe answer) and the safe part, both through the model.
    assert headers["sft_safe"]["stage_info"]["cost"]["forward_tokens"] == unsafe + safe
    assert headers["dpo_safe"]["stage_info"]["cost"]["forward_tokens"] == unsafe + safe


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
