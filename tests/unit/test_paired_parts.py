"""Batch parts that must line up with the forget rows, and which parameters a method trains.

The stage tests run the real ``unlearn`` stage (real BatchSource, real loop) on the tiny model
and record the batches the method receives; the frozen-parameter tests compare the saved
checkpoint with the starting weights tensor by tensor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unlearn_bench.config import UnlearnConfig
from unlearn_bench.data.refusals import load_refusals
from unlearn_bench.evaluate import parse_task
from unlearn_bench.methods import METHODS, TokenBatch, UnlearnBatch
from unlearn_bench.tasks import find_task, load_task_data
from unlearn_bench.train.parts import batch_source
from unlearn_bench.train.stages import StageInputs, unlearn


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin on a busy 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    spec = parse_task(find_task("synthetic_people"))
    return spec, load_task_data(spec, None)


def prompt_ids(part: TokenBatch, row: int) -> list[int]:
    """The row's prompt tokens: attended positions that carry no label."""
    keep = (part.attention_mask[row] == 1) & (part.labels[row] == -100)
    return part.input_ids[row][keep].tolist()


def answer_text(tokenizer, part: TokenBatch, row: int) -> str:
    return tokenizer.decode(part.input_ids[row][part.labels[row] != -100]).strip()


def record_batches(monkeypatch, method: str) -> list[UnlearnBatch]:
    """Patch ``method``'s loss to record every batch it receives, then compute the real loss."""
    cls = METHODS.get(method)
    seen: list[UnlearnBatch] = []
    real = cls.loss

    def recording(self, model, batch):
        seen.append(batch)
        return real(self, model, batch)

    monkeypatch.setattr(cls, "loss", recording)
    return seen


def test_idk_rows_share_the_forget_question_in_the_stage(
    tiny_model_dir, tiny_model_and_tokenizer, task, monkeypatch
) -> None:
    spec, splits = task
    tokenizer = tiny_model_and_tokenizer[1]
    seen = record_batches(monkeypatch, "idk_dpo")
    ucfg = UnlearnConfig(method="idk_dpo", lr=1e-3, batch_size=4, max_steps=3)
    unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg)
    assert len(seen) == 3
    prompts = set()
    refusals = {r.strip() for r in load_refusals(None)}
    for batch in seen:
        forget, idk = batch["forget"], batch["idk"]
        assert idk.input_ids.shape[0] == forget.input_ids.shape[0] == 4
        for row in range(4):
            assert prompt_ids(idk, row) == prompt_ids(forget, row), f"row {row} pairs questions"
            assert answer_text(tokenizer, idk, row).removesuffix("<|im_end|>") in refusals
            prompts.add(tuple(prompt_ids(forget, row)))
    assert len(prompts) > 1  # the rows really are different questions


def test_mismatch_rows_carry_their_forget_prompt_k_times_in_the_stage(
    tiny_model_dir, tiny_model_and_tokenizer, task, monkeypatch
) -> None:
    spec, splits = task
    tokenizer = tiny_model_and_tokenizer[1]
    seen = record_batches(monkeypatch, "ga_mismatch")
    ucfg = UnlearnConfig(method="ga_mismatch", args={"k": 3}, lr=1e-3, batch_size=2, max_steps=2)
    unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg)
    normal = {r["answer"].strip() for r in splits["retain"]}
    for batch in seen:
        forget, mismatch = batch["forget"], batch["mismatch"]
        assert mismatch.input_ids.shape[0] == 2 * 3
        for row in range(2):
            group = range(row * 3, row * 3 + 3)
            answers = [
                answer_text(tokenizer, mismatch, i).removesuffix("<|im_end|>") for i in group
            ]
            assert all(prompt_ids(mismatch, i) == prompt_ids(forget, row) for i in group)
            assert len(set(answers)) == 3 and set(answers) <= normal


def mismatch_draws(task, tokenizer, seed: int, steps: int) -> list[list[tuple[str, tuple]]]:
    """Per step: (forget prompt, its K mismatch answers) for each forget row, via the source."""
    spec, splits = task
    config = METHODS.get("ga_mismatch").config_cls()  # k = 5
    needs = frozenset({"forget", "mismatch", "retain"})
    source = batch_source(spec, tokenizer, splits, needs, config, 4, 256, seed)
    out = []
    for _ in range(steps):
        rows = source.draw(1)[0]
        k = len(rows["mismatch"]) // len(rows["forget"])
        assert k == 5
        out.append(
            [
                (e.prompt.context, tuple(m.answer for m in rows["mismatch"][j * k : j * k + k]))
                for j, e in enumerate(rows["forget"])
            ]
        )
    return out


def test_mismatch_answers_are_redrawn_every_step_and_reproducible(
    tiny_model_and_tokenizer, task
) -> None:
    tokenizer = tiny_model_and_tokenizer[1]
    # 8 forget questions, 4 per step: steps 1-2 are one epoch, steps 3-4 the next.
    first = mismatch_draws(task, tokenizer, seed=0, steps=4)
    assert first == mismatch_draws(task, tokenizer, seed=0, steps=4)
    assert first != mismatch_draws(task, tokenizer, seed=1, steps=4)
    by_prompt: dict[str, list[tuple]] = {}
    for step in first:
        for prompt, answers in step:
            by_prompt.setdefault(prompt, []).append(answers)
    assert len(by_prompt) == 8 and all(len(v) == 2 for v in by_prompt.values())
    # The same question is paired with a fresh draw in each epoch, never one fixed answer.
    assert all(draws[0] != draws[1] for draws in by_prompt.values())


# --- which parameters train -----------------------------------------------------------------


def changed_params(start: Path, trained: Path) -> set[str]:
    from safetensors.torch import load_file

    before = load_file(str(start / "model.safetensors"))
    after = load_file(str(trained / "model.safetensors"))
    assert before.keys() == after.keys()
    return {name for name in before if not torch.equal(before[name], after[name])}


def rmu_changes(tiny_model_dir, task, **extra) -> set[str]:
    spec, splits = task
    args = {"layer": 1, "alpha": 1.0, **extra.pop("args", {})}
    ucfg = UnlearnConfig(method="rmu", args=args, lr=1e-2, batch_size=2, max_steps=2, **extra)
    path = unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg).path
    return changed_params(tiny_model_dir, path)


DOWN_PROJ = {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}


def test_rmu_default_trains_only_wmdp_down_projections(tiny_model_dir, task) -> None:
    # WMDP's rmu/unlearn.py: layer_ids (5, 6, 7) for layer 7, i.e. blocks layer-2..layer; with
    # layer 1 on the 2-block tiny model that is blocks 0 and 1. All else is bit-identical.
    assert rmu_changes(tiny_model_dir, task) == DOWN_PROJ


def test_rmu_open_unlearning_variant_trains_more(tiny_model_dir, task) -> None:
    changed = rmu_changes(tiny_model_dir, task, args={"param_set": "open_unlearning"})
    assert DOWN_PROJ < changed
    assert "model.embed_tokens.weight" in changed


def test_trainable_pattern_in_the_training_config(tiny_model_dir, task) -> None:
    changed = rmu_changes(tiny_model_dir, task, trainable=r"layers\.0\.mlp\.up_proj")
    assert changed == {"model.layers.0.mlp.up_proj.weight"}


def test_the_part_builder_is_in_the_unlearning_checkpoint_key() -> None:
    # Changing how paired rows are built changes the weights, so it must change the cache key.
    from unlearn_bench.train.stages import UNLEARNING_CODE, code_fingerprint

    assert "unlearn_bench.train.parts" in UNLEARNING_CODE
    assert code_fingerprint(*UNLEARNING_CODE) != code_fingerprint(
        *(m for m in UNLEARNING_CODE if m != "unlearn_bench.train.parts")
    )
