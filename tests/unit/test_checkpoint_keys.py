"""Checkpoint keys change with the training code, never with its docstrings or comments."""

import importlib
import linecache
import sys

import pytest

from unlearn_bench.train.stages import code_fingerprint

NAME = "ckpt_key_probe_module"
BASE = '"""Doc."""\n\n\ndef loss(x):\n    """Negative NLL."""\n    return -x  # ascend\n'


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        (tmp_path / f"{NAME}.py").write_text(source)
        sys.modules.pop(NAME, None)
        importlib.invalidate_caches()
        linecache.clearcache()
        return code_fingerprint(NAME)

    yield write
    sys.modules.pop(NAME, None)


def test_docstrings_and_comments_do_not_change_the_key(write_module):
    before = write_module(BASE)
    reworded = BASE.replace("Negative NLL.", "Gradient ascent.").replace("# ascend", "# go up")
    assert write_module(reworded) == before


def test_a_changed_line_of_code_changes_the_key(write_module):
    before = write_module(BASE)
    assert write_module(BASE.replace("return -x", "return -2 * x")) != before


def test_a_function_without_a_docstring_still_hashes(write_module):
    assert write_module("def f():\n    return 1\n") != write_module("def f():\n    return 2\n")
