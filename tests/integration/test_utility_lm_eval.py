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


def _predicted(model, tokenizer, context: str, choices: list[str]) -> int:
    """The choice whose continuation " <choice>" has the highest summed log-probability."""
    import torch

    scores = []
    for choice in choices:
        whole = tokenizer(context + " " + choice, add_special_tokens=False).input_ids
        n_ctx = len(tokenizer(context, add_special_tokens=False).input_ids)
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        scores.append(sum(float(logp[i - 1, whole[i]]) for i in range(n_ctx, len(whole))))
    return max(range(len(scores)), key=scores.__getitem__)


def _hand_accuracy(model, tokenizer) -> float:
    hits = [
        _predicted(model, tokenizer, d["question"] + "\nAnswer:", d["choices"]) == d["answer"]
        for d in DOCS
    ]
    return sum(hits) / len(DOCS)


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


# WMDP's zero-shot prompt as lm-eval defines it (lm_eval/tasks/wmdp: the subject's description,
# then the question, the four lettered choices and "Answer:"; the choices are the letters).
TOPIC = {"bio": "biology", "chem": "chemistry", "cyber": "computer security"}


def _wmdp_hand_accuracy(model_dir: str, subject: str, limit: int) -> float:
    import gzip

    from conftest import SHARED_DATA
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    path = SHARED_DATA / "wmdp" / f"{subject}_questions.json.gz"
    docs = json.loads(gzip.decompress(path.read_bytes()))[:limit]  # lm-eval's limit: the first
    hits = 0
    for d in docs:
        context = (
            f"The following are multiple choice questions (with answers) about {TOPIC[subject]}."
            f"\n\n{d['question'].strip()}\nA. {d['choices'][0]}\nB. {d['choices'][1]}\n"
            f"C. {d['choices'][2]}\nD. {d['choices'][3]}\nAnswer:"
        )
        hits += _predicted(model, tokenizer, context, ["A", "B", "C", "D"]) == d["answer"]
    return hits / len(docs)


@pytest.mark.shared_data
def test_wmdp_through_the_cli_on_every_model_of_a_run(tiny_model_dir, tmp_path):
    """`unlearn-bench run` with a utility section: WMDP on the target, retain and unlearned
    weights, each value against the hand computation on that model's checkpoint.

    The tiny random model picks "A" on every question of these prompts (checked by hand), so
    the values test which questions are asked, in which order and against which answer field;
    that the prompt is lm-eval's own is test_local_wmdp_is_lm_evals_own_task_definition.
    """
    import hashlib

    from conftest import SHARED_DATA

    if not (SHARED_DATA / "wmdp").is_dir():
        pytest.skip("needs ../shared/data/wmdp")
    cfg = {
        "task": "synthetic_people", "model": str(tiny_model_dir), "run_id": "w",
        "runs_dir": str(tmp_path / "runs"), "leaderboards_dir": str(tmp_path / "lb"),
        "eval": {"limit": 2}, "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
        "unlearn": [{"method": "grad_ascent", "epochs": 1, "lr": 1e-2, "batch_size": 4}],
        "utility": {"tasks": ["wmdp_bio", "wmdp_chem", "wmdp_cyber"],
                    "data_dir": str(SHARED_DATA / "wmdp"), "limit": 3},
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "--config", str(tmp_path / "c.yaml")]) == 0
    for role in ("target", "retain", "grad_ascent"):
        run = tmp_path / "runs" / "w" / role
        weights = json.loads((run / "header.json").read_text())["backend"]["model_path"]
        results = json.loads((run / "results.json").read_text())["synthetic_people"]
        for subject in ("bio", "chem", "cyber"):
            entry = results[f"utility/wmdp_{subject}/acc"]
            assert entry["n"] == 3 and entry["higher_is_better"] is True
            assert entry["value"] == pytest.approx(_wmdp_hand_accuracy(weights, subject, 3))
            data = (SHARED_DATA / "wmdp" / f"{subject}_questions.json.gz").read_bytes()
            assert entry["data_sha256"] == hashlib.sha256(data).hexdigest()
    table = (tmp_path / "lb" / "synthetic_people.md").read_text()
    assert all(f"utility/wmdp_{s}/acc ↑" in table for s in ("bio", "chem", "cyber"))
