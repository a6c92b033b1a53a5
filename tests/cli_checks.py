"""Shared checks of the bad-input suites: a command's files and its one-line error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def file_tree(root: Path) -> dict[str, str]:
    """Every file under root with its content hash (empty when root is absent)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_one_clear_line(
    code: int, out: pytest.CaptureResult[str], words: list[str], name: str
) -> None:
    """Non-zero exit, no traceback, one ``unlearn-bench: error:`` line holding every word."""
    err = out.err.strip()
    assert code != 0, name
    assert "Traceback" not in out.err + out.out
    assert err.startswith("unlearn-bench: error:") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
