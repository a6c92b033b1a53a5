"""Strict reading: YAML that rejects duplicate keys, dataclasses that reject unknown keys.

PyYAML silently keeps the last of two equal keys; ``build_dataclass`` builds a (nested)
dataclass from a mapping and names the first unknown key or wrongly typed value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


def read_text_file(path: Path) -> str:
    """A file's UTF-8 text; missing, a directory, unreadable or not text is a one-line error."""
    if path.is_dir():
        raise UnlearnBenchError(f"{path} is a directory, expected a file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnlearnBenchError(f"file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UnlearnBenchError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise UnlearnBenchError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping; any problem becomes a one-line UnlearnBenchError naming the file."""
    path = Path(path)
    text = read_text_file(path)
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


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UnlearnBenchError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UnlearnBenchError(
            f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise UnlearnBenchError(f"{where}: missing required key {missing[0]!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UnlearnBenchError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        return _coerce(non_none[0], value, where)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value or {}, where)  # type: ignore[arg-type]
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UnlearnBenchError(f"{where} must be a mapping")
        return dict(value)
    if hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        # PyYAML reads "1e-5" (no dot) as a string; accept any numeric spelling.
        try:
            return float(value)
        except ValueError:
            raise UnlearnBenchError(f"{where} must be a number, got {value!r}") from None
    if hint in (int, str, bool) and type(value) is not hint:
        raise UnlearnBenchError(f"{where} must be {hint.__name__}, got {value!r}")
    if hint is float and not isinstance(value, float):
        raise UnlearnBenchError(f"{where} must be a number, got {value!r}")
    return value
