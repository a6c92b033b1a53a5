"""One small registry type for metrics, methods, scorers, backends and data sources.

Entries are registered once, by decorator at their definition. So that listing names never
imports torch, the package's registries start from a generated index of those decorators
(``registry/index.py``, written by ``registry.scan``; a test fails when it is stale).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry.index import INDEX

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; lazy entries are imported on first lookup."""

    def __init__(self, kind: str, *, indexed: bool = False) -> None:
        self.kind = kind
        # An indexed registry starts from the generated index (registry/index.py), which names
        # where each entry of this kind is defined; the entry's decorator replaces the string
        # when its module is first imported.
        self._entries: dict[str, T | str] = dict(INDEX.get(kind, {})) if indexed else {}

    def register(self, name: str) -> Callable[[T], T]:
        """Register the decorated object under ``name``; a second registration is an error."""

        def decorator(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not obj and not isinstance(existing, str):
                raise UnlearnBenchError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"``, imported only when ``name`` is first looked up."""
        if ":" not in target:
            raise ValueError(f"lazy target must look like 'module:attr', got {target!r}")
        self._entries.setdefault(name, target)

    def get(self, name: str) -> T:
        """Return the entry, importing it if lazy; unknown names get a suggestion."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(self._entries))
            raise UnlearnBenchError(f"unknown {self.kind} {name!r}{hint}; known: {known}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, attr = entry.split(":", 1)
            module = importlib.import_module(module_name)
            # Importing the module normally runs the decorator, which replaces the string.
            resolved = self._entries[name]
            entry = resolved if not isinstance(resolved, str) else getattr(module, attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Every registered name, sorted (no import)."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
