"""LoRA through peft: config, a LoRA unlearning stage, the saved adapter and the merged model.

The merged weights are checked against LoRA's definition, W' = W + (alpha / r) B A (Hu et al.
2021), computed here from the saved adapter tensors, not by peft's merge.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from unlearn_bench.config import LoraSettings, RunConfig, UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data
from unlearn_bench.train.lora import ADAPTER_DIR, load_merged
from unlearn_bench.train.stages import StageInputs, unlearn

pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    spec = parse_task(find_task("synthetic_people"))
    return spec, load_task_data(spec, None)


def test_lora_settings_parse_and_validate() -> None:
    config = RunConfig.from_dict(
        {"task": "t", "unlearn": [{"method": "npo", "lora": {"r": 4, "alpha": 8,
                                                             "target_modules": ["q_proj"]}}]}
    )  # fmt: skip
    assert config.unlearn[0].lora == LoraSettings(r=4, alpha=8.0, target_modules=["q_proj"])
    assert RunConfig.from_dict({"task": "t"}).unlearn[0].lora is None  # full FT by default
    with pytest.raises(UnlearnBenchError, match="lora r must be >= 1"):
        LoraSettings(r=0)
    with pytest.raises(UnlearnBenchError, match="unknown key 'rank'"):
        RunConfig.from_dict({"task": "t", "unlearn": [{"lora": {"rank": 4}}]})


def test_unknown_target_module_is_a_clear_error(tiny_model_dir, task) -> None:
    spec, splits = task
    ucfg = UnlearnConfig(
        lr=1e-2, batch_size=2, max_steps=1, lora=LoraSettings(target_modules=["nope"])
    )
    with pytest.raises(UnlearnBenchError, match="lora:"):
        unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg)


def test_lora_stage_saves_adapter_and_merged_model(tiny_model_dir, task) -> None:
    spec, splits = task
    lora = LoraSettings(r=4, alpha=8.0)
    ucfg = UnlearnConfig(method="grad_diff", lr=1e-2, batch_size=2, max_steps=3, lora=lora)
    path = unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg).path
    adapter_dir = path / ADAPTER_DIR
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8.0)
    adapter = load_file(str(adapter_dir / "adapter_model.safetensors"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    merged = load_file(str(path / "model.safetensors"))
    adapted = 0
    for name, weight in base.items():
        stem = "base_model.model." + name.removesuffix(".weight")
        if f"{stem}.lora_A.weight" not in adapter:
            # Not adapted (embeddings, norms): bit-for-bit the starting weights.
            assert torch.equal(merged[name], weight), name
            continue
        a, b = adapter[f"{stem}.lora_A.weight"], adapter[f"{stem}.lora_B.weight"]
        assert a.shape[0] == 4 and b.shape[1] == 4
        assert b.abs().max() > 0  # B starts at 0: it moved, so the adapter was trained
        expected = weight + (8.0 / 4) * (b @ a)
        assert torch.allclose(merged[name], expected, atol=1e-6), name
        adapted += 1
    assert adapted == 2 * 7  # every linear layer of both blocks (q k v o gate up down)
    # The adapter alone reproduces the merged model from the starting weights.
    again = load_merged(tiny_model_dir, adapter_dir).state_dict()
    for name, weight in merged.items():
        assert torch.allclose(again[name], weight, atol=1e-6), name


def test_full_finetuning_is_the_default(tiny_model_dir, task) -> None:
    spec, splits = task
    ucfg = UnlearnConfig(method="grad_ascent", lr=1e-3, batch_size=2, max_steps=1)
    path = unlearn(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), ucfg).path
    assert not (path / ADAPTER_DIR).exists()
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    merged = load_file(str(path / "model.safetensors"))
    assert not torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])


def test_lora_finetune_stage_writes_adapter_too(tiny_model_dir, task) -> None:
    from unlearn_bench.config import FinetuneConfig
    from unlearn_bench.train.stages import finetune

    spec, splits = task
    cfg = FinetuneConfig(lr=1e-2, batch_size=4, max_steps=2, lora=LoraSettings(r=2, alpha=4))
    path = finetune(StageInputs(str(tiny_model_dir), "tiny", spec, splits, 0), "full", cfg).path
    assert json.loads((path / ADAPTER_DIR / "adapter_config.json").read_text())["r"] == 2
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    merged = load_file(str(path / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[name], base[name])
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
