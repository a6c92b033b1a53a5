"""Reference (retain-model) values: forget quality, PrivLeak and the Reference attack need them.

TOFU compares an unlearned model with a model never trained on the forget set (the retain
model). What is needed of it, per forget-set item: its truth ratio R (forget quality's KS test);
its Min-K% AUC (PrivLeak); its answer log-probs on forget and holdout (Reference attack).
``ReferenceValues`` holds exactly that, from one of three sources:

- a **retain run** of this harness (``--reference runs/<group>/retain``): computed from the
  run's stored samples and cached under the user cache, keyed by the samples' sha256;
- **open-unlearning** ``*_EVAL.json``: ``forget_truth_ratio.value_by_index[i].score`` is R per
  dataset index, ``mia_<attack>.agg_value`` an AUC in the standard orientation;
- **TOFU's aggregated eval logs** (``eval_log_aggregated.json[.gz]``, locuslab/tofu): per index
  of ``eval_log_forget.json``, R = exp(avg_paraphrased_loss - mean(average_perturb_loss))
  (mean per-token losses); TOFU evaluated the first 300 forget items (``ds_size300``).

Values are matched to this run's items by eval-set index, and where both sides know the
question, the questions must agree. ``unlearn-bench reference import LOG --task T
--out DIR`` writes an imported log as a *reference record*, a folder that ``--reference``
accepts like a run (status "reference", so leaderboards skip it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.metrics.likelihood import exp_or_inf
from unlearn_bench.metrics.views import RECORD_SET, ReferenceValues, RunView
from unlearn_bench.paths import atomic_write_json, atomic_write_text, cache_dir, read_json

OPEN_UNLEARNING_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")


def from_run(root: Path, task: str) -> ReferenceValues:
    """Values of a finished run folder, cached by the content hash of its samples."""
    from unlearn_bench.runs import RunRecord
    from unlearn_bench.scoring import reference_values

    record = RunRecord(root)
    samples = record.samples_path(task)
    if not samples.is_file():
        raise UnlearnBenchError(f"reference run {root} has no samples for task {task!r}")
    digest = hashlib.sha256(samples.read_bytes()).hexdigest()
    cache_file = cache_dir() / "references" / f"{digest[:32]}.json"
    if cache_file.is_file():
        try:
            return ReferenceValues.from_json(read_json(cache_file))
        except (UnlearnBenchError, ValueError, TypeError, KeyError):
            pass  # a damaged cache entry is recomputed from the run's samples below
    values = reference_values(RunView.load(record, task))
    atomic_write_json(cache_file, values.to_json())
    return values


# --- importers -------------------------------------------------------------------------------
def read_json_file(path: Path) -> Any:
    """A ``.json`` or gzipped ``.json.gz`` file."""
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode()
        return json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnlearnBenchError(f"cannot read reference log {path}: {exc}") from None


def import_open_unlearning(data: dict[str, Any], source: str) -> ReferenceValues:
    """open-unlearning's ``TOFU_EVAL.json``: per-index forget truth ratios and MIA AUCs."""
    entry = data.get("forget_truth_ratio")
    if not isinstance(entry, dict) or not isinstance(entry.get("value_by_index"), dict):
        raise UnlearnBenchError(f"{source}: no forget_truth_ratio.value_by_index")
    ratios = {
        int(k): float(v["score"])
        for k, v in entry["value_by_index"].items()
        if isinstance(v, dict) and v.get("score") is not None
    }
    if not ratios:
        raise UnlearnBenchError(f"{source}: forget_truth_ratio has no per-index scores")
    aucs = {
        attack: float(data[f"mia_{attack}"]["agg_value"])
        for attack in OPEN_UNLEARNING_ATTACKS
        if isinstance(data.get(f"mia_{attack}"), dict)
        and data[f"mia_{attack}"].get("agg_value") is not None
    }
    notes = ["open-unlearning's GradNorm AUC is not imported: its score is oriented otherwise"]
    label = Path(source).stem
    return ReferenceValues(label, "open-unlearning", source, ratios, mia_auc=aucs, notes=notes)


def import_tofu_eval_log(data: dict[str, Any], source: str) -> ReferenceValues:
    """TOFU's aggregated eval log: R per index of ``eval_log_forget.json`` (no MIA)."""
    forget = data.get("eval_log_forget.json")
    if not isinstance(forget, dict):
        raise UnlearnBenchError(f"{source}: no 'eval_log_forget.json' section")
    try:
        para, perturbed = forget["avg_paraphrased_loss"], forget["average_perturb_loss"]
    except KeyError as exc:
        raise UnlearnBenchError(f"{source}: eval_log_forget.json lacks {exc}") from None
    ratios: dict[int, float] = {}
    for key, para_loss in para.items():
        losses = perturbed[key]
        # Mean per-token losses: log R = mean_j(-loss_j) - (-loss_para).
        ratios[int(key)] = exp_or_inf(float(para_loss) - sum(losses) / len(losses))
        stored = forget.get("truth_ratio", {}).get(key)
        if stored is not None and not math.isclose(stored, ratios[int(key)], rel_tol=1e-4):
            raise UnlearnBenchError(
                f"{source}: index {key}: truth ratio from losses {ratios[int(key)]:.6g} "
                f"disagrees with the logged {stored:.6g}"
            )
    prompts = forget.get("generated_text", {})
    questions = {int(k): str(v[0]) for k, v in prompts.items() if isinstance(v, list) and v}
    label = Path(source).name.split(".")[0]
    note = f"TOFU eval log: {len(ratios)} forget items (TOFU evaluated the first 300 at most)"
    return ReferenceValues(label, "tofu-eval-log", source, ratios, questions, notes=[note])


def load_reference(path: str | Path, task: str) -> ReferenceValues:
    """Any reference the user names: a run or reference-record folder, or a log file.

    A file of the right shape holding values of the wrong type (a score that is not a number,
    an index that is not an integer) is a one-line error naming it, before any evaluation.
    """
    try:
        return _load_reference(Path(path), task)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UnlearnBenchError(
            f"{path}: malformed reference ({type(exc).__name__}: {exc})"
        ) from None


def _load_reference(path: Path, task: str) -> ReferenceValues:
    if path.is_dir():
        return from_run(path, task)
    if not path.is_file():
        raise UnlearnBenchError(f"reference not found: {path}")
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise UnlearnBenchError(f"{path}: a reference log must be a JSON object")
    if data.get("kind") and "truth_ratios" in data:
        return ReferenceValues.from_json(data)  # written by ``export``
    if "eval_log_forget.json" in data:
        return import_tofu_eval_log(data, str(path))
    if "forget_truth_ratio" in data:
        return import_open_unlearning(data, str(path))
    raise UnlearnBenchError(
        f"{path}: not a run, an open-unlearning *_EVAL.json or a TOFU eval_log_aggregated.json"
    )


def write_reference_record(values: ReferenceValues, out_dir: Path, task: str) -> Path:
    """A folder ``--reference`` reads like a run: header, one sample holding the values."""
    if (out_dir / "header.json").exists():
        raise UnlearnBenchError(f"{out_dir} already holds a run or reference record")
    sample = {"eval_set": RECORD_SET, "index": 0, "reference_values": values.to_json()}
    atomic_write_text(out_dir / "samples" / f"{task}.jsonl", json.dumps(sample) + "\n")
    header = {
        "run_id": values.label,
        "status": "reference",  # not "finished": leaderboards list runs, not references
        "role": "reference",
        "label": values.label,
        "reference": {"kind": values.kind, "source": values.source, "notes": values.notes},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stages": {},
    }
    atomic_write_json(out_dir / "header.json", header)
    return out_dir


def reference_view(path: str | Path, task: str) -> RunView:
    """The RunView that derived metrics read, for a run folder or an imported log file.

    A log file (open-unlearning ``*_EVAL.json``, TOFU ``eval_log_aggregated.json(.gz)``) is
    imported once into a reference record under the user cache, keyed by the file's content.
    """
    from unlearn_bench.runs import RunRecord

    path = Path(path)
    if path.is_dir():
        return RunView.load(RunRecord(path), task)
    if not path.is_file():
        raise UnlearnBenchError(f"reference not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    folder = cache_dir() / "references" / f"{task}-{digest}"
    if not (folder / "header.json").is_file():
        write_reference_record(load_reference(path, task), folder, task)
    return RunView.load(RunRecord(folder), task)
