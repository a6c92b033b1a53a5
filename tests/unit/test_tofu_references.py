"""Reference values for forget quality and PrivLeak: runs, imported logs, index pairing.

KS p-values are worked out by hand: with n = m and every value of one sample above every value
of the other, D = 1 and the exact two-sided p-value is 2 / C(n + m, n) (only the two fully
separated orderings reach D = 1).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.metrics import DERIVED_METRICS
from unlearn_bench.metrics.views import ReferenceValues, RunView
from unlearn_bench.references import from_run, load_reference
from unlearn_bench.runs import RunRecord
from unlearn_bench.scoring import as_reference, reference_values

TASK = "tofu_forget10"


def _forget_sample(index: int, perturbed_mean: float, question: str | None = None) -> dict:
    # Paraphrase log-prob -1 and one perturbed answer with mean log-prob m: R = exp(m + 1).
    return {
        "eval_set": "forget",
        "index": index,
        "question": question or f"Question {index}?",
        "answer": "a",
        "obs": {
            "answer": {"logprobs": [-1.0], "greedy": [True]},
            "paraphrased_answer": {"logprobs": [-1.0], "greedy": [True]},
            "perturbed_answer": [{"logprobs": [perturbed_mean], "greedy": [False]}],
        },
    }


def _view(means: list[float], label: str = "run", **questions: str) -> RunView:
    samples = [_forget_sample(i, m, questions.get(f"q{i}")) for i, m in enumerate(means)]
    return RunView(label, {"forget": samples}, {})


def _fq(run: RunView, reference: RunView | ReferenceValues | None):
    ref = None if reference is None else as_reference(reference)
    return DERIVED_METRICS.get("forget_quality").fn(run, ref)


def test_retain_model_against_itself_gives_forget_quality_one() -> None:
    retain = _view([-0.5, -1.7, -0.2, -3.0], label="retain")
    result = _fq(retain, retain)
    assert result.value == pytest.approx(1.0)
    assert "n=4" in result.note


def test_forget_quality_separated_samples_by_hand() -> None:
    run = _view([-0.5, -0.4, -0.3])  # R = e^0.5, e^0.6, e^0.7
    retain = _view([-2.0, -1.9, -1.8], label="retain")  # R = e^-1, e^-0.9, e^-0.8
    # Every run ratio is above every retain ratio: D = 1, p = 2 / C(6, 3) = 2 / 20
    assert _fq(run, retain).value == pytest.approx(0.1, rel=1e-9)


def test_forget_quality_uses_the_items_the_reference_covers() -> None:
    run = _view([-0.5, -0.4, -0.3])
    reference = ReferenceValues("log", "tofu-eval-log", "x", {0: math.e**-1, 1: math.e**-0.9})
    # Items 0 and 1 only: D = 1, p = 2 / C(4, 2) = 1/3
    result = _fq(run, reference)
    assert result.value == pytest.approx(1 / 3, rel=1e-9)
    assert "n=2 of 3 forget items" in result.note


def test_forget_quality_refuses_other_questions_and_missing_reference() -> None:
    run = _view([-0.5, -0.4])
    other = _view([-0.5, -0.4], label="other", q1="A different question?")
    result = _fq(run, other)
    assert result.value is None and "another question at forget index 1" in result.note
    assert _fq(run, None).value is None
    empty = ReferenceValues("e", "open-unlearning", "x", {7: 1.0})
    assert "shares no forget items" in _fq(run, empty).note


def _tofu_log(stored_ratio_1: float) -> dict:
    return {
        "eval_log_forget.json": {
            "avg_paraphrased_loss": {"0": 2.0, "1": 1.0},
            "average_perturb_loss": {"0": [1.0, 2.0, 3.0], "1": [2.0, 4.0]},
            "truth_ratio": {"1": stored_ratio_1},
            "generated_text": {"0": ["[INST] Question 0? [/INST]", "a", "b"]},
        }
    }


def test_tofu_eval_log_import(tmp_path: Path) -> None:
    # R = exp(avg paraphrased loss - mean perturbed loss): item 0: exp(2 - 2) = 1,
    # item 1: exp(1 - 3) = e^-2 = 0.1353352832366127
    path = tmp_path / "eval_log_aggregated.json.gz"
    path.write_bytes(gzip.compress(json.dumps(_tofu_log(0.1353352832366127)).encode()))
    values = load_reference(path, TASK)
    assert values.kind == "tofu-eval-log"
    assert values.truth_ratios[0] == pytest.approx(1.0)
    assert values.truth_ratios[1] == pytest.approx(0.1353352832366127, rel=1e-12)
    assert values.questions == {0: "[INST] Question 0? [/INST]"}
    # The prompt holds the question, so pairing with this run's item 0 is accepted.
    assert _fq(_view([-1.0, -3.0]), values).value == pytest.approx(1.0)


def test_tofu_eval_log_disagreeing_with_its_own_ratio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps(_tofu_log(0.5)))
    with pytest.raises(UnlearnBenchError, match="disagrees with the logged"):
        load_reference(path, TASK)


def test_open_unlearning_import_and_privleak(tmp_path: Path) -> None:
    path = tmp_path / "TOFU_EVAL.json"
    log = {
        "forget_truth_ratio": {
            "agg_value": 0.7,
            "value_by_index": {"0": {"score": 0.5}, "3": {"score": 2.0}, "4": {"score": None}},
        },
        "mia_min_k": {"agg_value": 0.9, "auc": 0.9},
        "mia_gradnorm": {"agg_value": 0.2},
    }
    path.write_text(json.dumps(log))
    values = load_reference(path, TASK)
    assert values.truth_ratios == {0: 0.5, 3: 2.0}
    assert values.mia_auc == {"min_k": 0.9}  # GradNorm skipped: oriented otherwise
    # PrivLeak: reference MUSE-orientation AUC = 1 - 0.9 = 0.1. This run: forget one-token
    # log-probs (-1, -2) vs holdout (-3): both above -> standard AUC 1, MUSE 0.
    # (0 - 0.1) / 0.1 x 100 = -100
    forget = [_forget_sample(0, -1.0), _forget_sample(1, -1.0)]
    forget[1]["obs"]["answer"]["logprobs"] = [-2.0]
    holdout = [dict(_forget_sample(0, -1.0), eval_set="holdout")]
    holdout[0]["obs"]["answer"]["logprobs"] = [-3.0]
    run = RunView("run", {"forget": forget, "holdout": holdout}, {})
    result = DERIVED_METRICS.get("tofu_privleak").fn(run, as_reference(values))
    assert result.value == pytest.approx(-100.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [("[1, 2]", "must be a JSON object"), ('{"x": 1}', "not a run"), ("{", "cannot read")],
)
def test_unknown_reference_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ref.json"
    path.write_text(content)
    with pytest.raises(UnlearnBenchError, match=message):
        load_reference(path, TASK)
    with pytest.raises(UnlearnBenchError, match="not found"):
        load_reference(tmp_path / "absent.json", TASK)


def _write_run(root: Path, view: RunView) -> RunRecord:
    record = RunRecord.open_or_create(root, "g/retain", {"fingerprint": "f"})
    record.write_samples(TASK, [s for samples in view.by_set.values() for s in samples])
    return record


def test_retain_run_values_are_cached(tmp_path: Path, monkeypatch, isolated_cache) -> None:
    _write_run(tmp_path / "retain", _view([-0.5, -1.5], label="retain"))
    first = from_run(tmp_path / "retain", TASK)
    assert first.truth_ratios == pytest.approx({0: math.exp(0.5), 1: math.exp(-0.5)})
    assert len(list((isolated_cache / "references").glob("*.json"))) == 1
    import unlearn_bench.scoring as scoring

    def fail(view: object) -> None:
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(scoring, "reference_values", fail)
    assert from_run(tmp_path / "retain", TASK) == first


def test_reference_record_round_trip_through_cli(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    log.write_text(json.dumps(_tofu_log(0.1353352832366127)))
    out = tmp_path / "refs" / "llama2-retain90"
    assert main(["reference", "import", str(log), "--task", TASK, "--out", str(out)]) == 0
    header = json.loads((out / "header.json").read_text())
    assert header["status"] == "reference" and header["reference"]["kind"] == "tofu-eval-log"
    view = RunView.load(RunRecord(out), TASK)  # what ``--reference DIR`` does
    values = reference_values(view)
    assert values.truth_ratios[1] == pytest.approx(math.exp(-2.0))
    assert (
        main(["reference", "import", str(log), "--task", TASK, "--out", str(out)]) == 2
    )  # no overwrite
    exported = tmp_path / "values.json"
    assert main(["reference", "export", str(out), "--task", TASK, "--out", str(exported)]) == 0
    assert load_reference(exported, TASK) == values


@pytest.mark.shared_data
def test_real_tofu_eval_logs_import(shared_data: Path) -> None:
    from unlearn_bench.data.tofu import load_tofu

    logs = sorted((shared_data / "tofu" / "reference_eval_logs").glob("*.json.gz"))
    assert len(logs) == 8
    expected = {"full": 300, "retain90": 300, "retain95": 200, "retain99": 40}
    forget10 = load_tofu({"configs": ["forget10_perturbed"]}, shared_data / "tofu")
    for path in logs:
        split = path.name.split("_")[4]
        values = load_reference(path, TASK)  # also checks every R against the logged one
        assert len(values.truth_ratios) == expected[split], path.name
        if split in ("full", "retain90"):
            # Their forget items are forget10's first 300: questions agree index by index.
            for index in (0, 150, 299):
                assert forget10["forget10_perturbed"][index]["question"] in values.questions[index]
