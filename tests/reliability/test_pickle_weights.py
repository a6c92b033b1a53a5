"""Pickle-only model folders: refused by default, loaded with ``--allow-pickle`` (weights_only).

A planted object in the pickle is refused even with the flag, and never runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError


class Planted:
    """Unpickling this runs a shell command: what a malicious weights file would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _pickle_folder(tiny: Path, folder: Path, extra: dict | None = None) -> Path:
    """The tiny model with its weights as pytorch_model.bin (plus ``extra`` entries) only."""
    shutil.copytree(tiny, folder)
    state = {**load_file(folder / "model.safetensors"), **(extra or {})}
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def _eval(model: Path, runs: Path, run_id: str, *flags: str) -> int:
    return main(["eval", "--task", "synthetic_people", "--model", str(model), "--device", "cpu",
                 "--runs-dir", str(runs), "--run-id", run_id, "--limit", "2", *flags])  # fmt: skip


def _samples(runs: Path, run_id: str) -> list[dict]:
    lines = (runs / run_id / "target" / "samples" / "synthetic_people.jsonl").read_text()
    return [json.loads(line) for line in lines.splitlines()]


def test_pickle_refused_without_flag_and_loaded_with_it(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, runs = _pickle_folder(tiny_model_dir, tmp_path / "pickled"), tmp_path / "runs"
    assert _eval(folder, runs, "refused") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "only pickle weights" in err and "--allow-pickle" in err
    assert not (runs / "refused").exists()  # refused in planning, before any work
    assert _eval(folder, runs, "pickled", "--allow-pickle") == 0
    header = json.loads((runs / "pickled" / "target" / "header.json").read_text())
    assert header["config"]["allow_pickle"] is True
    assert header["backend"]["weights_format"] == "pickle via torch.load(weights_only=True)"
    # The same weights as safetensors give the same observations: the pickle really loaded.
    assert _eval(tiny_model_dir, runs, "safetensors") == 0
    pickled, plain = _samples(runs, "pickled"), _samples(runs, "safetensors")
    assert len(pickled) == len(plain) > 0
    for a, b in zip(pickled, plain, strict=True):
        assert a["obs"] == b["obs"]


@pytest.mark.parametrize("kind", ["planted object", "non-tensor value"])
def test_pickle_with_more_than_tensors_refused_even_with_flag(
    kind: str, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    extra = {"hook": Planted(marker)} if kind == "planted object" else {"note": "hello"}
    folder, runs = _pickle_folder(tiny_model_dir, tmp_path / "pickled", extra), tmp_path / "runs"
    assert _eval(folder, runs, "g", "--allow-pickle") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "refused even with --allow-pickle" in err and "pytorch_model.bin" in err
    assert not marker.exists()  # the planted command never ran
    assert not (runs / "g").exists()


def test_training_loader_takes_the_same_opt_in(tmp_path: Path, tiny_model_dir: Path) -> None:
    from unlearn_bench.train.stages import _load_for_training

    folder = _pickle_folder(tiny_model_dir, tmp_path / "pickled")
    with pytest.raises(UnlearnBenchError, match="only pickle weights"):
        _load_for_training(str(folder), False)
    model, _ = _load_for_training(str(folder), False, allow_pickle=True)
    expected = load_file(tiny_model_dir / "model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
