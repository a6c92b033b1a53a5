"""Writing finished models: LoRA adapter + merged weights, model mixing, atomic publication."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from unlearn_bench.config import ControlConfig
from unlearn_bench.methods.base import TokenBatch
from unlearn_bench.paths import atomic_write_json
from unlearn_bench.train.controls import mix_state, probe, search_mix
from unlearn_bench.train.lora import is_lora_model, save_adapter_and_merge


def merge_for_saving(model: Any, out_dir: Path) -> Any:
    """A plain transformers model to save; a LoRA model first writes ``out_dir/adapter``."""
    if is_lora_model(model):
        return save_adapter_and_merge(model, out_dir)
    return model


def export_model(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Write a complete, loadable model directory (adapter too, for LoRA)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    merge_for_saving(model, out_dir).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def publish(tmp: Path, final: Path, recipe: dict[str, Any]) -> None:
    """Mark ``tmp`` complete (RECIPE.json) and rename it to ``final``: never half-visible."""
    atomic_write_json(tmp / "RECIPE.json", recipe)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def mix_toward_start(
    model: Any, theta0_model: Any, parts: dict[str, list[TokenBatch]], control: ControlConfig
) -> dict[str, Any]:
    """Model mixing (see controls.py): set ``model`` to theta_r for the chosen r.

    r is the smallest grid value that keeps retain_prob >= utility_floor x retain_prob(theta_0);
    returns what was tried and chosen.
    """
    assert control.utility_floor is not None  # ControlConfig checks mix => utility_floor
    theta = {k: v.detach().clone() for k, v in model.state_dict().items()}
    theta0 = theta0_model.state_dict()

    def utility_at(r: float) -> float:
        model.load_state_dict(mix_state(theta0, theta, r))
        return probe(model, {"retain": parts["retain"]})["retain_prob"]

    start_utility = utility_at(1.0)  # theta_1 = theta_0 exactly, the same number the search sees
    floor_value = control.utility_floor * start_utility
    r, tried = search_mix(utility_at, floor_value, control.mix_grid)
    model.load_state_dict(mix_state(theta0, theta, r))
    return {
        "r": r,
        "rule": "smallest r on the grid with retain_prob(theta_r) >= utility_floor x "
        "retain_prob(theta_0)",
        "utility_floor": control.utility_floor,
        "start_retain_prob": start_utility,
        "floor_value": floor_value,
        "tried": tried,
    }
