"""One registration per thing: the lazy index is exactly what the decorators register."""

from __future__ import annotations

import ast
import importlib

import pytest

from unlearn_bench.registry import Registry
from unlearn_bench.registry.index import INDEX
from unlearn_bench.registry.scan import registrations, registry_kinds, render, scan


def test_index_matches_the_decorators() -> None:
    assert scan() == INDEX, "the registry index is stale: run `make index`"


def test_index_file_is_what_the_generator_writes() -> None:
    from unlearn_bench.registry.scan import INDEX_FILE

    assert INDEX_FILE.read_text() == render(INDEX)


SOURCE = """
THINGS: Registry[Any] = Registry("thing", indexed=True)

@THINGS.register("alpha")
class Alpha: ...

@sample_metric("beta", version=1, needs=[], higher_is_better=None)
def beta(sample): ...

@other.register("gamma")
def gamma(): ...

def helper(): ...
"""


def test_scanner_reads_registry_and_metric_decorators() -> None:
    trees = {"pkg.mod": ast.parse(SOURCE)}
    kinds = registry_kinds(trees)
    assert kinds == {"THINGS": "thing"}
    assert registrations(trees, kinds) == {
        "metric": {"beta": "pkg.mod:beta"},
        "thing": {"alpha": "pkg.mod:Alpha"},
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("@THINGS.register(NAME)\nclass A: ...", "must be a literal"),
        ('@THINGS.register("a")\nclass A: ...\n@THINGS.register("a")\nclass B: ...', "twice"),
    ],
)
def test_scanner_rejects_computed_and_repeated_names(source: str, message: str) -> None:
    trees = {"pkg.mod": ast.parse('THINGS = Registry("thing")\n' + source)}
    with pytest.raises(ValueError, match=message):
        registrations(trees, registry_kinds(trees))


def test_indexed_entries_resolve_to_what_their_module_registers() -> None:
    # Importing a light module's definitions replaces the index strings with the objects its
    # decorators registered (torch-free kinds only, to keep this fast).
    from unlearn_bench.metrics import DERIVED_METRICS, METRICS
    from unlearn_bench.tasks import DATA_SOURCES

    for registry, kind in ((METRICS, "metric"), (DERIVED_METRICS, "derived metric")):
        for name, target in INDEX[kind].items():
            module, attr = target.split(":")
            entry = registry.get(name)
            assert entry.name == name and entry.fn is getattr(importlib.import_module(module), attr)
    assert DATA_SOURCES.get("builtin:synthetic_people").__name__ == "synthetic_people"


def test_unindexed_registry_starts_empty() -> None:
    assert Registry("metric").names() == []
    assert "probability" in Registry("metric", indexed=True)
