"""Unlearning methods, one file each, registered at the definition (see registry/index.py)."""

from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, TokenBatch, UnlearnBatch


def build_method(name: str, args: dict[str, Any]) -> tuple[type[Method], Any]:
    """The registered method class and its config built from ``args`` (a bad arg is an error)."""
    method_cls = METHODS.get(name)
    try:
        method_config = method_cls.config_cls(**args)
    except TypeError as exc:
        raise UnlearnBenchError(f"method {name!r}: bad args {args}: {exc}") from None
    return method_cls, method_config


__all__ = ["METHODS", "Method", "TokenBatch", "UnlearnBatch", "build_method"]
