"""Start ``tidings`` with an experimental change applied in memory, to measure it in place.

Not Tidings as shipped: each option replaces one function at start-up, so that the benchmark
can compare a change with the shipped code in the same run. The files in tidings/ are
untouched.

  --no-governor  tidings/delivery/governor.py ``Governor.retry_wait`` and ``fresh_wait``
                 always answer 0.0: retries and fresh attempts start whenever a slot is free,
                 whatever publishing is doing (the engine before the governor).

    .venv/bin/python bench/delivery/variant.py --no-governor -- serve --port 18441 ...
"""

from __future__ import annotations

import argparse
import sys

from tidings.delivery.governor import Governor


def never_wait(self: Governor, now: float) -> float:
    return 0.0


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--no-governor", action="store_true")
    args = parser.parse_args(argv[:split])
    if args.no_governor:
        Governor.retry_wait = never_wait  # type: ignore[method-assign]
        Governor.fresh_wait = never_wait  # type: ignore[method-assign]
    sys.argv = ["tidings", *argv[split + 1 :]]
    from tidings.cli import main as tidings_main

    tidings_main()


if __name__ == "__main__":
    main()
