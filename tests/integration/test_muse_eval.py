"""MUSE-News on the tiny random model: backend pieces, evaluation, re-scoring, protocols."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from muse_fixtures import write_muse_dir

from unlearn_bench.backends.base import ScoreRequest
from unlearn_bench.backends.hf import HFBackend
from unlearn_bench.cli import main
from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.protocols.muse import run_muse_protocol
from unlearn_bench.runner import run_protocol

TEXT = "The author was born in a coastal town and wrote the book in Paris."


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_truncate_tokens_keeps_the_first_content_tokens(tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), progress=False)
    ids = backend.tokenizer(TEXT, add_special_tokens=False).input_ids
    [cut] = backend.truncate_tokens([TEXT], 5)
    assert backend.tokenizer(cut, add_special_tokens=False).input_ids == ids[:5]
    assert TEXT.startswith(cut)
    assert backend.truncate_tokens([TEXT], 10_000) == [TEXT]


def test_whole_text_scoring_starts_at_the_second_token_without_bos(tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), progress=False)
    tok = backend.tokenizer
    assert tok("", add_special_tokens=True).input_ids == []  # like SmolLM2: no BOS is added
    ids = tok(TEXT, add_special_tokens=False).input_ids
    [scores] = backend.logprobs([ScoreRequest("", TEXT, add_special_tokens=True)])
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), -1)
    expected = [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]
    assert scores.logprobs == pytest.approx(expected, abs=1e-5)


def _config(model: Path, data: Path, tmp_path: Path, **extra) -> RunConfig:
    return RunConfig.from_dict(
        {
            "task": "muse_news", "model": str(model), "data_dir": str(data),
            "runs_dir": str(tmp_path / "runs"), "leaderboards_dir": str(tmp_path / "lb"),
            "run_id": "g", "finetune": None, "unlearn": [], "retain_model": False,
            "eval": {"batch_size": 4, "limit": 3}, **extra,
        }
    )  # fmt: skip


def _unstemmed_rouge_l_f1_x100(prediction: str, reference: str) -> float:
    """MUSE's metric straight from rouge-score as MUSE's code builds it (no stemmer)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return 100.0 * scorer.score(reference, prediction)["rougeL"].fmeasure


def _min_40(logprobs: list[float]) -> float:
    """Min-40% Prob: mean of the lowest floor(0.4 n) (at least 1) token log-probs."""
    lowest = sorted(logprobs)[: max(1, int(len(logprobs) * 0.4))]
    return sum(lowest) / len(lowest)


def _muse_auc(forget: list[float], holdout: list[float]) -> float:
    """MUSE orientation: chance a forget text looks less memorised than a holdout one (ties 1/2)."""
    pairs = [(f < h) + 0.5 * (f == h) for f in forget for h in holdout]
    return sum(pairs) / len(pairs)


def test_evaluation_end_to_end_and_rescore(tiny_model_dir, tmp_path, capsys):
    data = write_muse_dir(tmp_path / "data")
    _, [record], _ = run_protocol(_config(tiny_model_dir, data, tmp_path), echo=lambda _: None)
    results = record.results()["muse_news"]
    samples = record.read_samples("muse_news")
    by_set: dict[str, list[dict]] = {}
    for s in samples:
        by_set.setdefault(s["eval_set"], []).append(s)
    # Every number recomputed from the stored generations / log-probs by its definition.
    for key, reference in (
        ("verbmem_forget/verbmem_f", lambda s: s["obs"]["reference_prefix"]),
        ("knowmem_forget/knowmem_f", lambda s: s["answer"]),
        ("knowmem_retain/knowmem_r", lambda s: s["answer"]),
    ):
        items = by_set[key.split("/")[0]]
        expected = [_unstemmed_rouge_l_f1_x100(s["obs"]["generation"], reference(s)) for s in items]
        assert results[key]["n"] == len(items) == 3
        assert results[key]["value"] == pytest.approx(sum(expected) / 3)
    forget = [_min_40(s["obs"]["answer"]["logprobs"]) for s in by_set["privleak_forget"]]
    holdout = [_min_40(s["obs"]["answer"]["logprobs"]) for s in by_set["privleak_holdout"]]
    assert results["privleak_forget/min_k_40"]["value"] == pytest.approx(sum(forget) / 3)
    auc = _muse_auc(forget, holdout)
    assert results["privleak_auc"]["value"] == pytest.approx(auc)
    assert results["privleak"]["value"] == pytest.approx((auc - 0.4772) / 0.4772 * 100)
    assert "MUSE's published News retrain AUC 0.4772" in results["privleak"]["note"]
    verbmem = [s for s in samples if s["eval_set"] == "verbmem_forget"]
    # The reference is the true continuation cut to 128 model tokens (these are shorter).
    assert all(s["obs"]["reference_prefix"] == s["answer"] for s in verbmem)
    # Re-scoring from stored observations reproduces every number without a model.
    capsys.readouterr()
    assert main(["score", str(record.root)]) == 0
    rescored = json.loads(capsys.readouterr().out)["muse_news"]
    for key in ("knowmem_forget/knowmem_f", "privleak_auc", "privleak"):
        assert rescored[key]["value"] == pytest.approx(results[key]["value"])


def test_finetuning_without_raw_retain_names_the_missing_files(tiny_model_dir, tmp_path, capsys):
    data = write_muse_dir(tmp_path / "data")
    code = main(["run", "--task", "muse_news", "--model", str(tiny_model_dir), "--data-dir",
                 str(data), "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "split 'full' is unavailable" in err and "raw/retain1.json" in err
    assert "\n" not in err


def test_sustainability_protocol_chains_requests_and_draws_curves(tiny_model_dir, tmp_path):
    data = write_muse_dir(tmp_path / "data")
    method = {"method": "grad_ascent", "max_steps": 1, "lr": 1e-3, "batch_size": 2}
    config = _config(tiny_model_dir, data, tmp_path, unlearn=[method], eval={"limit": 2})
    splits = ["sust_forget_1", "sust_forget_2"]
    group, records, plots = run_muse_protocol(config, "sustainability", splits, echo=lambda _: None)
    protocols = [r.header.get("protocol") for r in records]
    assert protocols == [
        None,  # the target, a reference line
        {"name": "sustainability", "step": 1, "split": "sust_forget_1", "size": 4},
        {"name": "sustainability", "step": 2, "split": "sust_forget_2", "size": 2},
    ]
    assert {r.header["label"] for r in records[1:]} == {"grad_ascent"}
    # Request 2 starts from request 1's unlearned model, not from the target.
    step1, step2 = (Path(r.header["model_path"]) for r in records[1:])
    from unlearn_bench.models import weights_hash

    assert json.loads((step2 / "RECIPE.json").read_text())["start"] == weights_hash(step1)
    assert all(r.is_finished() and "privleak" in r.results()["muse_news"] for r in records)
    assert sorted(p.suffix for p in plots) == [".png", ".svg"] and all(p.is_file() for p in plots)
    assert json.loads((group / "GROUP.json").read_text())["status"] == "finished"
    # Every unlearning step was checked for collapse, with the training log of its checkpoint.
    for record in records[1:]:
        check = record.header["collapse_check"]
        assert check["target"] == records[0].run_id and "uniform_kl_nats" in check["thresholds"]


def test_scalability_refuses_missing_forget_sets_before_training(tiny_model_dir, tmp_path):
    data = write_muse_dir(tmp_path / "data")
    config = _config(tiny_model_dir, data, tmp_path, unlearn=[{"method": "grad_ascent"}])
    with pytest.raises(UnlearnBenchError, match=r"scal/forget_2\.json.*scalability protocol"):
        run_muse_protocol(config, "scalability", echo=lambda _: None)
    assert not (tmp_path / "runs" / "g").exists()
