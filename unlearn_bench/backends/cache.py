"""A content-addressed response cache in front of any backend.

Keys hash (backend identity, request kind, request, generation parameters). The identity holds
the weights' sha256 (or hub revision), so a shared cache can never return model A's answer for
model B. Stored in SQLite under the user cache directory, never inside the package.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
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
from unlearn_bench.paths import cache_dir

# Identity fields that do not change outputs and must not split the cache.
_IDENTITY_IGNORED = ("note", "model", "model_path")


def cache_key(identity: dict[str, Any], kind: str, request: Any) -> str:
    """sha256 of the canonical JSON of (identity, kind, request)."""
    ident = {k: v for k, v in identity.items() if k not in _IDENTITY_IGNORED}
    if not ident.get("weights_sha256") and not ident.get("revision"):
        # Without a content hash or revision the path is all we have to tell models apart.
        ident["model_path"] = identity.get("model_path") or identity.get("model")
    payload = json.dumps([ident, kind, asdict(request)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """A tiny key-value store: one SQLite table, JSON values."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT)")

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk
            )
            found.update({k: json.loads(v) for k, v in rows})
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO responses VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in items.items()],
            )

    def close(self) -> None:
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
    def stats(self) -> BackendStats:
        return getattr(self.inner, "stats", BackendStats())

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
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
        return self._through(
            "logprobs", requests, self.inner.logprobs, TokenScores.to_json, TokenScores.from_json
        )

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        return self._through("generate", requests, self.inner.generate, str, str)

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
