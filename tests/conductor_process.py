"""``podium conductor`` in a child process, for the tests that need a real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def conductor_argv(transport_url: str, database_url: str, host: str, workers: int = 4) -> list[str]:
    return [
        *(sys.executable, "-m", "podium", "conductor", "--workers", str(workers)),
        *("--transport-url", transport_url, "--database-url", database_url, "--host", host),
    ]


class ConductorProcess:
    """Started and waited for until it says it is ready."""

    def __init__(
        self,
        transport_url: str,
        database_url: str,
        topic: str,
        host: str,
        *,
        workers: int = 4,
        log_level: str = "WARNING",
    ) -> None:
        self.host = host
        env = dict(os.environ, PODIUM_CONDUCTOR_TOPIC=topic, PODIUM_LOG_LEVEL=log_level)
        self.process = subprocess.Popen(
            conductor_argv(transport_url, database_url, host, workers),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "podium-conductor ready" not in line:
            self.process.kill()
            _out, err = self.process.communicate(timeout=30)
            raise AssertionError(f"conductor {host} did not start: {line}{err}")

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Send ``sig`` and return the conductor's log (stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate(timeout=30)
        return err
