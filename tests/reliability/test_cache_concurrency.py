"""A garbled response cache is rebuilt by one process only, under the cache's lock.

While one process holds the lock and rebuilds, a second process that finds the bad file waits;
it then opens the rebuilt file instead of moving it aside too (which used to leave the first
process writing into a file that had been moved away, losing its entries).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from unlearn_bench.backends.cache import ResponseCache
from unlearn_bench.paths import exclusive

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from pathlib import Path
from unlearn_bench.backends.cache import ResponseCache
cache = ResponseCache(Path(sys.argv[1]))
cache.put_many({"from-writer": {"value": 2}})
cache.close()
"""


def test_second_process_waits_for_the_rebuild_and_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    path.write_bytes(b"this is not an SQLite file" * 100)
    with exclusive(tmp_path / "responses.sqlite.lock", "response cache", wait=False):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], env={**os.environ, "PYTHONPATH": str(REPO)},
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2)  # ample for the writer to start and find the bad file
        assert writer.poll() is None  # waiting for the lock, not rebuilding on its own
        assert not list(tmp_path.glob("responses.sqlite.corrupt-*"))
        # The lock holder's rebuild, as ResponseCache does it: move aside, start a fresh file.
        path.replace(tmp_path / "responses.sqlite.corrupt-0")
        ours = ResponseCache(path)
        ours.put_many({"from-test": {"value": 1}})
        ours.close()
    err = writer.communicate(timeout=120)[1]
    assert writer.returncode == 0, err
    assert "waiting for pid" in err and "moved to" not in err
    assert len(list(tmp_path.glob("responses.sqlite.corrupt-*"))) == 1
    cache = ResponseCache(path)
    assert cache.get_many(["from-test", "from-writer"]) == {
        "from-test": {"value": 1}, "from-writer": {"value": 2},
    }  # fmt: skip
    assert cache.dropped == 0
