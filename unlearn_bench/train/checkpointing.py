"""Writing finished models: LoRA adapter + merged weights, model mixing, atomic publication.

A stage's checkpoint ``<name>`` is written in ``<name>.partial`` while one process holds
``<name>.lock`` (:func:`claim`). A second process asking for the same stage waits, then finds it
finished and reuses it. A ``.partial`` folder is never reused: it holds no optimiser state or
data position, so training on from it would give other weights than one uninterrupted run, and
the checkpoint's content address would lie. It is removed when its stage fails, and one left by
a killed process is removed as soon as a later stage finds its lock free. The last good
checkpoint of a diverged run lives beside it, in ``<name>.last_good``, and is kept.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from unlearn_bench.config import ControlConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import TokenBatch
from unlearn_bench.paths import atomic_write_json, exclusive
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


def lock_file(final: Path) -> Path:
    """The lock file of the stage whose checkpoint folder is ``final``."""
    return final.with_name(final.name + ".lock")


def sweep_abandoned(checkpoints: Path) -> list[Path]:
    """Remove ``*.partial`` folders whose stage lock is free (their writer died); return them."""
    removed = []
    for partial in sorted(checkpoints.glob("*.partial")):
        final = partial.with_name(partial.name.removesuffix(".partial"))
        try:
            with exclusive(lock_file(final), f"checkpoint {final.name}", wait=False):
                shutil.rmtree(partial, ignore_errors=True)
                removed.append(partial)
        except UnlearnBenchError:
            continue  # another process is writing it right now
    return removed


@contextmanager
def claim(final: Path) -> Iterator[None]:
    """Hold the stage's lock for the block: a second process for the same stage waits here.

    The main process takes the lock (and sweeps abandoned ``.partial`` folders); the others
    wait at a barrier, so every process checks for a finished checkpoint under the lock. If the
    block fails, the stage's ``.partial`` folder is removed: it can never be resumed.
    """
    from unlearn_bench.train.distributed import barrier, is_main_process

    main = is_main_process()
    lock = exclusive(lock_file(final), f"checkpoint {final.name}", wait=True)
    with lock if main else nullcontext():
        if main:
            sweep_abandoned(final.parent)
        barrier()
        try:
            yield
        except BaseException:
            if main:
                shutil.rmtree(final.with_name(final.name + ".partial"), ignore_errors=True)
            raise


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
