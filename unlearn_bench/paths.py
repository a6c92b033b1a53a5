"""Where the user cache lives, atomic file writes, and the locks that keep writers apart.

Locks are ``flock`` on a lock file: the kernel drops them when their process dies (kill -9
included), so a crashed run never leaves a lock that blocks the next one. The lock file holds
the holder's pid only to name it in messages; it is never deleted (deleting a lock file while
another process waits on it would let two holders in).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError


def cache_dir() -> Path:
    """``$UNLEARN_BENCH_CACHE``, else ``$XDG_CACHE_HOME/unlearn-bench``, else ``~/.cache/...``."""
    explicit = os.environ.get("UNLEARN_BENCH_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "unlearn-bench"
    return ensure_dir(root, "cache folder")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; a directory or nothing there is a one-line error naming it."""
    if path.is_dir():
        raise UnlearnBenchError(f"{what} {path} is a directory, expected a file")
    if not path.is_file():
        raise UnlearnBenchError(f"{what} not found: {path}")
    return path


def ensure_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and parents) as a folder; a file in the way is a one-line error.

    Called before any work for every folder a run writes to (runs, cache, leaderboards, site),
    so a wrong path fails in the first second, not when the first result is written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UnlearnBenchError(f"{what} {path} is not a folder (a file is in the way)") from None
    except OSError as exc:
        raise UnlearnBenchError(f"cannot create {what} {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UnlearnBenchError(f"{what} {path} is not writable")
    return path


_JSON_NAMES: dict[type, str] = {dict: "object", list: "array"}


def _damaged(path: Path, why: str) -> UnlearnBenchError:
    return UnlearnBenchError(f"{path} is damaged ({why}); restore it or delete what holds it")


def read_json(path: Path, kind: type = dict) -> Any:
    """The JSON value in ``path``, which must be a ``kind``; anything else names the file.

    Run records, group files and training logs are written atomically, so a file that does not
    parse was damaged after the fact (an editor, a full disk, a copy cut short): a one-line
    error naming it, never a traceback and never a guess at what it held.
    """
    try:
        value = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        expected = _JSON_NAMES.get(kind, kind.__name__)
        raise _damaged(path, f"expected a JSON {expected}, got {type(value).__name__}")
    return value


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file as an object; a bad line is an error naming file and line."""
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _damaged(path, f"line {number} is not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise _damaged(path, f"line {number} is not a JSON object")
        rows.append(row)
    return rows


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half.

    A refusal of the file system (disk full, read-only, no permission) is a one-line error
    naming the file; the old content, if any, is left as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UnlearnBenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UnlearnBenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _holder(fd: int) -> str:
    """The pid a lock file names (what the current holder wrote), or "?"."""
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


@contextmanager
def exclusive(lock_path: Path, what: str, *, wait: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the block.

    Taken by another process: ``wait`` blocks until it is released (saying so once on
    stderr); otherwise one-line UnlearnBenchError "<what> is in use by pid N".
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise UnlearnBenchError(f"{what} is in use by pid {_holder(fd)}") from None
            print(f"unlearn-bench: waiting for pid {_holder(fd)}, which is writing {what}",
                  file=sys.stderr, flush=True)  # fmt: skip
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
