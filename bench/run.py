"""Run podium's benchmarks side by side with the peers, in one process run.

    python bench/run.py                 # every suite
    python bench/run.py objects rpc     # some suites

Each suite is ``bench/bench_<name>.py`` with a ``main() -> None`` that prints
its own table (ops/s, latencies, ratio against the peers measured in the same
run). Benchmarks need the test extra installed (the peers are test-only
dependencies) and, for ``rabbit://`` figures, the local RabbitMQ.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITES = ["objects", "rpc", "floor", "conductor", "scale", "dedup", "cloud", "startup"]


@contextmanager
def _throwaway_vhost() -> Iterator[None]:
    """Run on a vhost of our own (when rabbitmqctl can make one), deleted at the end,
    so neither podium's queues nor the ones oslo.messaging leaves behind stay on the
    broker. The suites read the URL from PODIUM_BENCH_RABBIT_URL at import."""
    if "PODIUM_BENCH_RABBIT_URL" in os.environ:
        yield
        return
    from podium.testing import rabbit_vhost

    with rabbit_vhost(prefix="podium-bench") as url:
        os.environ["PODIUM_BENCH_RABBIT_URL"] = url
        try:
            yield
        finally:
            del os.environ["PODIUM_BENCH_RABBIT_URL"]


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    wanted = argv or SUITES
    unknown = [name for name in wanted if name not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    with _throwaway_vhost():
        for name in wanted:
            print(f"\n=== {name} ===", flush=True)
            importlib.import_module(f"bench_{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
