"""Data sources a task file can name: each returns ``{split name: [record, ...]}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.tasks import DATA_SOURCES


@DATA_SOURCES.register("builtin:synthetic_people")
def synthetic_people(options: dict[str, Any], data_dir: Path | None) -> dict[str, list[dict]]:
    """The project's own fictitious people (no download); ``data_dir`` is not used."""
    from unlearn_bench.data.synthetic_people import people_dataset

    try:
        return people_dataset(**options)
    except TypeError as exc:
        raise UnlearnBenchError(f"builtin:synthetic_people: bad option: {exc}") from None
    except ValueError as exc:
        raise UnlearnBenchError(f"builtin:synthetic_people: {exc}") from None
