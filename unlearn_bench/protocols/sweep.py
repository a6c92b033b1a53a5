"""Sweeps: a grid over methods and hyperparameters from one YAML file, one run group per cell.

The file::

    sweep: gd-vs-npo            # folder under runs_dir: runs/<sweep>/<cell>/...
    base:                       # any RunConfig keys except `unlearn` and `run_id`
      task: synthetic_people
      finetune: {epochs: 1}
    seeds: [0, 1]               # optional; default [base.seed or 0]
    grid:                       # list values are swept (cartesian product per entry)
      - {method: grad_ascent, lr: [1.0e-5, 2.0e-5]}
      - {method: npo, args: {beta: [0.1, 0.5]}}

Each cell is ``base`` plus one ``unlearn`` entry, run by ``runner.run_protocol`` as an ordinary
run group, so its records feed leaderboards, ``compare`` and ``regress`` like any run. Cells share
the target and retain finetunes through the content-addressed checkpoint cache and the target's
and retain's responses through the response cache: only the first cell pays for them.

A cell that fails is recorded (error and traceback in ``runs/<sweep>/SWEEP.json``) and the
others go on; the sweep exits non-zero at the end with a summary. Rerunning the same file skips
finished cells and resumes interrupted ones. ``--executor ray`` fans cells out over an existing
Ray cluster (``run_sweep_ray``).
"""

from __future__ import annotations

import itertools
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import atomic_write_json, read_json
from unlearn_bench.yaml_strict import load_yaml

Echo = Callable[[str], None]
_TOP_KEYS = {"sweep", "base", "grid", "seeds"}
_PATH_KEYS = ("task", "model", "data_dir", "reference")  # made absolute when they exist here


@dataclass
class Cell:
    """One grid point: its name and run config."""

    name: str
    config: RunConfig


@dataclass
class Sweep:
    """A loaded sweep: its cells and where their runs and leaderboards go."""

    name: str
    cells: list[Cell]
    runs_dir: Path
    leaderboards_dir: Path

    @property
    def state_path(self) -> Path:
        """The sweep's state file (cell statuses)."""
        return self.runs_dir / self.name / "SWEEP.json"


@dataclass
class Outcome:
    """How one cell ended: status, seconds, error and its runs."""

    cell: str
    status: str  # "finished", "skipped" (finished before), "failed"
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""
    runs: list[str] = field(default_factory=list)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


def expand_entry(entry: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """Cartesian product of the list values of one grid entry (top level and in ``args``).

    Returns (unlearn config mapping, [swept "key=value" parts for the cell name]).
    """
    if not isinstance(entry, dict) or "method" not in entry:
        raise UnlearnBenchError(f"each grid entry must be a mapping with a 'method', got {entry!r}")
    args = entry.get("args") or {}
    if not isinstance(args, dict):
        raise UnlearnBenchError(f"grid entry {entry['method']!r}: 'args' must be a mapping")
    axes = [(k, v) for k, v in entry.items() if k != "args" and isinstance(v, list)]
    axes += [(f"args.{k}", v) for k, v in args.items() if isinstance(v, list)]
    for key, values in axes:
        if not values:
            raise UnlearnBenchError(f"grid entry {entry['method']!r}: {key} is an empty list")
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        cell = {k: v for k, v in entry.items() if k != "args"}
        cell_args = dict(args)
        for (key, _), value in zip(axes, combo, strict=True):
            if key.startswith("args."):
                cell_args[key[5:]] = value
            else:
                cell[key] = value
        if cell_args:
            cell["args"] = cell_args
        parts = [
            f"{key.removeprefix('args.')}={value}"
            for (key, _), value in zip(axes, combo, strict=True)
        ]
        out.append((cell, [p for p in parts if not p.startswith("method=")]))
    return out


def _absolute_paths(base: dict[str, Any]) -> dict[str, Any]:
    # Workers (Ray) do not share the driver's working directory: pin local paths.
    out = dict(base)
    out["runs_dir"] = str(Path(out.get("runs_dir", "runs")).resolve())
    for key in _PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and Path(value).exists():
            out[key] = str(Path(value).resolve())
    return out


def load_sweep(path: str | Path, runs_dir: str | None = None) -> Sweep:
    """Parse a sweep file and build (and so validate) every cell's RunConfig up front."""
    data = load_yaml(path)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise UnlearnBenchError(f"{path}: unknown key {unknown[0]!r}; allowed: {sorted(_TOP_KEYS)}")
    base = dict(data.get("base") or {})
    for key in ("unlearn", "run_id"):
        if key in base:
            raise UnlearnBenchError(
                f"{path}: 'base' may not set {key!r}: the sweep sets it per cell"
            )
    if runs_dir:
        base["runs_dir"] = runs_dir
    grid = data.get("grid")
    if not isinstance(grid, list) or not grid:
        raise UnlearnBenchError(f"{path}: 'grid' must be a non-empty list of method entries")
    name = _safe(str(data.get("sweep") or Path(path).stem))
    seeds = data.get("seeds", [base.get("seed", 0)])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise UnlearnBenchError(f"{path}: 'seeds' must be a non-empty list of integers")
    base = _absolute_paths(base)
    cells: list[Cell] = []
    for entry in grid:
        for unlearn, parts in expand_entry(entry):
            for seed in seeds:
                tag = parts + ([f"seed={seed}"] if len(seeds) > 1 else [])
                cell_name = _safe("-".join([str(unlearn.get("label") or unlearn["method"]), *tag]))
                if any(c.name == cell_name for c in cells):
                    raise UnlearnBenchError(f"{path}: two grid cells are both {cell_name!r}")
                config = RunConfig.from_dict(
                    {**base, "seed": seed, "unlearn": [unlearn], "run_id": f"{name}/{cell_name}"}
                )
                cells.append(Cell(cell_name, config))
    first = cells[0].config
    return Sweep(name, cells, Path(first.runs_dir), Path(first.leaderboards_dir))


def cell_finished(config: RunConfig) -> bool:
    """Whether the cell's run group is already finished."""
    group = Path(config.runs_dir) / str(config.run_id) / "GROUP.json"
    return group.is_file() and read_json(group).get("status") == "finished"


def run_cell(config_dict: dict[str, Any], cell: str) -> dict[str, Any]:
    """Run one cell; never raises for a failure of the cell itself (Ray runs this remotely)."""
    from unlearn_bench.runner import run_protocol

    config = RunConfig.from_dict(config_dict)
    if cell_finished(config):
        return vars(Outcome(cell, "skipped"))
    start = time.perf_counter()
    try:
        _, records, _ = run_protocol(config, echo=lambda m: print(f"[{cell}] {m}", flush=True))
    except Exception as exc:  # a failed cell must not lose the others
        return vars(
            Outcome(cell, "failed", round(time.perf_counter() - start, 2),
                    f"{type(exc).__name__}: {exc}", traceback.format_exc()[-4000:])
        )  # fmt: skip
    return vars(
        Outcome(cell, "finished", round(time.perf_counter() - start, 2),
                runs=[r.run_id for r in records])
    )  # fmt: skip


class StateFile:
    """``SWEEP.json``: every cell's latest outcome, rewritten atomically after each cell."""

    def __init__(self, sweep: Sweep) -> None:
        self.path = sweep.state_path
        self.state: dict[str, Any] = {
            "sweep": sweep.name,
            "cells": {
                c.name: {"status": "pending", "run_id": c.config.run_id} for c in sweep.cells
            },
        }
        self.save()

    def record(self, outcome: Outcome) -> None:
        """Store one cell's outcome and save."""
        self.state["cells"][outcome.cell].update(vars(outcome))
        self.save()

    def save(self) -> None:
        """Write the state file atomically."""
        atomic_write_json(self.path, self.state)


def run_sweep(sweep: Sweep, echo: Echo = print) -> list[Outcome]:
    """Run every cell locally, one after another."""
    state = StateFile(sweep)
    outcomes = []
    for index, cell in enumerate(sweep.cells, 1):
        echo(f"=== cell {index}/{len(sweep.cells)}: {cell.name}")
        outcome = Outcome(**run_cell(cell.config.to_dict(), cell.name))
        state.record(outcome)
        outcomes.append(outcome)
        echo(
            f"=== cell {cell.name}: {outcome.status}"
            + (f" ({outcome.error})" if outcome.error else "")
        )
    return outcomes


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """A ``host:port`` or ``ray://host:port`` that does not answer is a one-line error.

    Without this, ``ray.init`` keeps retrying a silent address for minutes.
    """
    if not address or address in ("auto", "local"):
        return  # "auto" finds the local cluster's address file, or fails at once
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UnlearnBenchError(f"Ray address {address!r} is not host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UnlearnBenchError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` or pass --ray-address local"
        ) from None


def run_sweep_ray(
    sweep: Sweep,
    address: str | None = None,
    cpus_per_cell: float = 1.0,
    gpus_per_cell: float = 0.0,
    echo: Echo = print,
) -> list[Outcome]:
    """Fan cells out as Ray tasks on an existing cluster.

    ``address`` is "auto" (default), "ray://host:port", or "local" for a throwaway
    single-machine Ray. Cells run alone until one succeeds, so the finetunes every cell shares
    land in the checkpoint cache once; the rest then run in parallel, one task per cell with
    the given resources. On a multi-node cluster the runs folder, the data and
    ``UNLEARN_BENCH_CACHE`` must be on storage every node sees. A task that dies (node lost,
    out of memory) is recorded as a failed cell.
    """
    check_address(address)
    try:
        import ray
    except ImportError:
        raise UnlearnBenchError(
            "--executor ray needs Ray, which is not installed: "
            "pip install 'unlearn-bench[sweep-ray]'"
        ) from None
    try:
        ray.init(
            address=None if address == "local" else (address or "auto"), ignore_reinit_error=True
        )
    except (ConnectionError, RuntimeError) as exc:
        raise UnlearnBenchError(
            f"cannot reach a Ray cluster at {address or 'auto'} ({exc}); start one with "
            "`ray start --head` or pass --ray-address local"
        ) from None
    remote = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)(run_cell)
    state = StateFile(sweep)
    outcomes: list[Outcome] = []

    def collect(futures: dict[Any, str]) -> None:
        while futures:
            done, _ = ray.wait(list(futures), num_returns=1)
            cell = futures.pop(done[0])
            try:
                outcome = Outcome(**ray.get(done[0]))
            except Exception as exc:  # the task itself died: record it, keep the others
                outcome = Outcome(
                    cell, "failed", error=f"Ray task failed: {type(exc).__name__}: {exc}"
                )
            state.record(outcome)
            outcomes.append(outcome)
            echo(
                f"=== cell {cell}: {outcome.status}"
                + (f" ({outcome.error})" if outcome.error else "")
            )

    queue = list(sweep.cells)
    try:
        # Cells run alone until one succeeds: its finetunes then serve every later cell.
        while queue and not any(o.status in ("finished", "skipped") for o in outcomes):
            cell = queue.pop(0)
            collect({remote.remote(cell.config.to_dict(), cell.name): cell.name})
        collect({remote.remote(c.config.to_dict(), c.name): c.name for c in queue})
    finally:
        ray.shutdown()  # disconnects this driver; a cluster keeps running
    order = {c.name: i for i, c in enumerate(sweep.cells)}
    return sorted(outcomes, key=lambda o: order[o.cell])


def summary(sweep: Sweep, outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table."""
    lines = ["| cell | status | seconds | detail |", "|---|---|---|---|"]
    for o in outcomes:
        detail = (
            o.error or ", ".join(o.runs) or ("finished earlier" if o.status == "skipped" else "")
        )
        lines.append(f"| {o.cell} | {o.status} | {o.seconds:.1f} | {detail} |")
    failed = sum(o.status == "failed" for o in outcomes)
    lines.append(
        f"\n{len(outcomes) - failed} of {len(outcomes)} cells done, {failed} failed; "
        f"state: {sweep.state_path}"
    )
    return "\n".join(lines) + "\n"
