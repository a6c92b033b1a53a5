"""The collapse check reads the method's own forward pass: same signals, same training.

Three runs of the same unlearning on the tiny model, each with its own cache: (a) as shipped,
with the extra forward pass made to fail so any use of it shows; (b) with the check switched
off entirely; (c) with the hook disabled, so every signal comes from the old extra no-grad pass.
(a) and (b) must end with bit-identical parameters (the check changes nothing in training);
(a) and (c) must log the same signals (the method's forward gives what the extra pass gave).
Gradient ascent, RMU (hidden states with output_hidden_states) and IdkDPO (the forget part is
the rejected side of a pair) cover the three ways methods call the model on the forget part.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from unlearn_bench.config import RunConfig
from unlearn_bench.runner import run_protocol
from unlearn_bench.train import collapse_watch

UNLEARN = [
    {"method": "grad_ascent", "max_steps": 3, "lr": 1e-3, "batch_size": 2},
    {"method": "rmu", "max_steps": 2, "lr": 1e-3, "batch_size": 2, "args": {"layer": 0}},
    {"method": "idk_dpo", "max_steps": 2, "lr": 1e-3, "batch_size": 2},
]
KEYS = ("collapse/forget_nll", "collapse/forget_kl_uniform", "collapse/ln_vocab")
UNLEARN_STEPS = {u["method"]: u["max_steps"] for u in UNLEARN}


def _run(tmp: Path, name: str, tiny_model_dir: Path, mp: pytest.MonkeyPatch) -> dict:
    mp.setenv("UNLEARN_BENCH_CACHE", str(tmp / f"cache-{name}"))
    config = RunConfig.from_dict(
        {
            "task": "synthetic_people", "backend": "fake", "model": str(tiny_model_dir),
            "device": "cpu", "runs_dir": str(tmp / "runs"), "leaderboards_dir": str(tmp / "lb"),
            "run_id": name, "finetune": None, "retain_model": False, "eval": {"limit": 1},
            "unlearn": UNLEARN,
        }
    )  # fmt: skip
    _, records, _ = run_protocol(config, echo=lambda _: None)
    return {r.header["label"]: r for r in records if r.header.get("label") != "target"}


def _weights(record) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(record.header["model_path"]) / "model.safetensors")


def _log(record) -> list[dict]:
    return [json.loads(x) for x in (record.root / "train_log.jsonl").read_text().splitlines()]


def test_collapse_signals_reuse_the_methods_forward(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch

    def no_extra_pass(model, part):
        raise AssertionError("the collapse check ran its own forward pass")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collapse_watch, "watch_forget", no_extra_pass)
        shipped = _run(tmp_path, "shipped", tiny_model_dir, mp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collapse_watch.ForgetWatch, "capture", lambda *a: contextlib.nullcontext())
        mp.setattr(collapse_watch.ForgetWatch, "stats", lambda *a: {})
        unchecked = _run(tmp_path, "unchecked", tiny_model_dir, mp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collapse_watch.ForgetWatch, "capture", lambda *a: contextlib.nullcontext())
        extra_pass = _run(tmp_path, "extra", tiny_model_dir, mp)
    from safetensors.torch import load_file

    start = load_file(tiny_model_dir / "model.safetensors")
    assert sorted(shipped) == ["grad_ascent", "idk_dpo", "rmu"]
    for label, record in shipped.items():
        ours, theirs = _weights(record), _weights(unchecked[label])
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), (label, name)
        # Training really moved the weights (else bit-identity would prove nothing).
        assert any(not torch.equal(ours[n], start[n]) for n in ours if n in start), label
        assert [r["loss"] for r in _log(record)] == [r["loss"] for r in _log(unchecked[label])]
        assert not any(k in row for row in _log(unchecked[label]) for k in KEYS)
        rows, old_rows = _log(record), _log(extra_pass[label])
        assert len(rows) == len(old_rows) == UNLEARN_STEPS[label]
        for row, old in zip(rows, old_rows, strict=True):
            for key in KEYS:
                assert row[key] == pytest.approx(old[key], rel=1e-5, abs=1e-6), (label, key)
