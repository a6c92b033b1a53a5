"""Two processes on one run group or one cache stage (issue 14, "nobody in").

A second copy of a run on the same group is refused with one line naming the holder's pid; a
run that needs a checkpoint another process is writing waits for it and reuses it; a lock held
by a process killed with SIGKILL blocks nobody, and its abandoned work folder is removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.paths import exclusive

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _config(tmp: Path, model: Path, steps: int = 3) -> Path:
    """A run config: unlearn the tiny model for a few steps, evaluate with the fake backend."""
    path = tmp / "config.yaml"
    path.write_text(
        f"task: synthetic_people\nbackend: fake\nmodel: {model}\ndevice: cpu\n"
        f"runs_dir: {tmp / 'runs'}\nleaderboards_dir: {tmp / 'lb'}\n"
        "finetune: null\nretain_model: false\neval: {limit: 2}\n"
        f"unlearn: [{{method: grad_ascent, lr: 0.001, batch_size: 2, max_steps: {steps}}}]\n"
    )
    return path


def _wait_for(check, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _header(runs: Path, group: str) -> dict:
    return json.loads((runs / group / "grad_ascent" / "header.json").read_text())


def test_second_run_refused_on_group_and_waits_for_stage(
    tmp_path: Path, tiny_model_dir: Path, isolated_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, runs = _config(tmp_path, tiny_model_dir), tmp_path / "runs"
    ready, go = tmp_path / "ready", tmp_path / "go"
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(isolated_cache), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, str(HERE / "paused_cli.py"), str(ready), str(go),
         "run", "--config", str(config), "--run-id", "a"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: ready.exists() or first.poll() is not None, "the first run to train")
        assert first.poll() is None, first.communicate()[0]
        # Group "a" is being written by the first process: a second copy is refused at once.
        group_before = (runs / "a" / "GROUP.json").read_bytes()
        assert main(["run", "--config", str(config), "--run-id", "a"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"unlearn-bench: error: run group a is in use by pid {first.pid}"
        assert (runs / "a" / "GROUP.json").read_bytes() == group_before
        assert sorted(p.name for p in (runs / "a").iterdir()) == [".lock", "GROUP.json"]
        # Another group needing the same checkpoint waits for the first process, then reuses it.
        result: dict[str, int] = {}
        second = threading.Thread(
            target=lambda: result.update(rc=main(["run", "--config", str(config), "--run-id", "b"]))
        )
        second.start()
        said: list[str] = []

        def waiting() -> bool:
            said.append(capsys.readouterr().err)
            return "waiting for pid" in "".join(said) or not second.is_alive()

        _wait_for(waiting, "the second run to wait")
        message = f"waiting for pid {first.pid}, which is writing checkpoint unlearn-"
        assert message in "".join(said)
        go.touch()
        second.join(timeout=180)
        out = first.communicate(timeout=180)[0]
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out
    assert result == {"rc": 0}
    a, b = _header(runs, "a"), _header(runs, "b")
    assert a["status"] == b["status"] == "finished"
    assert a["stage_info"]["cached"] is False and b["stage_info"]["cached"] is True
    assert a["model_path"] == b["model_path"]
    checkpoints = isolated_cache / "checkpoints"
    assert [p.parent.name for p in checkpoints.glob("*/RECIPE.json")] == [
        Path(a["model_path"]).name
    ]
    assert not list(checkpoints.glob("*.partial"))
    log = (Path(a["model_path"]) / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in log] == [1, 2, 3]  # trained once, not twice


HOLD = """
import sys, time
from pathlib import Path
from unlearn_bench.paths import exclusive
with exclusive(Path(sys.argv[1]), "group", wait=False), \\
        exclusive(Path(sys.argv[2]), "stage", wait=False):
    Path(sys.argv[3]).touch()
    time.sleep(600)
"""


def test_lock_of_a_killed_process_blocks_nobody(
    tmp_path: Path, tiny_model_dir: Path, isolated_cache: Path
) -> None:
    config, runs = _config(tmp_path, tiny_model_dir, steps=2), tmp_path / "runs"
    checkpoints = isolated_cache / "checkpoints"
    abandoned = checkpoints / "unlearn-0123456789abcdef0123.partial"
    abandoned.mkdir(parents=True)
    (abandoned / "model.safetensors").write_bytes(b"half written")
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(runs / "g" / ".lock"),
         str(checkpoints / "unlearn-0123456789abcdef0123.lock"), str(ready)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        _wait_for(lambda: ready.exists() or holder.poll() is not None, "the holder")
        with pytest.raises(Exception, match="run group g is in use by pid"):
            with exclusive(runs / "g" / ".lock", "run group g", wait=False):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup can run: the kernel drops its locks
        holder.wait()
    assert main(["run", "--config", str(config), "--run-id", "g"]) == 0
    assert _header(runs, "g")["status"] == "finished"
    assert not abandoned.exists()  # its writer is dead: the next stage removed it
