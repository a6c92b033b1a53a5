"""TOFU data (Maini et al. 2024, hub dataset ``locuslab/TOFU``, MIT): hub or local copy.

Each hub *config* (``full``, ``retain90``, ``forget10_perturbed``, ``holdout10`` ...) becomes one
split of the same name. Without a data directory every config is fetched with
``datasets.load_dataset("locuslab/TOFU", config, split="train")``; with one, ``<config>.json``
is read from it. Local files may be several JSON arrays written back to back (what
``Dataset.to_json`` writes in batches; ``full.json`` and ``retain9*.json`` of the copy in
``../shared/data/tofu`` are like that), a single array, or JSON lines: all three are one stream
of JSON values to a ``raw_decode`` loop.

Records are normalised to the harness's shape: ``question``, ``answer`` and, on evaluation
files, ``paraphrased_answer`` and ``perturbed_answer`` (a list). ``real_authors_perturbed`` and
``world_facts_perturbed`` have no paraphrase; TOFU scores the answer itself as a~ there, so
``paraphrased_answer`` is set to the answer and ``paraphrase_is_answer`` records that (the
evaluator scores identical requests once, so this costs no forward pass).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import require_file
from unlearn_bench.tasks import DATA_SOURCES

REPO = "locuslab/TOFU"
SOURCE_NAME = "hub:locuslab/TOFU"

#: Every config of the hub dataset (each has one split, "train").
CONFIGS: tuple[str, ...] = (
    "full", "retain90", "retain95", "retain99", "forget01", "forget05", "forget10",
    "forget01_perturbed", "forget05_perturbed", "forget10_perturbed", "retain_perturbed",
    "real_authors", "real_authors_perturbed", "world_facts", "world_facts_perturbed",
    "holdout01", "holdout05", "holdout10",
)  # fmt: skip

Record = dict[str, Any]
_OPTIONS = frozenset({"configs", "repo", "revision"})


@DATA_SOURCES.register("hub:locuslab/TOFU")
def load_tofu(options: dict[str, Any], data_dir: Path | None) -> dict[str, list[Record]]:
    """The task's data source ``hub:locuslab/TOFU``: ``{config: [record, ...]}``.

    Options: ``configs`` (which configs to load; default all), ``repo`` (hub id or a local
    folder laid out like the hub repository; default ``locuslab/TOFU``), ``revision``.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise UnlearnBenchError(
            f"{SOURCE_NAME}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(_OPTIONS))}"
        )
    configs = options.get("configs") or list(CONFIGS)
    if isinstance(configs, str):
        configs = [configs]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        raise UnlearnBenchError(
            f"{SOURCE_NAME}: unknown config {bad[0]!r}; known: {', '.join(CONFIGS)}"
        )
    splits: dict[str, list[Record]] = {}
    for config in configs:
        if data_dir is not None:
            raw = read_local_config(Path(data_dir), config)
        else:
            raw = read_hub_config(options.get("repo", REPO), config, options.get("revision"))
        splits[config] = [normalise_record(r, config, i) for i, r in enumerate(raw)]
    return splits


def read_json_values(path: Path) -> list[Any]:
    """Every top-level JSON value in ``path``, with arrays flattened into their items.

    Handles one array, several arrays back to back, and JSON lines alike: the decoder is run
    in a loop from wherever the previous value ended (``json.JSONDecoder.raw_decode``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UnlearnBenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return values
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise UnlearnBenchError(
                f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from None
        values.extend(value if isinstance(value, list) else [value])


def read_local_config(data_dir: Path, config: str) -> list[Any]:
    """``<data_dir>/<config>.json`` (the hub repository's file names)."""
    if not data_dir.is_dir():
        raise UnlearnBenchError(f"TOFU data directory not found: {data_dir}")
    return read_json_values(require_file(data_dir / f"{config}.json", f"TOFU config {config!r}"))


def read_hub_config(repo: str, config: str, revision: str | None) -> list[Any]:
    """One config through ``datasets.load_dataset`` (the optional ``hub`` extra)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise UnlearnBenchError(
            "loading TOFU from the hub needs the 'datasets' package: "
            "pip install 'unlearn-bench[hub]', or pass --data-dir with a local copy"
        ) from None
    try:
        dataset = load_dataset(repo, config, split="train", revision=revision)
    except Exception as exc:  # datasets raises many types (network, missing config, schema)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(
            f"cannot load {repo} config {config!r}: {first} (offline? pass --data-dir)"
        ) from None
    return [dict(row) for row in dataset]


def _text(record: Record, key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UnlearnBenchError(f"{where}: field {key!r} must be a non-empty string")
    return value


def normalise_record(record: Any, config: str, index: int) -> Record:
    """Check one record and bring it to the harness's field names (see the module doc)."""
    where = f"TOFU {config}[{index}]"
    if not isinstance(record, dict):
        raise UnlearnBenchError(f"{where}: expected an object, got {type(record).__name__}")
    out = dict(record)
    _text(record, "question", where)
    answer = _text(record, "answer", where)
    if "perturbed_answer" in record:
        perturbed = record["perturbed_answer"]
        if (
            not isinstance(perturbed, list)
            or not perturbed
            or not all(isinstance(p, str) and p.strip() for p in perturbed)
        ):
            raise UnlearnBenchError(f"{where}: perturbed_answer must be a list of strings")
        if "paraphrased_answer" in record:
            _text(record, "paraphrased_answer", where)
        else:
            out["paraphrased_answer"] = answer
            out["paraphrase_is_answer"] = True
    return out
