"""The sharded-parameter branch of the snapshots (FSDP / ZeRO-3), exercised on CPU.

No CUDA here, so FSDP itself cannot run. What can be checked is the harness's own logic for that
branch: weights come from ``accelerator.get_state_dict`` (a gather), the main process rebuilds a
fresh model, loads the gathered state, overlays the selected snapshot, and exports it. A stand-in
accelerator plays the part of the gather.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.train.snapshots import Snapshots, params_sharded


class GatheringAccelerator:
    """Stands in for an FSDP accelerator: ``get_state_dict`` returns a settable full state."""

    distributed_type = DistributedType.FSDP
    state = SimpleNamespace(deepspeed_plugin=None)
    is_main_process = True

    def __init__(self, full_state: dict[str, torch.Tensor]) -> None:
        self.full_state = full_state
        self.gathers = 0

    def get_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        self.gathers += 1
        return self.full_state

    def unwrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model


def shifted(state: dict[str, torch.Tensor], by: float) -> dict[str, torch.Tensor]:
    return {k: v + by for k, v in state.items()}


def test_sharded_final_model_is_rebuilt_from_gathered_state(tiny_model_dir: Path, tmp_path) -> None:
    def rebuild() -> torch.nn.Module:
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    start = rebuild().state_dict()
    acc = GatheringAccelerator(shifted(start, 1.0))
    assert params_sharded(acc)
    snaps = Snapshots(acc, torch.nn.Linear(1, 1), ["model.norm.weight"], tmp_path / "s", rebuild)
    snaps.save("best", 4)  # the best step: every weight start + 1
    acc.full_state = shifted(start, 2.0)  # training went on: every weight start + 2
    final = snaps.final_model(best_step=4).state_dict()
    assert acc.gathers == 2  # every process joins both gathers
    # Gathered weights everywhere, except the snapshotted tensor, which the best step restores.
    assert torch.equal(final["model.norm.weight"], start["model.norm.weight"] + 1.0)
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"):
        assert torch.equal(final[name], start[name] + 2.0)
    assert not (tmp_path / "s").exists()


def test_sharded_nan_exports_last_good_from_rebuilt_model(tiny_model_dir: Path, tmp_path) -> None:
    def rebuild() -> torch.nn.Module:
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    start = rebuild().state_dict()
    acc = GatheringAccelerator(shifted(start, 1.0))
    names = ["model.layers.1.self_attn.q_proj.weight"]
    snaps = Snapshots(acc, torch.nn.Linear(1, 1), names, tmp_path / "s", rebuild)
    snaps.save("last", 2)
    exported = {}

    def export(model: torch.nn.Module, out: Path) -> None:
        exported["state"], exported["out"] = model.state_dict(), out

    with pytest.raises(UnlearnBenchError, match=r"Last good checkpoint \(step 2\)"):
        snaps.fail(5, float("nan"), "unlearn[x]", export)
    assert exported["out"] == tmp_path / "last_good"
    assert torch.equal(exported["state"][names[0]], start[names[0]] + 1.0)
