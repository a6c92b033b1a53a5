"""A content-addressed response cache in front of any backend.

Keys hash everything that determines an answer: the backend identity (the weights' content hash,
the tokenizer and chat-template hash, dtype, engine and its version), the request kind, the
request and its generation settings. Names never stand in for content: a name or path enters the
key only when no weights hash exists, and then together with the revision, so two models sharing
a name and revision cannot share answers. Each entry carries a sha256 over (key, value) that is
verified on read; a bad entry is dropped, recomputed and counted. A cache file SQLite cannot read
is moved aside and rebuilt. Stored under the user cache directory, never inside the package.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from unlearn_bench.backends.base import (
    Backend,
    BackendStats,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
)
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import cache_dir, exclusive

# Identity fields that do not change outputs and must not split a content-addressed key.
_IDENTITY_IGNORED = ("note", "model", "model_path")
# Bumped when the stored layout changes; an older table is moved aside, never misread.
_SCHEMA = "responses_v2"


def cache_key(identity: dict[str, Any], kind: str, request: Any) -> str:
    """sha256 of the canonical JSON of (identity, kind, request)."""
    ident = {k: v for k, v in identity.items() if k not in _IDENTITY_IGNORED}
    if not ident.get("weights_sha256"):
        # No content hash: the name, path and revision are all we have, and all are kept
        # (a revision such as "main" is shared by every hub model, so it never suffices alone).
        ident["model"] = identity.get("model")
        ident["model_path"] = identity.get("model_path")
    payload = json.dumps([ident, kind, asdict(request)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_checksum(key: str, value: str) -> str:
    """sha256 binding a stored value to its key: an edited or moved value fails it."""
    return hashlib.sha256(f"{key}\0{value}".encode()).hexdigest()


class ResponseCache:
    """A tiny key-value store: one SQLite table of (key, JSON value, checksum)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped = 0
        self.rebuilt = False
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            # SQLite serialises ordinary writes itself; moving a bad file aside is ours to
            # serialise, or two processes would each move the other's fresh file away.
            lock = self.path.with_name(self.path.name + ".lock")
            with exclusive(lock, f"response cache {self.path}", wait=True):
                try:
                    self._db = self._open()  # another process may have rebuilt it meanwhile
                except sqlite3.DatabaseError as exc:
                    self._db = self._rebuild(exc)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {_SCHEMA} "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL)"
        )
        db.execute(f"SELECT count(*) FROM {_SCHEMA}").fetchone()
        return db

    def _rebuild(self, exc: Exception) -> sqlite3.Connection:
        """Move an unreadable cache file aside (kept for inspection) and start an empty one."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        self.path.replace(aside)
        print(
            f"warning: response cache {self.path} unreadable ({exc}); moved to {aside} "
            "and rebuilt empty",
            file=sys.stderr,
        )
        self.rebuilt = True
        return self._open()

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """Verified values for the keys present; entries failing their checksum are dropped."""
        found: dict[str, Any] = {}
        bad: list[str] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, value, checksum FROM {_SCHEMA} WHERE key IN ({marks})", chunk
            )
            for key, value, checksum in rows:
                if checksum != entry_checksum(key, value):
                    bad.append(key)
                    continue
                try:
                    found[key] = json.loads(value)
                except ValueError:
                    bad.append(key)
        if bad:
            with self._db:
                self._db.executemany(f"DELETE FROM {_SCHEMA} WHERE key = ?", [(k,) for k in bad])
            self.dropped += len(bad)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        """Store values with their checksums (replacing any earlier entry of the key)."""
        rows = []
        for key, value in items.items():
            text = json.dumps(value)
            rows.append((key, text, entry_checksum(key, text)))
        try:
            with self._db:
                self._db.executemany(f"INSERT OR REPLACE INTO {_SCHEMA} VALUES (?, ?, ?)", rows)
        except sqlite3.OperationalError as exc:  # disk full, read-only file system
            raise UnlearnBenchError(
                f"cannot write the response cache {self.path}: {exc} (free space there, point "
                "UNLEARN_BENCH_CACHE elsewhere or run with --no-cache)"
            ) from None

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()


class CachedBackend:
    """Wraps a backend; only cache misses reach it, in one batched call per kind."""

    def __init__(self, inner: Backend, cache: ResponseCache | None = None) -> None:
        self.inner = inner
        self.cache = cache or ResponseCache()
        self.capabilities = inner.capabilities
        self.hits = 0
        self.misses = 0

    @property
    def dropped(self) -> int:
        """Entries that failed their checksum and were recomputed in this session."""
        return self.cache.dropped

    @property
    def stats(self) -> BackendStats:
        """The wrapped backend's counters (a fresh one if it keeps none)."""
        return getattr(self.inner, "stats", BackendStats())

    @property
    def routing(self) -> str | None:
        """The wrapped backend's routing rule (backend ``auto``), if it has one."""
        return getattr(self.inner, "routing", None)

    def identity(self) -> dict[str, Any]:
        """The wrapped backend's identity (which is part of every cache key)."""
        return self.inner.identity()

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The wrapped backend's chat template."""
        return self.inner.chat_prompt(messages, add_generation_prompt)

    def _through(
        self, kind: str, requests: list[Any], compute: Any, encode: Any, decode: Any
    ) -> list[Any]:
        identity = self.inner.identity()
        keys = [cache_key(identity, kind, r) for r in requests]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        # One computation per distinct missing key: a request repeated within a call is
        # computed once.
        first_index = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [i for k, i in first_index.items() if k not in found]
        self.hits += len(requests) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute([requests[i] for i in missing])
            new = {keys[i]: encode(v) for i, v in zip(missing, fresh, strict=True)}
            self.cache.put_many(new)
            found.update(new)
        return [decode(found[k]) for k in keys]

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Token scores, from the cache where present, else from the wrapped backend."""
        return self._through(
            "logprobs", requests, self.inner.logprobs, TokenScores.to_json, TokenScores.from_json
        )

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """Generations, from the cache where present, else from the wrapped backend."""
        return self._through("generate", requests, self.inner.generate, str, str)

    def close(self) -> None:
        """Close the wrapped backend and the cache."""
        self.inner.close()
        self.cache.close()
