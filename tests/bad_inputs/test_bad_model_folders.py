"""Broken model folders through the real ``eval`` command: one-line errors, no finished record."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from unlearn_bench.cli import main


def _renamed_tensor(folder: Path) -> None:
    """Rename one tensor inside the safetensors header (same length, so offsets still hold)."""
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    size = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + size].decode()
    assert "model.norm.weight" in header
    data[8 : 8 + size] = header.replace("model.norm.weight", "model.norx.weight").encode()
    weights.write_bytes(bytes(data))


def _pickle_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _config_wrong_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = "two"
    (folder / "config.json").write_text(json.dumps(config))


def _unknown_architecture(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "no_such_arch"
    config["architectures"] = ["NoSuchArchForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))


def _truncated_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _broken_chat_template(folder: Path) -> None:
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] ")


def _directory_instead_of(name: str) -> Callable[[Path], None]:
    """Replace the folder's file ``name`` by a directory of that name."""

    def damage(folder: Path) -> None:
        (folder / name).unlink(missing_ok=True)
        (folder / name).mkdir()

    return damage


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("renamed tensor", _renamed_tensor, "does not match its weights"),
    ("pickle only", _pickle_only, "pickle"),
    ("config wrong type", _config_wrong_type, "cannot load model"),
    ("unknown architecture", _unknown_architecture, "cannot load model"),
    ("truncated weights", _truncated_weights, "cannot load model"),
    ("chat template cut short", _broken_chat_template, "chat template is broken"),
    # A traceback, a dropped pad token (TypeError) and a silently ignored file before.
    ("weights a directory", _directory_instead_of("model.safetensors"), "model.safetensors is a"),
    ("tokenizer config a directory", _directory_instead_of("tokenizer_config.json"), "is a dir"),
    ("generation config a directory", _directory_instead_of("generation_config.json"), "is a dir"),
    ("config a directory", _directory_instead_of("config.json"), "config.json is a directory"),
]


@pytest.mark.parametrize("name,damage,words", CASES, ids=[c[0] for c in CASES])
def test_broken_model_folder(
    name: str,
    damage: Callable[[Path], None],
    words: str,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    damage(folder)
    runs = tmp_path / "runs"
    argv = ["eval", "--task", "synthetic_people", "--model", str(folder), "--device", "cpu",
            "--runs-dir", str(runs), "--run-id", "g", "--limit", "2"]  # fmt: skip
    code = main(argv)
    out = capsys.readouterr()
    err = out.err.strip().splitlines()[-1] if out.err.strip() else ""
    assert code == 2, name
    assert "Traceback" not in out.err + out.out
    assert err.startswith("unlearn-bench: error:") and words in err, err
    finished = [p for p in runs.rglob("header.json") if '"finished"' in p.read_text()]
    assert finished == []
