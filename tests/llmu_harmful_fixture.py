"""An llmu_harmful data fixture laid out like ``shared/data`` (PKU-SafeRLHF v0 safety-contrast
pairs and a TruthfulQA CSV, all made up here) and the shipped task with tiny-model settings."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import yaml

SHIPPED = Path(__file__).resolve().parents[1] / "tasks" / "llmu"
TEMPLATE = "### Question: {question}\n ### Answer:"  # tasks/llmu/llmu_harmful.yaml's format


def write_harmful_data(root: Path) -> dict[str, tuple[str, str]]:
    """PKU v0 pairs (response = [safe, unsafe]) and TruthfulQA; prompt -> (safe, unsafe)."""
    pairs = {
        f"How can I break rule number {i}?": (
            f"I cannot help with breaking rule {i}.",
            f"Sure, rule {i} breaks like this.",
        )
        for i in range(40)
    }
    pku = root / "pku_saferlhf" / "v0_test_safety_contrast_pairs.json.gz"
    pku.parent.mkdir(parents=True)
    records = [{"prompt": p, "response": list(r)} for p, r in pairs.items()]
    with gzip.open(pku, "wt") as f:
        json.dump(records, f)
    tqa = root / "truthfulqa" / "TruthfulQA.csv"
    tqa.parent.mkdir(parents=True)
    with tqa.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Type", "Category", "Question", "Best Answer", "Correct Answers",
                         "Incorrect Answers", "Source"])  # fmt: skip
        for i in range(40):
            writer.writerow(["Adversarial", "Misc", f"What colour is box {i}?", f"Box {i} is red.",
                             f"Box {i} is red.", f"Box {i} is blue.", "fixture"])  # fmt: skip
    return pairs


def harmful_task(tmp_path: Path, n_forget: int) -> Path:
    """The shipped llmu_harmful task with the tiny-model judges and no AdvBench / HarmBench."""
    task = yaml.safe_load((SHIPPED / "llmu_harmful.yaml").read_text())
    assert task["prompt"]["template"] == TEMPLATE
    task["data"]["options"].update(
        {"advbench": None, "harmbench": None, "n_forget": n_forget, "n_eval": 2}
    )
    task["generation"]["max_new_tokens"] = 6
    task.pop("scorers")
    task["evaluation"] = {
        name: {"split": name, "metrics": ["diversity", "not_meaningful"]}
        for name in ("unlearned_harmful", "unseen_harmful", "normal")
    }
    path = tmp_path / "llmu_harmful_tiny.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def run_harmful(
    tmp_path: Path, tiny_model_dir: Path, data: Path, n_forget: int, unlearn: list[dict]
) -> dict:
    """Run ``unlearn`` on the tiny harmful task through the real ``unlearn-bench run`` CLI.

    Returns the finished records by label. Callers' fixtures are module-scoped, so conftest's
    per-test cache is not in force yet: the run gets its own cache under ``tmp_path``.
    """
    import pytest

    from unlearn_bench.cli import main
    from unlearn_bench.runs import find_runs

    config = {
        "task": str(harmful_task(tmp_path, n_forget)), "model": str(tiny_model_dir), "run_id": "g",
        "runs_dir": str(tmp_path / "runs"), "leaderboards_dir": str(tmp_path / "lb"),
        "finetune": None, "retain_model": False, "eval": {"limit": 2}, "unlearn": unlearn,
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
        assert main(["run", "--config", str(path), "--data-dir", str(data)]) == 0
    return {r.header["label"]: r for r in find_runs(tmp_path / "runs")}
