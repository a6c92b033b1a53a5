"""A split a data source knows about but cannot provide here, with the reason why.

A benchmark copy can be partial (the local MUSE-News copy lacks the raw retain and holdout
articles) or a split can exist only for a stage the harness cannot run on that data (training
a vision-language model on MedForget). Dropping such splits would make every later lookup fail
with a generic "split not provided"; returning an empty list would let a stage run on nothing.
Instead the source returns an ``UnavailableSplit``: it is present in the split mapping (so a
task whose roles name it still loads, and evaluation-only runs go ahead), and the first real
use of its records (``len``, iteration, indexing, slicing) raises ``UnlearnBenchError`` with
the reason, e.g. "finetuning the target needs raw/retain1, which ... lacks".
"""

from __future__ import annotations

from typing import Any, NoReturn, SupportsIndex

from unlearn_bench.errors import UnlearnBenchError


class UnavailableSplit(list):  # type: ignore[type-arg]
    """An empty stand-in list whose every read raises the stored reason.

    ``bool()`` is True so that "is this split empty?" checks do not mistake it for an empty
    split and report the wrong problem; they get the real reason on first use instead.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__()
        self.name = name
        self.reason = reason

    def _refuse(self) -> NoReturn:
        raise UnlearnBenchError(f"split {self.name!r} is unavailable: {self.reason}")

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        self._refuse()

    def __iter__(self) -> Any:
        self._refuse()

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        self._refuse()

    def __repr__(self) -> str:
        return f"UnavailableSplit({self.name!r}, {self.reason!r})"


def is_unavailable(records: object) -> bool:
    """True for an ``UnavailableSplit`` (checked without touching its records)."""
    return isinstance(records, UnavailableSplit)
