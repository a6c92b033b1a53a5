"""``python -m unlearn_bench``: the CLI.

A real ``__main__`` module matters for vLLM on CPU, whose spawned workers re-import it.
"""

import sys

from unlearn_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
