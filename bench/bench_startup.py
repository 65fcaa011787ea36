"""How fast the ``podium`` command starts, against the bare interpreter and libraries.

A person waits for ``podium --help`` and for every client command; the floor
is what the same process costs with nothing of podium in it: the interpreter
alone, the interpreter importing click (what any click CLI pays), and a plain
``httpx.get`` of the same API URL (what any Python HTTP client pays).

Each row is the median wall time of RUNS fresh processes, the commands run in
alternating rounds so that a busy moment of the machine hits them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

RUNS = int(os.environ.get("PODIUM_BENCH_STARTUP_RUNS", "15"))
PODIUM = str(Path(sys.executable).with_name("podium"))


def _time(argv: Sequence[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def _measure(cases: dict[str, list[str]], env: dict[str, str]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(RUNS):
        for name, argv in cases.items():
            samples[name].append(_time(argv, env))
    return {name: statistics.median(times) for name, times in samples.items()}


def _has_command(name: str) -> bool:
    from podium.cli import _subcommands

    return name in _subcommands()


def main() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    python = sys.executable
    cases = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import click'": [python, "-c", "import click"],
        "podium --help": [PODIUM, "--help"],
    }
    if _has_command("server"):
        cases["podium server --help"] = [PODIUM, "server", "--help"]
    medians = _measure(cases, env)
    if _has_command("flavor"):
        medians.update(_client_round_trip(env))
    floor = medians["python -c pass"]
    print(f"median of {RUNS} fresh processes each, alternating")
    print(f"{'command':<44} {'ms':>7} {'- python':>9}")
    for name, seconds in medians.items():
        print(f"{name:<44} {seconds * 1000:7.1f} {(seconds - floor) * 1000:+9.1f}")
    if "podium flavor list" in medians:
        ratio = medians["podium flavor list"] / medians["python + httpx.get (same URL)"]
        print(f"podium flavor list / a bare httpx.get of the same API: {ratio:.2f}x")


def _client_round_trip(env: dict[str, str]) -> dict[str, float]:
    """``podium flavor list`` against a running all-in-one, beside a bare httpx GET of it."""
    import tempfile

    from podium.cloud.allinone import AllInOne
    from podium.cloud.config import CloudConfig

    token = "bench-token"
    config = CloudConfig(api_listen="127.0.0.1:0", api_tokens=f"{token}=bench:bench:admin")
    with (
        tempfile.TemporaryDirectory() as scratch,
        AllInOne(config, f"sqlite:///{scratch}/bench.sqlite") as cloud,
    ):
        assert cloud.api is not None
        client_env = {**env, "PODIUM_API_URL": cloud.api.url, "PODIUM_TOKEN": token}
        bare = (
            "import httpx, sys; "
            "httpx.get(sys.argv[1] + '/flavors', headers={'X-Auth-Token': sys.argv[2]})"
            ".raise_for_status()"
        )
        return _measure(
            {
                "python + httpx.get (same URL)": [
                    sys.executable,
                    "-c",
                    bare,
                    cloud.api.url,
                    token,
                ],
                "podium flavor list": [PODIUM, "flavor", "list"],
            },
            client_env,
        )


if __name__ == "__main__":
    main()
