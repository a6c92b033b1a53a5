"""MedForget (Wu et al. 2025, arXiv 2512.09867): a user-supplied copy, validated.

The data (3,840 image + question + answer items, Institution > Patient > Study > Section) is
not publicly downloadable, so nothing is fetched: ``--data-dir`` (or the option ``path``) must
name a folder in the layout the authors' scripts read (``fengli-wu/MedForget``, ``run_eval.sh``
and ``eval.py``)::

    <root>/<level>_level/forget_set_<filter>.parquet     (filter "all" by default)
    <root>/<level>_level/retain_set_<filter>.parquet

Each parquet row is one image with its questions: column ``image`` (an HF image struct
``{"bytes": ..., "path": ...}`` or raw bytes) and column ``metadata`` (a JSON string, or a list,
of ``{"Question": ..., "Answer": ...}``; an ``Answer`` given as a list is joined with spaces, as
the authors' loader does). Every problem found (missing folder or file, missing column,
unreadable image, malformed metadata) is reported at once, in one line.

Sub-tasks follow the authors' analysis script: a question containing ``[blank]`` is cloze;
one containing ``A)``, ``B)`` and ``C)`` is classification; any other is generation. Splits are
``<level>_<forget|retain>_<generation|classification|cloze>``, so each hierarchy level is
scored and reported separately. Records carry the image base64-encoded in ``_images`` (an
input field: the evaluator sends it to the model but does not store it in samples) and its
sha256 in ``image_sha256``.

Training roles (``train_full``, ``train_retain``, ``train_forget``) are ``UnavailableSplit``s:
the harness's trainer is text-only, and finetuning or unlearning a vision-language model on
questions without their images would silently be a different experiment.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from unlearn_bench.data.unavailable import UnavailableSplit
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.tasks import DATA_SOURCES

LEVELS = ("institution", "patient", "study", "section")
SETS = ("forget", "retain")
TASK_TYPES = ("generation", "classification", "cloze")
SOURCE_NAME = "medforget:local"
Record = dict[str, Any]
_OPTIONS = frozenset({"path", "levels", "filter"})
_MAX_PROBLEMS = 8


def task_type(question: str) -> str:
    """MedForget's sub-task of a question, by its format (cloze is checked first)."""
    if "[blank]" in question:
        return "cloze"
    if all(option in question for option in ("A)", "B)", "C)")):
        return "classification"
    return "generation"


@DATA_SOURCES.register("medforget:local")
def medforget(options: dict[str, Any], data_dir: Path | None) -> dict[str, list[Record]]:
    """The data source ``medforget:local``; options ``path``, ``levels``, ``filter``."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise UnlearnBenchError(
            f"{SOURCE_NAME}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(_OPTIONS))}"
        )
    levels = list(options.get("levels") or LEVELS)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise UnlearnBenchError(f"{SOURCE_NAME}: unknown level {bad[0]!r}; known: {LEVELS}")
    root = data_dir or (Path(options["path"]).expanduser() if options.get("path") else None)
    file_filter = str(options.get("filter", "all"))
    expected = ", ".join(f"{lv}_level/{{forget,retain}}_set_{file_filter}.parquet" for lv in levels)
    if root is None:
        raise UnlearnBenchError(
            "MedForget's data is not public (credentialed clinical images); pass --data-dir with "
            f"a folder holding {expected}"
        )
    problems: list[str] = []
    paths = _find_files(Path(root), levels, file_filter, problems)
    splits: dict[str, list[Record]] = {}
    for (level, which), path in paths.items():
        records = _read_parquet(path, level, which, problems)
        for kind in TASK_TYPES:
            splits[f"{level}_{which}_{kind}"] = [r for r in records if r["task_type"] == kind]
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = (
            f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        )
        raise UnlearnBenchError(f"MedForget data in {root} is not usable: {shown}{more}")
    reason = (
        "training (finetuning or unlearning) a vision-language model is not supported by the "
        "harness's text-only trainer; evaluate a model with `unlearn-bench eval` instead"
    )
    for role in ("train_full", "train_retain", "train_forget"):
        splits[role] = UnavailableSplit(role, reason)
    return splits


def _find_files(
    root: Path, levels: list[str], file_filter: str, problems: list[str]
) -> dict[tuple[str, str], Path]:
    if not root.is_dir():
        problems.append(f"folder {root} does not exist")
        return {}
    found = {}
    for level in levels:
        for which in SETS:
            path = root / f"{level}_level" / f"{which}_set_{file_filter}.parquet"
            if path.is_file():
                found[(level, which)] = path
            elif path.is_dir():
                problems.append(f"{path.relative_to(root)} is a directory, expected a file")
            else:
                problems.append(f"missing {path.relative_to(root)}")
    return found


def _read_parquet(path: Path, level: str, which: str, problems: list[str]) -> list[Record]:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError:
        raise UnlearnBenchError(
            "reading MedForget parquet files needs pandas and pyarrow: "
            "pip install 'unlearn-bench[medforget]'"
        ) from None
    except Exception as exc:  # pyarrow raises many types for a damaged file
        problems.append(f"{path.name} of {level}_level unreadable: {exc}")
        return []
    missing = [c for c in ("image", "metadata") if c not in frame.columns]
    if missing:
        problems.append(f"{level}_level/{path.name} lacks column(s) {', '.join(missing)}")
        return []
    records: list[Record] = []
    for row, (image, metadata) in enumerate(zip(frame["image"], frame["metadata"], strict=True)):
        where = f"{level}_level/{path.name} row {row}"
        encoded = _image(image, where, problems)
        for j, (question, answer) in enumerate(_qa_pairs(metadata, where, problems)):
            if encoded is None:
                continue
            records.append(
                {
                    "question": question, "answer": answer, "task_type": task_type(question),
                    "level": level, "set": which, "row": row, "qa_index": j,
                    "image_sha256": encoded[1], "_images": (encoded[0],),
                }
            )  # fmt: skip
    return records


def _image(value: Any, where: str, problems: list[str]) -> tuple[str, str] | None:
    """(base64, sha256) of a readable image file, else None with the problem recorded."""
    raw = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(raw, bytes | bytearray) or not raw:
        problems.append(f"{where}: image has no bytes")
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        Image.open(io.BytesIO(raw)).verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        problems.append(f"{where}: image bytes are not a readable image ({exc})")
        return None
    return base64.b64encode(raw).decode("ascii"), hashlib.sha256(raw).hexdigest()


def _qa_pairs(metadata: Any, where: str, problems: list[str]) -> list[tuple[str, str]]:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: metadata is not JSON ({exc.msg})")
            return []
    if hasattr(metadata, "tolist"):  # a parquet list column arrives as a numpy array
        metadata = metadata.tolist()
    if not isinstance(metadata, list) or not metadata:
        problems.append(f"{where}: metadata must be a non-empty list of {{Question, Answer}}")
        return []
    pairs = []
    for j, qa in enumerate(metadata):
        question = qa.get("Question") if isinstance(qa, dict) else None
        answer: Any = qa.get("Answer") if isinstance(qa, dict) else None
        if answer is not None and hasattr(answer, "tolist"):
            answer = answer.tolist()
        if isinstance(answer, list):
            answer = " ".join(str(a) for a in answer if a)
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{where}: metadata[{j}] has no Question")
        elif not isinstance(answer, str) or not answer.strip():
            problems.append(f"{where}: metadata[{j}] has no Answer")
        else:
            pairs.append((question, answer))
    return pairs
