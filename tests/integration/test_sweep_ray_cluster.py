"""``sweep --executor ray`` against a real local Ray cluster (``ray start --head``, 2 CPUs).

A 2x2 sweep of the tiny model runs through the cluster; once the cells fan out, one Ray
worker running a cell is killed (SIGKILL). That cell must be reported failed with Ray's
reason, the other three must finish as ordinary run records, and a rerun must resume the
failed cell and skip the finished ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray
pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cluster(tmp_path):
    """A head node with 2 CPUs in its own process group; torn down by that group's id."""
    port = _free_port()
    # Ray's unix sockets live under --temp-dir; pytest's tmp_path is too long for a socket path.
    temp = tempfile.mkdtemp(prefix="ubray-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "UB_TEST_RAY_CLUSTER": temp}  # fmt: skip
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline and head.poll() is None, "the Ray head did not start"
            time.sleep(0.5)
    yield address, temp, env
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # whatever of our cluster is left
    except ProcessLookupError:
        pass
    shutil.rmtree(temp, ignore_errors=True)


def _cell_workers(marker: str) -> list[int]:
    """Ray workers of our cluster (they carry its marker variable) running a sweep cell."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ours = f"UB_TEST_RAY_CLUSTER={marker}".encode() in (entry / "environ").read_bytes()
        except OSError:
            continue
        if ours and cmdline.startswith(b"ray::run_cell"):
            found.append(int(entry.name))
    return found


def _sweep(tmp_path: Path, model: Path, address: str, env: dict) -> subprocess.Popen:
    grid = {
        "sweep": "s",
        "base": {
            "task": "synthetic_people", "model": str(model), "runs_dir": str(tmp_path / "runs"),
            "leaderboards_dir": str(tmp_path / "lb"), "eval": {"limit": 4},
            "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
        },
        "grid": [
            {"method": "grad_ascent", "lr": [1e-2, 2e-2], "epochs": 1, "batch_size": 4},
            {"method": "npo", "lr": [1e-2, 2e-2], "epochs": 1, "batch_size": 4},
        ],
    }  # fmt: skip
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    cmd = [sys.executable, "-m", "unlearn_bench.cli", "sweep", str(tmp_path / "grid.yaml"),
           "--executor", "ray", "--ray-address", address]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_sweep_on_a_real_cluster_survives_a_killed_worker(cluster, tiny_model_dir, tmp_path):
    address, marker, env = cluster
    env = {**env, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache")}
    sweep = _sweep(tmp_path, tiny_model_dir, address, env)
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and sweep.poll() is None:
        workers = _cell_workers(marker)
        if workers:  # a worker is inside a cell now
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    out, _ = sweep.communicate(timeout=300)
    assert killed is not None, out
    assert sweep.returncode == 1, out  # a failed cell: exit 1 after the others finished
    cells = json.loads((tmp_path / "runs" / "s" / "SWEEP.json").read_text())["cells"]
    failed = [name for name, c in cells.items() if c["status"] == "failed"]
    assert len(failed) == 1 and "Ray task failed" in cells[failed[0]]["error"], out
    assert "3 of 4 cells done, 1 failed" in out
    for name, c in cells.items():
        if name in failed:
            continue
        assert c["status"] == "finished"
        for run_id in c["runs"]:  # ordinary run records: a finished header and results.json
            run = tmp_path / "runs" / run_id
            assert json.loads((run / "header.json").read_text())["status"] == "finished"
            assert "synthetic_people" in json.loads((run / "results.json").read_text())
    # A rerun resumes the failed cell; the finished ones are skipped.
    again = _sweep(tmp_path, tiny_model_dir, address, env)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert f"| {failed[0]} | finished |" in out and out.count("| skipped |") == 3
