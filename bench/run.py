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
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SUITES = ["objects", "rpc", "floor", "conductor", "scale", "dedup", "cloud", "startup"]


@contextmanager
def _throwaway_vhost() -> Iterator[None]:
    """Run on a vhost of our own (when rabbitmqctl can make one), deleted at the end,
    so neither podium's queues nor the ones oslo.messaging leaves behind stay on the
    broker. The suites read the URL from PODIUM_BENCH_RABBIT_URL at import."""
    if "PODIUM_BENCH_RABBIT_URL" in os.environ or shutil.which("rabbitmqctl") is None:
        yield
        return
    vhost = f"podium-bench-{secrets.token_hex(4)}"

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", vhost)
    os.environ["PODIUM_BENCH_RABBIT_URL"] = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield
    finally:
        del os.environ["PODIUM_BENCH_RABBIT_URL"]
        with suppress(subprocess.SubprocessError):
            ctl("delete_vhost", vhost)


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
