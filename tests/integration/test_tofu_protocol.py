"""The whole TOFU protocol in one command, on the tiny random model and a tiny TOFU-shaped copy.

``unlearn-bench run --task tofu_forget01 --data-dir DIR --limit N`` finetunes on ``full`` and on
``retain99``, unlearns ``forget01``, evaluates all three models and writes the leaderboard.
"""

from __future__ import annotations

import json
from pathlib import Path

import by_hand
import pytest
import yaml
from tofu_fixtures import write_tofu_fixture

from unlearn_bench.cli import main

DERIVED = (
    "forget_quality", "model_utility", "tofu_privleak", "mia_loss_auc", "mia_zlib_auc",
    "mia_min_k_auc", "mia_min_k_plus_plus_auc", "mia_gradnorm_auc",
    "mia_gradnorm_mean_param_auc", "mia_reference_auc",
)  # fmt: skip


def _config(tmp_path: Path, steps: int) -> str:
    config = {
        "task": "tofu_forget01",
        "runs_dir": str(tmp_path / "runs"),
        "leaderboards_dir": str(tmp_path / "lb"),
        "finetune": {"max_steps": steps, "lr": 1e-3, "batch_size": 4},
        "unlearn": [{"method": "grad_ascent", "max_steps": 3, "lr": 1e-2, "batch_size": 2}],
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _results(group: Path, label: str) -> dict:
    return json.loads((group / label / "results.json").read_text())


def _samples(group: Path, label: str) -> list[dict]:
    lines = (group / label / "samples" / "tofu_forget01.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_protocol_in_one_command(tiny_model_dir, tmp_path, capsys) -> None:
    import torch

    torch.set_num_threads(1)
    data = write_tofu_fixture(tmp_path / "tofu")
    argv = ["run", "--config", _config(tmp_path, 4), "--model", str(tiny_model_dir)]
    argv += ["--data-dir", str(data), "--run-id", "g", "--limit", "2"]
    assert main(argv) == 0
    group = tmp_path / "runs" / "g"
    results = {label: _results(group, label)["tofu_forget01"] for label in ("target", "retain")}
    results["grad_ascent"] = _results(group, "grad_ascent")["tofu_forget01"]
    for label, res in results.items():
        assert set(DERIVED) <= set(res), label
        assert all(res[name]["version"] >= 1 for name in DERIVED)
        assert res["model_utility"]["value"] is not None
    retain = results["retain"]
    # The retain model is its own reference: identical samples on every attack and ratio.
    assert retain["forget_quality"]["value"] == pytest.approx(1.0)
    assert retain["tofu_privleak"]["value"] == pytest.approx(0.0)
    assert retain["mia_reference_auc"]["value"] == pytest.approx(0.5)
    # Forget quality: KS p-value of per-item truth ratios vs the retain model's, from the stored
    # samples (was a [0, 1] range check).
    expected = by_hand.forget_quality(_samples(group, "grad_ascent"), _samples(group, "retain"))
    assert results["grad_ascent"]["forget_quality"]["value"] == pytest.approx(expected, rel=1e-9)
    assert "standard" in results["target"]["mia_min_k_auc"]["note"]
    samples = (group / "target" / "samples" / "tofu_forget01.jsonl").read_text().splitlines()
    forget = [json.loads(line) for line in samples if '"eval_set": "forget"' in line]
    assert len(forget) == 2 and len(forget[0]["obs"]["perturbed_answer"]) == 3
    assert {"answer_vocab_stats", "answer_grad_norm"} <= forget[0]["obs"].keys()
    assert "tofu_forget01" in capsys.readouterr().out
    assert (tmp_path / "lb" / "tofu_forget01.md").is_file()
    # Re-scoring from stored samples (no model) reproduces the derived metrics.
    assert main(["score", str(group / "grad_ascent"), "--reference", str(group / "retain")]) == 0
    rescored = json.loads(capsys.readouterr().out)["tofu_forget01"]
    for name in DERIVED:
        assert rescored[name]["value"] == pytest.approx(results["grad_ascent"][name]["value"])


def test_imported_reference_log_feeds_forget_quality(tiny_model_dir, tmp_path) -> None:
    """Evaluate a model as is against a TOFU-format eval log turned into a reference record."""
    data = write_tofu_fixture(tmp_path / "tofu")
    log = {
        "eval_log_forget.json": {
            "avg_paraphrased_loss": {"0": 2.0, "1": 1.0},
            "average_perturb_loss": {"0": [1.0, 2.0, 3.0], "1": [2.0, 4.0]},
        }
    }
    (tmp_path / "log.json").write_text(json.dumps(log))
    ref = tmp_path / "refs" / "log"
    assert main(["reference", "import", str(tmp_path / "log.json"), "--task", "tofu_forget01",
                            "--out", str(ref)]) == 0  # fmt: skip
    argv = ["eval", "--task", "tofu_forget01", "--model", str(tiny_model_dir), "--data-dir"]
    argv += [str(data), "--runs-dir", str(tmp_path / "runs"), "--run-id", "e"]
    argv += ["--limit", "2", "--reference", str(ref)]
    assert main(argv) == 0
    res = _results(tmp_path / "runs" / "e", "target")["tofu_forget01"]
    # The log's truth ratios, by hand: log R = avg_paraphrased_loss - mean(average_perturb_loss)
    # (losses are mean per-token NLLs), so item 0: 2 - 2 = 0 and item 1: 1 - 3 = -2. Forget
    # quality is the KS p-value of ours against those (KS sees ranks only, so log R will do).
    from scipy.stats import ks_2samp

    mine = sorted((s for s in _samples(tmp_path / "runs" / "e", "target") if s["eval_set"] == "forget"),
                  key=lambda s: s["index"])  # fmt: skip
    assert [s["index"] for s in mine] == [0, 1]
    expected = ks_2samp([by_hand.log_truth_ratio(s) for s in mine], [0.0, -2.0]).pvalue
    assert res["forget_quality"]["value"] == pytest.approx(float(expected), rel=1e-9)
    assert "tofu-eval-log" in res["forget_quality"]["note"]
    # A TOFU eval log carries no MIA statistics: PrivLeak says so instead of inventing one.
    assert res["tofu_privleak"]["value"] is None and "no Min-K% AUC" in res["tofu_privleak"]["note"]


@pytest.mark.shared_data
def test_protocol_on_the_real_tofu_files(tiny_model_dir, tmp_path, shared_data) -> None:
    import torch

    torch.set_num_threads(1)
    config = yaml.safe_load(Path(_config(tmp_path, 2)).read_text())
    config["task"] = "tofu_forget10"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    argv = ["run", "--config", str(tmp_path / "run.yaml"), "--model", str(tiny_model_dir)]
    argv += ["--data-dir", str(shared_data / "tofu"), "--run-id", "real", "--limit", "2"]
    assert main(argv) == 0
    retain = _results(tmp_path / "runs" / "real", "retain")["tofu_forget10"]
    assert retain["forget_quality"]["value"] == pytest.approx(1.0)
    assert retain["forget/probability"]["n"] == 2 and retain["real_authors/truth_ratio"]["n"] == 2
