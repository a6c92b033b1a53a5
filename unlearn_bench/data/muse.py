"""MUSE-News (Shi et al. 2024, hub dataset ``muse-bench/MUSE-News``, CC-BY-4.0): hub or local.

Without a data directory every part is fetched with ``datasets.load_dataset(repo, config,
split=...)`` (``repo`` may also be a local folder laid out like the hub repository). With one,
the files of MUSE's own ``data/news`` folder are read: ``<subset>/<split>.json`` (or ``.json.gz``),
which is what the hub configs were built from, so both paths give the same records. Hub split
names and the authors' file names differ in places (hub ``knowmem/retain_qa`` is the file
``knowmem/retain2_qa.json``, hub ``privleak/retain`` is ``privleak/retain2.json``); both are
accepted. ``scal/forget_1`` and ``sust/forget_1`` are the same file as ``raw/forget`` upstream
(the same git blob), so a copy that keeps only ``raw/forget`` still provides them.

Splits (harness names):

- evaluation: ``verbmem_forget`` (question = prompt, answer = true continuation),
  ``knowmem_forget`` / ``knowmem_retain`` (question, answer, ``icl`` = the set's 10 in-context
  QA pairs), ``privleak_forget`` / ``privleak_retain`` / ``privleak_holdout`` (question empty,
  answer = the text, scored as a whole).
- training: ``forget``, ``retain1``, ``retain2``, ``holdout`` (raw articles) and ``full`` =
  forget + retain1 + retain2 (what MUSE's target saw); protocol sets ``scal_forget_1..4`` and
  ``sust_forget_1..4``. Articles are cut into chunks of at most ``train_chunk_chars``
  characters at paragraph breaks (MUSE's code cuts the concatenated text into 2,048-token
  chunks; characters keep the split independent of any tokenizer; 1,000 characters is about
  250 tokens, inside the trainer's default ``max_length`` of 256).

A file missing from a local copy becomes an ``UnavailableSplit`` that names the file and what
needs it: the copy in ``../shared/data/muse_news`` lacks raw ``retain1``, ``retain2`` and
``holdout``, so finetuning a target or retrain model and retain-regularised unlearning refuse
with that reason, while evaluating a given model (VerbMem, KnowMem, PrivLeak) and retain-free
unlearning (gradient ascent, NPO without retain) run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from unlearn_bench.data.unavailable import UnavailableSplit
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import require_file
from unlearn_bench.tasks import DATA_SOURCES

REPO = "muse-bench/MUSE-News"
SOURCE_NAME = "muse:news"
Record = dict[str, Any]
_OPTIONS = frozenset({"repo", "revision", "train_chunk_chars"})

#: harness split -> (hub config, hub split, local file stems tried in order, record kind)
PARTS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "verbmem_forget": ("verbmem", "forget", ("verbmem/forget",), "verbmem"),
    "knowmem_forget": ("knowmem", "forget_qa", ("knowmem/forget_qa",), "qa"),
    "knowmem_forget_icl": ("knowmem", "forget_qa_icl", ("knowmem/forget_qa_icl",), "qa"),
    "knowmem_retain": ("knowmem", "retain_qa", ("knowmem/retain_qa", "knowmem/retain2_qa"), "qa"),
    "knowmem_retain_icl": (
        "knowmem", "retain_qa_icl", ("knowmem/retain_qa_icl", "knowmem/retain2_qa_icl"), "qa",
    ),
    "privleak_forget": ("privleak", "forget", ("privleak/forget",), "text"),
    "privleak_retain": ("privleak", "retain", ("privleak/retain", "privleak/retain2"), "text"),
    "privleak_holdout": ("privleak", "holdout", ("privleak/holdout",), "text"),
    "forget": ("raw", "forget", ("raw/forget",), "train"),
    "retain1": ("raw", "retain1", ("raw/retain1",), "train"),
    "retain2": ("raw", "retain2", ("raw/retain2",), "train"),
    "holdout": ("raw", "holdout", ("raw/holdout",), "train"),
    **{
        f"{subset}_forget_{k}": (
            subset, f"forget_{k}", (f"{subset}/forget_{k}",) + (("raw/forget",) if k == 1 else ()),
            "train",
        )
        for subset in ("scal", "sust")
        for k in (1, 2, 3, 4)
    },
}  # fmt: skip

#: What needs each part, for the message when a local copy lacks it.
_NEEDED_FOR = {
    "forget": "unlearning and finetuning the target need it",
    "retain1": "retain-regularised unlearning and the retrained (oracle) model need it",
    "retain2": "finetuning the target on raw forget + retain needs it",
    "holdout": "membership inference on raw articles needs it",
    "scal": "the scalability protocol needs it",
    "sust": "the sustainability protocol needs it",
}


@DATA_SOURCES.register("muse:news")
def muse_news(options: dict[str, Any], data_dir: Path | None) -> dict[str, list[Record]]:
    """The data source ``muse:news``: every MUSE-News part as a harness split.

    Options: ``repo`` (hub id or local hub-layout folder; default ``muse-bench/MUSE-News``),
    ``revision``, ``train_chunk_chars`` (default 1000).
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise UnlearnBenchError(
            f"{SOURCE_NAME}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(_OPTIONS))}"
        )
    chunk_chars = options.get("train_chunk_chars", 1000)
    if not isinstance(chunk_chars, int) or isinstance(chunk_chars, bool) or chunk_chars < 100:
        raise UnlearnBenchError(f"{SOURCE_NAME}: train_chunk_chars must be an integer >= 100")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UnlearnBenchError(f"MUSE-News data directory not found: {data_dir}")
    raw: dict[str, list[Any] | UnavailableSplit] = {}
    for name, (config, split, stems, _) in PARTS.items():
        if data_dir is not None:
            raw[name] = _read_local(Path(data_dir), name, stems)
        else:
            raw[name] = _read_hub(options.get("repo", REPO), config, split, options.get("revision"))
    return _to_records(raw, chunk_chars)


def _to_records(
    raw: dict[str, list[Any] | UnavailableSplit], chunk_chars: int
) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for name, (_, _, _, kind) in PARTS.items():
        rows = raw[name]
        if isinstance(rows, UnavailableSplit):
            out[name] = rows
        elif kind == "verbmem":
            out[name] = [_verbmem(r, f"{name}[{i}]") for i, r in enumerate(rows)]
        elif kind == "qa":
            out[name] = [_qa(r, f"{name}[{i}]") for i, r in enumerate(rows)]
        elif kind == "text":
            out[name] = [{"question": "", "answer": _text(r, f"{name}[{i}]")} for i, r in enumerate(rows)]  # noqa: E501  # fmt: skip
        else:
            out[name] = _train_chunks(rows, name, chunk_chars)
    for qa_set in ("knowmem_forget", "knowmem_retain"):
        shots = out[f"{qa_set}_icl"]
        if isinstance(out[qa_set], UnavailableSplit):
            continue
        if isinstance(shots, UnavailableSplit):
            # KnowMem without its in-context examples would be a different (zero-shot) metric.
            out[qa_set] = UnavailableSplit(qa_set, shots.reason)
            continue
        icl = [{"question": r["question"], "answer": r["answer"]} for r in shots]
        out[qa_set] = [dict(r, icl=icl) for r in out[qa_set]]
    out["full"] = _concat(out, ("forget", "retain1", "retain2"), "full")
    return out


def _concat(out: dict[str, list[Record]], names: tuple[str, ...], name: str) -> list[Record]:
    for part in names:
        if isinstance(out[part], UnavailableSplit):
            return UnavailableSplit(
                name,
                f"{name} is raw forget + retain1 + retain2 (MUSE's target training data) and "
                f"{out[part].reason}",  # type: ignore[attr-defined]
            )
    return [record for part in names for record in out[part]]


def _read_local(root: Path, name: str, stems: tuple[str, ...]) -> list[Any] | UnavailableSplit:
    for stem in stems:
        for suffix in (".json", ".json.gz"):
            path = root / f"{stem}{suffix}"
            if path.exists():  # a directory there is an error, never a silently missing split
                return _read_json(require_file(path, "MUSE data file"))
    tried = " or ".join(f"{s}.json[.gz]" for s in stems)
    key = name.split("_")[0] if name.startswith(("scal", "sust")) else name
    why = _NEEDED_FOR.get(key, f"the {name} evaluation needs it")
    return UnavailableSplit(
        name,
        f"{root} has no {tried} ({why}); point --data-dir at a complete copy of MUSE's "
        f"data/news folder, or leave it out to load {REPO} from the hub",
    )


def _read_json(path: Path) -> list[Any]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise UnlearnBenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, list):
        raise UnlearnBenchError(f"{path}: expected a JSON array, got {type(data).__name__}")
    return data


def _read_hub(repo: str, config: str, split: str, revision: str | None) -> list[Any]:
    """One (config, split) through ``datasets.load_dataset`` (the optional ``hub`` extra)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise UnlearnBenchError(
            "loading MUSE-News from the hub needs the 'datasets' package: "
            "pip install 'unlearn-bench[hub]', or pass --data-dir with a local copy"
        ) from None
    try:
        dataset = load_dataset(repo, config, split=split, revision=revision)
    except Exception as exc:  # datasets raises many types (network, missing config, schema)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(
            f"cannot load {repo} {config}/{split}: {first} (offline? pass --data-dir)"
        ) from None
    return [dict(row) for row in dataset]


def _text(row: Any, where: str) -> str:
    """A text part: a bare string (the authors' files) or a ``{"text": ...}`` row (the hub)."""
    value = row.get("text") if isinstance(row, dict) else row
    if not isinstance(value, str) or not value.strip():
        raise UnlearnBenchError(f"MUSE-News {where}: expected non-empty text")
    return value


def _field(row: Any, key: str, where: str) -> str:
    value = row.get(key) if isinstance(row, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise UnlearnBenchError(f"MUSE-News {where}: field {key!r} must be a non-empty string")
    return value


def _verbmem(row: Any, where: str) -> Record:
    return {"question": _field(row, "prompt", where), "answer": _field(row, "gt", where)}


def _qa(row: Any, where: str) -> Record:
    return {"question": _field(row, "question", where), "answer": _field(row, "answer", where)}


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Greedy chunks of whole paragraphs (blank-line separated) up to ``max_chars`` characters.

    A paragraph longer than ``max_chars`` is cut into pieces of that size. Every paragraph's
    characters land in exactly one chunk, in order; only the blank lines between chunks and
    whitespace-only paragraphs are dropped.
    """
    chunks: list[str] = []
    current = ""
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        while len(paragraph) > max_chars:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(paragraph[:max_chars])
            paragraph = paragraph[max_chars:]
        joined = f"{current}\n\n{paragraph}" if current else paragraph
        if len(joined) <= max_chars:
            current = joined
        else:
            chunks.append(current)
            current = paragraph
    if current:
        chunks.append(current)
    return chunks


def _train_chunks(rows: list[Any], name: str, max_chars: int) -> list[Record]:
    records: list[Record] = []
    for i, row in enumerate(rows):
        if (row.get("text") if isinstance(row, dict) else row) == "":
            # raw/forget[821] upstream is "": MUSE joins articles with blank lines, so an
            # empty one adds no training text; skipping it keeps the article indices.
            continue
        for j, chunk in enumerate(chunk_text(_text(row, f"{name}[{i}]"), max_chars)):
            records.append({"question": "", "answer": chunk, "article": i, "chunk": j})
    return records
