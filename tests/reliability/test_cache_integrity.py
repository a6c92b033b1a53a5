"""The response cache never serves one model's answers for another, nor a tampered answer.

Two real tiny models share every name-like field (same folder, same name, revision "main", same
file sizes and modification times): their answers must never cross. Expected values come from
each model evaluated without any cache.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from tiny_model import build_tiny_model_dir

from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
from unlearn_bench.backends.cache import CachedBackend, ResponseCache, cache_key
from unlearn_bench.backends.hf import HFBackend

REQS = [ScoreRequest("What is the capital of France?", " The capital of France is Paris.")]


def _uncached(path: Path) -> list:
    backend = HFBackend(str(path), device="cpu", progress=False)
    return backend.logprobs(REQS)


def _swap_in(src: Path, dst: Path) -> None:
    """Replace dst's weights with src's, keeping size and restoring the old mtime."""
    weights = dst / "model.safetensors"
    old = weights.stat()
    shutil.copyfile(src / "model.safetensors", weights)
    assert weights.stat().st_size == old.st_size
    os.utime(weights, ns=(old.st_atime_ns, old.st_mtime_ns))


def test_two_models_sharing_every_name_never_share_answers(tmp_path: Path) -> None:
    a_src = build_tiny_model_dir(tmp_path / "a", seed=0)
    b_src = build_tiny_model_dir(tmp_path / "b", seed=1)
    truth_a, truth_b = _uncached(a_src), _uncached(b_src)
    assert truth_a != truth_b
    shared = tmp_path / "model"
    shutil.copytree(a_src, shared)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    first = CachedBackend(
        HFBackend(str(shared), device="cpu", revision="main", progress=False), cache
    )
    assert first.logprobs(REQS) == truth_a
    _swap_in(b_src, shared)
    second = CachedBackend(
        HFBackend(str(shared), device="cpu", revision="main", progress=False), cache
    )
    assert second.identity()["model"] == first.identity()["model"]
    assert second.logprobs(REQS) == truth_b
    assert second.hits == 0


def test_hub_models_at_the_same_revision_get_distinct_keys() -> None:
    req = GenerateRequest("q", 8)
    a = {"backend": "hf", "model": "org/a", "model_path": "org/a", "revision": "main"}
    b = {"backend": "hf", "model": "org/b", "model_path": "org/b", "revision": "main"}
    assert cache_key(a, "generate", req) != cache_key(b, "generate", req)


def test_tampered_entry_is_dropped_and_recomputed(tmp_path: Path, tiny_model_dir: Path) -> None:
    truth = _uncached(tiny_model_dir)
    path = tmp_path / "responses.sqlite"
    backend = CachedBackend(
        HFBackend(str(tiny_model_dir), device="cpu", progress=False), ResponseCache(path)
    )
    backend.logprobs(REQS)
    backend.close()
    db = sqlite3.connect(path)
    (table,) = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchone()
    (value,) = db.execute(f"SELECT value FROM {table}").fetchone()
    with db:
        db.execute(f"UPDATE {table} SET value = ?", (value.replace("-", "-1", 1),))
    db.close()
    again = CachedBackend(
        HFBackend(str(tiny_model_dir), device="cpu", progress=False), ResponseCache(path)
    )
    assert again.logprobs(REQS) == truth
    assert again.dropped == 1
    assert again.hits == 0


def test_garbled_cache_file_is_rebuilt(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = tmp_path / "responses.sqlite"
    for garbage in (b"this is not a database at all" * 40, b"SQLite format 3\x00" + b"\xff" * 50):
        path.write_bytes(garbage)
        cache = ResponseCache(path)
        assert cache.rebuilt
        backend = CachedBackend(HFBackend(str(tiny_model_dir), device="cpu", progress=False), cache)
        assert backend.logprobs(REQS) == _uncached(tiny_model_dir)
        backend.close()
    assert len(list(tmp_path.glob("responses.sqlite.corrupt-*"))) >= 1


def test_full_cache_disk_is_one_line_and_keeps_earlier_entries(tmp_path: Path) -> None:
    import pytest

    from unlearn_bench.errors import UnlearnBenchError

    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    cache.put_many({"a": [1.0, 2.0]})
    # SQLite's own size cap gives the very error a full disk gives (SQLITE_FULL), no root needed.
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(UnlearnBenchError, match=f"^cannot write the response cache {path}: "):
        cache.put_many({f"k{i}": "x" * 4096 for i in range(50)})
    assert cache.get_many(["a", "k0"]) == {"a": [1.0, 2.0]}  # the write rolled back whole
    cache.close()
