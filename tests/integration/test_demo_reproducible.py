"""The demo protocol on the tiny model gives exactly the committed numbers.

``configs/demo.yaml`` run on the tiny random model instead of SmolLM2 takes seconds, and every
behaviour change of training, evaluation or scoring moves some of its numbers. The committed
``tests/golden/demo_tiny.json`` holds them at full precision, next to the fingerprint of the
real demo table it was regenerated with; a change that moves them fails here until both are
regenerated in the same commit (``make demo`` and ``UNLEARN_BENCH_UPDATE_GOLDEN=1 pytest
tests/integration/test_demo_reproducible.py``), so it shows up in review.
"""

import json
import os
from pathlib import Path

from unlearn_bench.config import RunConfig
from unlearn_bench.runner import run_protocol
from unlearn_bench.runs import results_fingerprint

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "demo_tiny.json"


def _tiny_demo(model_dir: Path, tmp_path: Path) -> tuple[dict, dict]:
    overrides = {
        "model": str(model_dir),
        "runs_dir": str(tmp_path / "runs"),
        "leaderboards_dir": str(tmp_path / "lb"),
        "run_id": "demo-tiny",
    }
    config = RunConfig.from_yaml(ROOT / "configs" / "demo.yaml", overrides)
    group, records, _ = run_protocol(config, echo=lambda _: None)
    values = {
        r.header["label"]: {
            k: v["value"] for k, v in sorted(r.results()["synthetic_people"].items())
        }
        for r in records
    }
    group_file = json.loads((group / "GROUP.json").read_text())
    assert group_file["results_fingerprint"] == results_fingerprint(records)
    return values, group_file


def test_tiny_demo_gives_the_committed_numbers(tiny_model_dir, tmp_path):
    values, group_file = _tiny_demo(tiny_model_dir, tmp_path)
    if os.environ.get("UNLEARN_BENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"values": values}, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert set(values) == {"target", "retain", "grad_ascent", "grad_diff", "npo"}
    assert values == golden["values"], (
        "the demo protocol's numbers moved: rerun `make demo`, regenerate the golden file "
        "(UNLEARN_BENCH_UPDATE_GOLDEN=1) and commit both with the reason"
    )
    assert group_file["code_version"] is None or len(group_file["code_version"]) >= 40
