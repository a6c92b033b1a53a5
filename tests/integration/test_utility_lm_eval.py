"""lm-eval utility tasks on our model objects: a tiny local task built here, and local WMDP.

The expected accuracy is computed here by the definition of lm-eval's multiple-choice ``acc``
(the choice with the highest summed log-probability of its continuation tokens, after the
target delimiter " ", is the prediction), straight from the tiny model's logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unlearn_bench.cli import main
from unlearn_bench.config import UtilityConfig

pytestmark = pytest.mark.lm_eval
pytest.importorskip("lm_eval")
from unlearn_bench.utility import lm_eval_bridge, wmdp  # noqa: E402

DOCS = [
    {"question": "The sky is", "choices": ["blue", "green", "loud"], "answer": 0},
    {"question": "Two plus two is", "choices": ["four", "seven"], "answer": 0},
    {"question": "Ice is", "choices": ["hot", "cold", "purple"], "answer": 1},
    {"question": "Fish live in", "choices": ["trees", "water"], "answer": 1},
]


def _tiny_task(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs.json").write_text(json.dumps(DOCS))
    task = {
        "task": "tiny_mcq",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(folder / "docs.json")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1},
    }
    (folder / "tiny_mcq.yaml").write_text(yaml.safe_dump(task))
    return folder


def _hand_accuracy(model, tokenizer) -> float:
    import torch

    correct = 0
    for doc in DOCS:
        context = doc["question"] + "\nAnswer:"
        scores = []
        for choice in doc["choices"]:
            whole = tokenizer(context + " " + choice, add_special_tokens=False).input_ids
            n_ctx = len(tokenizer(context, add_special_tokens=False).input_ids)
            with torch.no_grad():
                logits = model(torch.tensor([whole])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            scores.append(sum(float(logp[i - 1, whole[i]]) for i in range(n_ctx, len(whole))))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    return correct / len(DOCS)


def test_tiny_task_accuracy_matches_the_definition(tiny_model_and_tokenizer, tmp_path):
    model, tokenizer = tiny_model_and_tokenizer
    config = UtilityConfig(tasks=["tiny_mcq"], include_path=str(_tiny_task(tmp_path / "t")))
    found = lm_eval_bridge.evaluate(config, model, tokenizer)
    entry = found["utility/tiny_mcq/acc"]
    assert entry["value"] == pytest.approx(_hand_accuracy(model, tokenizer))
    assert entry["n"] == 4 and entry["higher_is_better"] is True and entry["version"] == 1


def test_utility_reaches_results_and_leaderboard_through_the_cli(tiny_model_dir, tmp_path):
    tasks = _tiny_task(tmp_path / "t")
    cfg = {
        "task": "synthetic_people",
        "model": str(tiny_model_dir),
        "runs_dir": str(tmp_path / "runs"),
        "leaderboards_dir": str(tmp_path / "lb"),
        "run_id": "u",
        "eval": {"limit": 2},
        "utility": {"tasks": ["tiny_mcq"], "include_path": str(tasks)},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["eval", "--config", str(tmp_path / "c.yaml")]) == 0
    results = json.loads((tmp_path / "runs" / "u" / "target" / "results.json").read_text())
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    expected = _hand_accuracy(model, AutoTokenizer.from_pretrained(tiny_model_dir))
    assert results["synthetic_people"]["utility/tiny_mcq/acc"]["value"] == pytest.approx(expected)
    assert (
        main(["leaderboard", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
        == 0
    )
    table = (tmp_path / "lb" / "synthetic_people.md").read_text()
    assert "utility/tiny_mcq/acc ↑" in table and "sample_len" not in table


@pytest.mark.parametrize(
    ("utility", "message"),
    [
        ({"tasks": ["no_such_task_xyz"]}, "unknown lm-eval task 'no_such_task_xyz'"),
        (
            {"tasks": ["wmdp_bio"], "data_dir": "/nonexistent"},
            "utility task wmdp_bio: no local data at /nonexistent/bio_questions.json.gz",
        ),
    ],
)
def test_bad_utility_tasks_are_one_line_errors_before_any_work(tmp_path, capsys, utility, message):
    cfg = {"task": "synthetic_people", "runs_dir": str(tmp_path / "runs"), "utility": utility}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["eval", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "runs").exists()  # refused before any run record


def test_local_wmdp_is_lm_evals_own_task_definition(tmp_path):
    import lm_eval

    folder = Path(lm_eval.__file__).parent / "tasks" / "wmdp"
    template = yaml.safe_load((folder / "_default_template_yaml").read_text())
    (tmp_path / "bio_questions.json.gz").write_bytes(b"")
    ours = wmdp.task_config("wmdp_bio", tmp_path)
    for key in ("output_type", "doc_to_text", "doc_to_choice", "doc_to_target", "metric_list"):
        assert ours[key] == template[key]
    bio = yaml.safe_load((folder / "wmdp_bio.yaml").read_text())
    assert ours["description"] == bio["description"]


@pytest.mark.shared_data
def test_wmdp_from_the_shared_questions(tiny_model_and_tokenizer):
    from conftest import SHARED_DATA

    data_dir = SHARED_DATA / "wmdp"
    if not data_dir.is_dir():
        pytest.skip("needs ../shared/data/wmdp")
    model, tokenizer = tiny_model_and_tokenizer
    config = UtilityConfig(tasks=["wmdp_chem"], data_dir=str(data_dir), limit=4)
    lm_eval_bridge.check(config)
    entry = lm_eval_bridge.evaluate(config, model, tokenizer)["utility/wmdp_chem/acc"]
    assert entry["n"] == 4 and entry["value"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert (
        entry["data_sha256"] == "f518a32e90c9c3cc81d78c857bd84fa0a559b69200aa26ff917d589e507faad2"
    )
