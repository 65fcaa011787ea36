"""A ``podium`` service in a child process, started and waited for until it says ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence


class ServiceProcess:
    """``python -m podium <argv>``: ready once its first stdout line holds ``ready``.

    The log goes to a file, not a pipe: a busy service would otherwise block
    on a full pipe nobody reads until it stops.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        module: str = "podium",
    ) -> None:
        # ``module``: another entry point run the same way (an older release's service).
        self.argv = [sys.executable, "-m", module, *argv]
        # Lives as long as the process; stop() closes it.
        self._log = tempfile.TemporaryFile(mode="w+t")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        self.ready_line = self.process.stdout.readline()
        if " ready " not in self.ready_line and not self.ready_line.rstrip().endswith(" ready"):
            self.process.kill()
            self.process.wait(timeout=ready_timeout)
            raise AssertionError(
                f"{' '.join(argv)} did not start: {self.ready_line!r}\n{self.log()}"
            )

    def ready_value(self, key: str) -> str:
        """``value`` of ``key=value`` on the ready line."""
        for word in self.ready_line.split():
            name, _, value = word.partition("=")
            if name == key:
                return value
        raise KeyError(f"{key} not on the ready line {self.ready_line!r}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> str:
        return self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Send ``sig``, wait for the exit, return the log."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        text = self.log()
        self._log.close()
        return text
