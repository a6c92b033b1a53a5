"""``python -m unlearn_bench.cli``: the CLI, as launchers (torchrun, accelerate launch) start it."""

import sys

from unlearn_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
