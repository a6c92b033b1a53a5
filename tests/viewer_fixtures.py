"""Hand-made run records for the viewer tests: a group with robustness-probe records.

Every value is a literal below. Group ``toy-p`` (task synthetic_people, whose task file
declares ``probes.metric: rouge_l_recall``) has a target, grad_ascent and npo, and each of them
under relearn-5 and relearn-20. Recovery, by its definition in docs/probes.md, is
(unlearned under probe - unlearned) / (target under probe - unlearned), worked by hand:

    grad_ascent  unprobed 0.10  relearn-5 0.15 -> 0.05 / (0.92 - 0.10) = 0.0609756
                                relearn-20 0.80 -> 0.70 / (0.95 - 0.10) = 0.8235294
    npo          unprobed 0.20  relearn-5 0.40 -> 0.20 / (0.92 - 0.20) = 0.2777778
                                relearn-20 0.70 -> 0.50 / (0.95 - 0.20) = 0.6666667
    target       unprobed 0.90  relearn-5 0.92, relearn-20 0.95 (no recovery: it is the reference)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TASK = {
    "name": "synthetic_people", "version": 1, "fingerprint": "0123456789abcdef",
    "path": str(REPO / "tasks" / "synthetic_people" / "synthetic_people.yaml"),
}  # fmt: skip
UNPROBED = {"target": 0.9, "grad_ascent": 0.1, "npo": 0.2}
PROBED = {  # model -> probe -> (rouge_l_recall under the probe, recovery)
    "target": {"relearn-5": (0.92, None), "relearn-20": (0.95, None)},
    "grad_ascent": {"relearn-5": (0.15, 0.0609756), "relearn-20": (0.8, 0.8235294)},
    "npo": {"relearn-5": (0.4, 0.2777778), "relearn-20": (0.7, 0.6666667)},
}
# What the toy-a/npo run page's header shows beyond the fixture's (a real header has these).
IDENTITY = {
    "backend": {"backend": "hf", "backend_version": "transformers 5.19.0",
                "weights_sha256": "ab12" * 16},
    "packages": {"torch": "2.13.0+cpu", "transformers": "5.19.0"},
    "stages": {"unlearn": {"seconds": 12.5}, "evaluate": {"seconds": 3.25}},
}  # fmt: skip


def _entry(value: float | None, hib: bool | None) -> dict[str, Any]:
    return {"value": value, "stderr": None, "n": 4, "higher_is_better": hib, "version": 1}


def _write(root: Path, label: str, results: dict[str, Any], probe: dict | None) -> None:
    model = label.split("@")[0]
    role = "target" if model == "target" else "unlearned"
    method = None if role == "target" else {"method": model, "label": None, "args": {},
                                            "epochs": 5.0, "lr": 1e-05, "batch_size": 4}  # fmt: skip
    header = {
        "run_id": f"toy-p/{label}", "group": "toy-p", "status": "finished",
        "created": "2025-01-02T10:00:00+0000", "label": label, "role": role, "seed": 0,
        "method": method, "task": TASK,
        "config": {"task": "synthetic_people", "model": "smollm2-135m", "backend": "hf", "seed": 0},
    }  # fmt: skip
    if probe:
        header["probe"] = probe
    run = root / "toy-p" / label
    run.mkdir(parents=True)
    (run / "header.json").write_text(json.dumps(header, indent=2))
    (run / "results.json").write_text(json.dumps({"synthetic_people": results}, indent=2))


def write_probe_group(root: Path) -> None:
    """Write group ``toy-p`` (module docstring) under ``root``."""
    for model, value in UNPROBED.items():
        _write(root, model, {"forget/rouge_l_recall": _entry(value, True)}, None)
        for name, (probed, recovery) in PROBED[model].items():
            results = {
                "forget/rouge_l_recall": _entry(probed, True),
                "forget/before_rouge_l_recall": _entry(value, None),
            }
            if model != "target":
                results["forget/recovery_rouge_l_recall"] = _entry(recovery, False)
            probe = {"name": name, "family": "relearn", "of": model,
                     "steps": int(name.split("-")[1]), "version": 1}  # fmt: skip
            _write(root, f"{model}@{name}", results, probe)


def add_identity(header_file: Path) -> None:
    """Give a fixture header the backend identity, package versions and stage times."""
    header = json.loads(header_file.read_text())
    header_file.write_text(json.dumps({**header, **IDENTITY}, indent=2))
