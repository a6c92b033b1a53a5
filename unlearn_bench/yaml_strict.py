"""YAML loading that rejects duplicate keys (PyYAML silently keeps the last one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from unlearn_bench.errors import UnlearnBenchError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key seen twice."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping; any problem becomes a one-line UnlearnBenchError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UnlearnBenchError(f"file not found: {path}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise UnlearnBenchError(f"{path}: invalid YAML: {detail}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UnlearnBenchError(f"{path}: must hold a mapping at top level")
    return data
