"""MedForget end to end: synthetic parquet data, a fake or tiny random VLM, a fake judge."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import torch
from muse_fixtures import build_tiny_vlm_dir, png_bytes, write_medforget_dir

from unlearn_bench.backends.base import BACKENDS, GenerateRequest, Message
from unlearn_bench.backends.fake import FakeBackend
from unlearn_bench.backends.hf import HFBackend
from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.runner import run_protocol

JUDGE_REPLY = '{"score": 8, "reasoning": "the same finding"}'


class VisionFake(FakeBackend):
    """A fake vision-language model that "knows" two of the three sub-tasks' answers."""

    capabilities = frozenset({"generate", "vision"})
    seen: list[GenerateRequest] = []

    def __init__(self, model: str = "fake", **_: object) -> None:
        super().__init__(
            model, answers={"Which organ": "A) lung", "Describe": "A nodule in the lung."}
        )

    def generate(self, requests):
        VisionFake.seen += requests
        return super().generate(requests)


@pytest.fixture(scope="module", autouse=True)
def registered():
    torch.set_num_threads(1)
    if "fake-vision" not in BACKENDS:
        BACKENDS.register("fake-vision")(VisionFake)


def _task(tmp_path: Path, judge_answers: dict[str, str]) -> Path:
    """The shipped task with the judge swapped for a fake one (the one inheritance mechanism)."""
    shipped = Path(__file__).resolve().parents[2] / "tasks" / "medforget" / "medforget.yaml"
    answers = ", ".join(f"{k!r}: {v!r}" for k, v in judge_answers.items())
    path = tmp_path / "medforget_test.yaml"
    path.write_text(
        f"include: {shipped}\nname: medforget_test\nscorers:\n  factuality: {{kind: llm_factuality, "
        f"model: judge, backend: fake, backend_args: {{answers: {{{answers}}}}}}}\n"
    )
    return path


def _config(task: Path, data: Path, tmp_path: Path, **extra) -> RunConfig:
    return RunConfig.from_dict(
        {"task": str(task), "model": "org/vlm", "backend": "fake-vision", "data_dir": str(data),
         "runs_dir": str(tmp_path / "runs"), "run_id": "g", "finetune": None, "unlearn": [],
         "retain_model": False, **extra}
    )  # fmt: skip


def test_levels_and_sub_tasks_are_scored_separately(tmp_path):
    data = write_medforget_dir(tmp_path / "data")
    # The fake judge knows the model's generation answer (it appears in the judge prompt), so
    # every generation sample is judged 8.
    task = _task(tmp_path, {"A nodule in the lung.": JUDGE_REPLY})
    VisionFake.seen = []
    _, [record], _ = run_protocol(_config(task, data, tmp_path), echo=lambda _: None)
    results = record.results()["medforget_test"]
    for level in ("institution", "patient", "study", "section"):
        for which in ("forget", "retain"):
            prefix = f"{level}_{which}"
            # ROUGE-L F1 10/11 (see the metric tests), factuality 8: 0.25 x 10/11 + 0.6
            assert results[f"{prefix}_generation/gen_score"]["value"] == pytest.approx(
                0.25 * 10 / 11 + 0.6
            )
            assert results[f"{prefix}_generation/gen_score"]["n"] == 2
            assert results[f"{prefix}_classification/exact_match_accuracy"]["value"] == 1.0
            assert results[f"{prefix}_cloze/exact_match_accuracy"]["value"] == 0.0  # unknown
    assert results["judge_failures"]["value"] == 0.0
    # 4 levels x 2 sets x 2 images x 3 questions, each request with its one image
    assert len(VisionFake.seen) == 48 and all(len(r.images) == 1 for r in VisionFake.seen)
    samples = record.read_samples("medforget_test")
    assert all("_images" not in s and len(s["image_sha256"]) == 64 for s in samples)
    judged = next(s for s in samples if "scorer:factuality" in s["obs"])
    assert judged["obs"]["scorer:factuality"]["identity"]["judge"].startswith("llm factuality")


def test_judge_failures_score_zero_and_are_counted(tmp_path):
    data = write_medforget_dir(
        tmp_path / "data", levels=("institution", "patient", "study", "section")
    )
    task = _task(tmp_path, {"zzz-never": JUDGE_REPLY})  # the fake judge replies "unknown ..."
    _, [record], _ = run_protocol(_config(task, data, tmp_path), echo=lambda _: None)
    results = record.results()["medforget_test"]
    assert results["judge_failures"]["value"] == 16.0  # 8 generation sets x 2 samples
    assert results["patient_forget_generation/gen_score"]["value"] == pytest.approx(0.25 * 10 / 11)
    assert results["patient_forget_generation/judge_factuality"]["value"] is None


def test_backend_without_vision_is_refused_before_any_work(tmp_path):
    data = write_medforget_dir(tmp_path / "data")
    config = _config(_task(tmp_path, {}), data, tmp_path, backend="fake")
    with pytest.raises(UnlearnBenchError, match=r"lacks \['vision'\]"):
        run_protocol(config, echo=lambda _: None)


def test_text_only_hf_model_refuses_images(tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), progress=False)
    with pytest.raises(UnlearnBenchError, match="text-only"):
        backend.chat_prompt([Message("user", "Describe.", images=1)])
    image = base64.b64encode(png_bytes((1, 2, 3))).decode()
    with pytest.raises(UnlearnBenchError, match="text-only"):
        backend.generate([GenerateRequest("Describe.", 4, images=(image,))])


def test_tiny_random_vlm_through_the_hf_backend(tmp_path):
    backend = HFBackend(str(build_tiny_vlm_dir(tmp_path / "vlm")), progress=False, batch_size=4)
    assert backend.processor is not None
    prompt = backend.chat_prompt([Message("user", "Describe the finding.", images=1)])
    assert (
        prompt
        == "<|im_start|>user\n<image>Describe the finding.<|im_end|>\n<|im_start|>assistant\n"
    )
    images = [base64.b64encode(png_bytes(c, 20)).decode() for c in ((250, 0, 0), (0, 0, 250))]
    long_prompt = backend.chat_prompt(
        [Message("user", "Which organ? A) lung B) heart C) liver", images=1)]
    )
    requests = [
        GenerateRequest(prompt, 6, images=(images[0],)),
        GenerateRequest(long_prompt, 6, images=(images[1],)),
    ]
    batched = backend.generate(requests)
    # Left padding: a batch gives each request what it gets alone.
    assert batched == [backend.generate([r])[0] for r in requests]
    # The images reach the model as pixel values, each with its own request's prompt (the
    # backend batches longest prompt first: the long prompt goes with the blue image).
    seen = {}
    real = backend.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    backend.model.generate = spy
    backend.generate(requests)
    pixels = seen["pixel_values"]
    assert pixels.shape == (2, 3, 16, 16)
    lengths = seen["attention_mask"].sum(dim=1)
    long_row, short_row = (0, 1) if lengths[0] > lengths[1] else (1, 0)
    assert pixels[long_row, 2].mean() > pixels[long_row, 0].mean()  # blue
    assert pixels[short_row, 0].mean() > pixels[short_row, 2].mean()  # red


def test_medforget_evaluation_with_the_tiny_vlm(tmp_path):
    data = write_medforget_dir(tmp_path / "data")
    vlm = build_tiny_vlm_dir(tmp_path / "vlm")
    task = _task(tmp_path, {})
    config = _config(
        task, data, tmp_path, model=str(vlm), backend="hf", eval={"max_new_tokens": 4, "limit": 1}
    )
    _, [record], _ = run_protocol(config, echo=lambda _: None)
    results = record.results()["medforget_test"]
    assert results["patient_retain_generation/gen_score"]["n"] == 1
    assert results["judge_failures"]["value"] == 8.0  # the fake judge knows no answer
    assert record.header["backend"]["backend"] == "hf"
