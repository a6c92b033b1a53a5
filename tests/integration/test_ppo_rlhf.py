"""RLHF with PPO (issue 16) end to end on the tiny model through the real ``unlearn-bench run``:
TRL's RewardTrainer on the fixture's safe-versus-unsafe pairs, then TRL's PPOTrainer, then the
usual evaluation; its cost is the tokens each model processed, counted by hooks.

Expected counts come from the budget by hand: 4 forget pairs, batch 2, one reward epoch, 4 PPO
episodes of ``response_length`` 4 tokens and 1 PPO epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from llmu_harmful_fixture import TEMPLATE, run_harmful, write_harmful_data

from unlearn_bench.cli import main

pytest.importorskip("trl.experimental.ppo")
torch.set_num_threads(1)

N_FORGET, RESPONSE = 4, 4


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ppo")
    data = tmp_path / "data"
    pairs = write_harmful_data(data)
    args = {"response_length": RESPONSE, "ppo_epochs": 1}
    unlearn = [{"method": "ppo_rlhf", "lr": 1e-3, "batch_size": 2, "epochs": 1,
                "max_length": 128, "args": args}]  # fmt: skip
    return pairs, run_harmful(tmp_path, tiny_model_dir, data, N_FORGET, unlearn)


def test_ppo_trains_the_policy_and_is_evaluated(finished, tiny_model_dir):
    from safetensors.torch import load_file

    _, records = finished
    record = records["ppo_rlhf"]
    assert record.header["status"] == "finished"
    assert record.results()["llmu_harmful"]["normal/diversity"]["n"] == 2
    trained = load_file(str(Path(record.header["stage_info"]["train_log"]).parent
                            / "model.safetensors"))  # fmt: skip
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    log = [json.loads(x) for x in (record.root / "train_log.jsonl").read_text().splitlines()]
    phases = [r["phase"] for r in log]
    # 4 pairs in batches of 2, one epoch: 2 reward steps; 4 episodes in batches of 2: 2 PPO steps.
    assert phases == ["reward_model"] * 2 + ["ppo"] * 2


def _pairings(items: list[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The ways to split 4 items into two batches of 2 (the samplers' order is seeded)."""
    first = items[0]
    return [((first, other), tuple(x for x in items[1:] if x != other)) for other in items[1:]]


def test_cost_counts_every_model_by_hand(finished, tiny_model_and_tokenizer):
    pairs, records = finished
    tokenizer = tiny_model_and_tokenizer[1]
    cost = records["ppo_rlhf"].header["stage_info"]["cost"]
    phases = {(p["phase"], p["model"]): p for p in cost["phases"]}
    assert set(phases) == {("reward_model", "reward"), ("ppo", "policy"), ("ppo", "reference"),
                           ("ppo", "reward"), ("ppo", "value")}  # fmt: skip
    forget = _forget_questions(records["ppo_rlhf"], pairs)
    prompt = {q: len(tokenizer(TEMPLATE.format(question=q)).input_ids) for q in forget}
    # A reward-model text: prompt, answer prefix, answer, EOS; chosen and rejected of a batch
    # go through one forward + backward together, padded to the batch's longest.
    text = {
        q: max(len(tokenizer(TEMPLATE.format(question=q) + " " + a).input_ids) + 1
               for a in pairs[q])
        for q in forget
    }  # fmt: skip
    rm = phases[("reward_model", "reward")]
    assert rm["forward_only_tokens"] == 0
    widths = {4 * sum(max(text[q] for q in b) for b in split) for split in _pairings(forget)}
    assert rm["trained_tokens"] in widths
    # PPO, per batch of 2 prompts left-padded to the longer (Lq): generation is one pass over
    # the prompts then RESPONSE - 1 one-token steps, no autograd; reference, reward and value
    # each score the 2 query+response rows once without autograd; the PPO epoch trains policy
    # and value on the same rows.
    found = []
    for split in _pairings(forget):
        lq = [max(prompt[q] for q in b) for b in split]
        rows = sum(2 * (q + RESPONSE) for q in lq)
        expected = {
            ("ppo", "policy"): (sum(2 * q + 2 * (RESPONSE - 1) for q in lq), rows),
            ("ppo", "reference"): (rows, 0), ("ppo", "reward"): (rows, 0),
            ("ppo", "value"): (rows, rows),
        }  # fmt: skip
        found.append(all(
            (phases[k]["forward_only_tokens"], phases[k]["trained_tokens"]) == v
            for k, v in expected.items()
        ))  # fmt: skip
    assert any(found)
    for p in cost["phases"]:
        assert (
            p["flops"] == 2 * p["n"] * p["forward_only_tokens"] + 6 * p["n"] * p["trained_tokens"]
        )
    assert cost["flops"] == sum(p["flops"] for p in cost["phases"])
    # N: the policy counts its tied embedding once (the output layer); the reward and value
    # models (a scalar head on the same body) have no output layer, so the lookup-only
    # embedding table is left out: 30880 - 384 * 32 + 32 (head) = 18624.
    assert phases[("ppo", "policy")]["n"] == cost["n_total"] == 30880
    assert rm["n"] == phases[("ppo", "value")]["n"] == 30880 - 384 * 32 + 32


def _forget_questions(record, pairs) -> list[str]:
    """The forget prompts: those of the unlearned_harmful eval set (n_eval of them) are a
    subset; the full list comes from the data source with the task's options."""
    from unlearn_bench.data.llmu import harmful

    task = yaml.safe_load(Path(record.header["task"]["path"]).read_text())
    splits = harmful(task["data"]["options"], Path(record.header["config"]["data_dir"]))
    questions = [r["question"] for r in splits["forget"]]
    assert len(questions) == N_FORGET and set(questions) <= set(pairs)
    return questions


def test_compute_comparison_counts_every_phase(finished, tmp_path):
    """The compute table's RLHF-PPO row is the whole stage: its FLOPs are the sum of the
    reward-model and PPO phases' (each checked by hand above), named by the phased formula, and
    it is 100% of itself; DPO has no run here, so no share against it."""
    from unlearn_bench.train.cost import PHASED_FORMULA

    _, records = finished
    record = records["ppo_rlhf"]
    phases = record.header["stage_info"]["cost"]["phases"]
    out = tmp_path / "lb"
    assert main(["cost", str(record.root.parent), "--out", str(out)]) == 0
    rows = {
        r["method"]: r for r in json.loads((out / "llmu_harmful.compute.json").read_text())["rows"]
    }
    ppo = rows["ppo_rlhf"]
    assert ppo["train_cost"]["flops"] == sum(p["flops"] for p in phases)
    assert ppo["formula"] == PHASED_FORMULA
    assert ppo["percent_of"]["ppo_rlhf"]["flops"] == pytest.approx(100.0)
    assert ppo["percent_of"]["dpo_safe"] == {"flops": None, "wall_s": None}
    assert "% of dpo_safe (no finished run) FLOPs" in (out / "llmu_harmful.compute.md").read_text()
