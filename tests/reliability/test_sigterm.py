"""SIGTERM (a scheduler's, ``timeout``'s or ``docker stop``'s stop) mid-stage, then a resume.

Before: the process died on the signal with no message, its group said "running" forever and
its stage's work folder was left for the next run to find. Now SIGTERM unwinds like Ctrl-C:
exit status 143 (128 + 15, the shell convention), one line saying how to resume, the group and
the open record say "interrupted", no ``.partial`` folder is left, and the same command resumes
to a finished group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from unlearn_bench.cli import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_sigterm_mid_stage_is_interrupted_and_resumes(
    tmp_path: Path, tiny_model_dir: Path, isolated_cache: Path
) -> None:
    config, runs = tmp_path / "config.yaml", tmp_path / "runs"
    config.write_text(
        f"task: synthetic_people\nbackend: fake\nmodel: {tiny_model_dir}\ndevice: cpu\n"
        f"runs_dir: {runs}\nleaderboards_dir: {tmp_path / 'lb'}\nrun_id: g\n"
        "finetune: null\nretain_model: false\neval: {limit: 2}\n"
        "unlearn: [{method: grad_ascent, lr: 0.001, batch_size: 2, max_steps: 2}]\n"
    )
    ready, go = tmp_path / "ready", tmp_path / "never"
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(isolated_cache), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    # paused_cli holds the unlearning stage just before it publishes its work folder.
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "paused_cli.py"), str(ready), str(go),
         "run", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    partials = list((isolated_cache / "checkpoints").glob("*.partial"))
    assert partials  # the stage's work folder exists while it trains
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("unlearn-bench: terminated (SIGTERM); rerun the same command"), last
    group = json.loads((runs / "g" / "GROUP.json").read_text())
    assert group["status"] == "interrupted"
    assert not any(p.exists() for p in partials)
    # The same command resumes and finishes.
    assert main(["run", "--config", str(config)]) == 0
    assert json.loads((runs / "g" / "GROUP.json").read_text())["status"] == "finished"
    header = json.loads((runs / "g" / "grad_ascent" / "header.json").read_text())
    assert header["status"] == "finished"
