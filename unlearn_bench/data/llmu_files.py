r"""Readers for the data of Yao et al.'s three scenarios: local copies and the hub, one shape.

Local layout is that of ``../shared/data`` (see each folder's PROVENANCE.md); a task's
``--data-dir`` (or ``$UNLEARN_BENCH_DATA``) points at that root. Hub loading goes through
``datasets.load_dataset`` (imported lazily); the same call also reads a local file or folder
laid out like the hub dataset, which is how the hub path is tested offline.

Format facts these readers rely on (PROVENANCE.md of each folder):
- PKU-SafeRLHF v0 pairs: ``response`` is ``[safer, worse]`` and ``response[1]`` is the unsafe one.
- PKU-SafeRLHF raw records (hub layout, v0 and v1): ``response_0/1`` + ``is_response_0/1_safe``.
- TruthfulQA.csv starts with a UTF-8 BOM; answers in ``Correct/Incorrect Answers`` are
  ``;``-separated.
- HarmBench CSVs may carry ``\r\n`` inside fields: normalised to ``\n``.
- Two Gutenberg texts are latin-1; Moby Dick has CRLF line endings.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import require_file

Row = dict[str, Any]
DATA_ENV = "UNLEARN_BENCH_DATA"

PKU_V0 = "pku_saferlhf/v0_test_safety_contrast_pairs.json.gz"
PKU_V1 = "pku_saferlhf/v1_alpaca7b_unsafe_pairs_dedup.jsonl.gz"
TRUTHFULQA = "truthfulqa/TruthfulQA.csv"
HALUEVAL = "halueval/qa_data.jsonl"
ADVBENCH = "advbench/harmful_behaviors.csv"
HARMBENCH = "harmbench/harmbench_behaviors_text_all.csv"
GUTENBERG = "gutenberg_public_domain/nltk_gutenberg.zip"


def bucket(text: str) -> int:
    """A stable bucket in [0, 100) from the text's sha256, so splits are by item, not by order.

    Scenario splits (forget / unseen / judge training) take disjoint bucket ranges of the
    *prompt*, so no prompt is ever on two sides, whatever the file order or sample size.
    """
    return int(hashlib.sha256(text.strip().encode()).hexdigest()[:8], 16) % 100


def data_root(data_dir: Path | None, what: str) -> Path:
    """``data_dir``, else ``$UNLEARN_BENCH_DATA``; a clear error when neither is set."""
    root = data_dir or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    if root is None:
        raise UnlearnBenchError(
            f"{what}: local data needs --data-dir (a copy of shared/data) or ${DATA_ENV}; "
            "or name a hub dataset in the task's data.options"
        )
    return Path(root)


def local_file(root: Path, relative: str) -> Path:
    """``root / relative``, which must be a file (else a one-line error)."""
    return require_file(root / relative, "data file")


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding=encoding)  # type: ignore[arg-type]
    return path.open(encoding=encoding, newline="")


def read_json_records(path: Path) -> list[Row]:
    """A JSON array or JSON lines (optionally gzipped)."""
    with _open_text(path) as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        return list(json.loads(stripped))
    # split("\n"), not splitlines(): U+2028 and friends occur inside JSON strings.
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def read_csv_rows(path: Path) -> list[Row]:
    # utf-8-sig drops TruthfulQA's BOM, which would otherwise glue itself to the first header.
    """Rows of a CSV file as dicts, BOM and Windows line ends removed."""
    with _open_text(path, "utf-8-sig") as handle:
        return [
            {k: (v or "").replace("\r\n", "\n") for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def hub_rows(
    name: str, config: str | None = None, split: str = "train", revision: str | None = None
) -> list[Row]:
    """Rows of a hub dataset, or of a local file / folder laid out like one (same code path)."""
    try:
        import datasets
    except ImportError:
        raise UnlearnBenchError(
            f"loading {name!r} needs the 'datasets' package: pip install 'unlearn-bench[hub]'"
        ) from None
    path = Path(name).expanduser()
    kwargs: dict[str, Any] = {"split": split}
    if path.is_file():
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
        if path.suffix not in builder:
            raise UnlearnBenchError(f"cannot read {path}: use .json, .jsonl, .csv or .parquet")
        args: tuple[Any, ...] = (builder[path.suffix],)
        kwargs["data_files"] = str(path)
        kwargs["split"] = "train"
    else:
        args = (str(path) if path.is_dir() else name, config)
        if revision:
            kwargs["revision"] = revision
    try:
        dataset = datasets.load_dataset(*args, **kwargs)
    except Exception as exc:  # datasets raises many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnlearnBenchError(f"cannot load dataset {name!r}: {first[:200]}") from None
    return [dict(row) for row in dataset]


# --- PKU-SafeRLHF --------------------------------------------------------------------------


def pku_v0_pairs(path: Path) -> list[Row]:
    """``{prompt, safe, unsafe}`` from the v0 safety-contrast file (response = [safer, worse])."""
    rows = []
    for record in read_json_records(path):
        response = record["response"]
        if len(response) != 2:
            raise UnlearnBenchError(f"{path}: a record's response is not [safe, unsafe]")
        rows.append({"prompt": record["prompt"], "safe": response[0], "unsafe": response[1]})
    return rows


def pku_raw_pairs(rows: list[Row]) -> list[Row]:
    """``{prompt, response, is_safe}`` per response of raw records (hub layout, v0 or v1)."""
    out = []
    for row in rows:
        for i in (0, 1):
            if f"is_response_{i}_safe" not in row:
                raise UnlearnBenchError(
                    f"PKU-SafeRLHF record lacks 'is_response_{i}_safe' (fields: {sorted(row)})"
                )
            out.append(
                {
                    "prompt": row["prompt"],
                    "response": row[f"response_{i}"],
                    "is_safe": bool(row[f"is_response_{i}_safe"]),
                }
            )
    return out


def pku_labelled(root: Path | None, source: str) -> list[Row]:
    """Every (prompt, response, is_safe) of a PKU source.

    ``local:v0``, ``local:v1``, or a hub id / local file or folder in the hub's raw layout,
    optionally followed by ``@split``.
    """
    if source == "local:v0":
        pairs = pku_v0_pairs(local_file(data_root(root, "PKU v0"), PKU_V0))
        return [
            {"prompt": p["prompt"], "response": p[key], "is_safe": key == "safe"}
            for p in pairs
            for key in ("safe", "unsafe")
        ]
    if source == "local:v1":
        # The v1 pool holds unsafe responses only.
        path = local_file(data_root(root, "PKU v1"), PKU_V1)
        return [
            {"prompt": r["prompt"], "response": r["response"], "is_safe": False}
            for r in read_json_records(path)
        ]
    # "name@split" picks the split; Yao et al. read split "train" of the hub dataset.
    name, _, split = source.partition("@")
    return pku_raw_pairs(hub_rows(name, split=split or "train"))


# --- normal data, prompts-only sets, HaluEval ------------------------------------------------


def truthfulqa(root: Path | None, source: str) -> list[Row]:
    """``{question, best_answer, correct_answers, incorrect_answers}``: local CSV or hub."""
    if source == "local":
        rows = read_csv_rows(local_file(data_root(root, "TruthfulQA"), TRUTHFULQA))
        return [
            {
                "question": r["Question"],
                "best_answer": r["Best Answer"],
                "correct_answers": _split_answers(r["Correct Answers"]),
                "incorrect_answers": _split_answers(r["Incorrect Answers"]),
            }
            for r in rows
        ]
    hub = hub_rows(source, "generation", split="validation")
    return [
        {
            "question": r["question"],
            "best_answer": r["best_answer"],
            "correct_answers": list(r["correct_answers"]),
            "incorrect_answers": list(r["incorrect_answers"]),
        }
        for r in hub
    ]


def _split_answers(text: str) -> list[str]:
    return [a.strip() for a in text.split(";") if a.strip()]


def halueval_qa(root: Path | None, source: str) -> list[Row]:
    """HaluEval QA ``{knowledge, question, right_answer, hallucinated_answer}``."""
    if source == "local":
        rows = read_json_records(local_file(data_root(root, "HaluEval"), HALUEVAL))
    else:
        rows = hub_rows(source, "qa", split="data")
    fields = ("knowledge", "question", "right_answer", "hallucinated_answer")
    return [{k: r[k] for k in fields} for r in rows]


def advbench_prompts(root: Path | None, source: str) -> list[str]:
    """AdvBench harmful behaviours (``goal``); ``target`` is only a "Sure, here is" prefix."""
    if source == "local":
        return [r["goal"] for r in read_csv_rows(local_file(data_root(root, "AdvBench"), ADVBENCH))]
    return [r.get("prompt") or r["goal"] for r in hub_rows(source)]


def harmbench_prompts(root: Path | None, source: str) -> list[str]:
    """HarmBench *standard* behaviours.

    Contextual ones need their context; copyright ones are about reproducing text, not harm.
    """
    if source == "local":
        rows = read_csv_rows(local_file(data_root(root, "HarmBench"), HARMBENCH))
        return [r["Behavior"] for r in rows if r["FunctionalCategory"] == "standard"]
    return [r.get("prompt") or r["Behavior"] for r in hub_rows(source, "standard")]


def read_book(root: Path | None, source: str) -> tuple[str, str]:
    """Text of a book and its encoding: ``gutenberg:<member>``, a path, or ``zip::member``.

    UTF-8 first; a file that is not UTF-8 is read as latin-1 (which maps every byte), and the
    encoding is recorded with every passage so the choice is visible.
    """
    if source.startswith("gutenberg:"):
        zip_path, member = (
            local_file(data_root(root, "Gutenberg"), GUTENBERG),
            source.split(":", 1)[1],
        )
        member = member if "/" in member else f"gutenberg/{member}"
    elif "::" in source:
        zip_path_s, member = source.split("::", 1)
        zip_path = Path(zip_path_s).expanduser()
    else:
        path = require_file(Path(source).expanduser(), "book file")
        return _decode(path.read_bytes())
    require_file(zip_path, "zip file")
    with zipfile.ZipFile(zip_path) as archive:
        if member not in archive.namelist():
            raise UnlearnBenchError(f"{zip_path} has no member {member!r}")
        return _decode(archive.read(member))


def _decode(raw: bytes) -> tuple[str, str]:
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "latin-1"
    return text.replace("\r\n", "\n"), encoding
