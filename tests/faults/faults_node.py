"""A RabbitMQ node of a test's own, which the test may stop, kill and freeze.

Started from the installed RabbitMQ on free ports, with its data, logs, Erlang
cookie and (empty) plugin list under a directory of its own; the machine's
broker is never touched. See ``conftest.py`` for the fixtures.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where Debian's (and RabbitMQ's generic unix) layout keeps the scripts that
#: run a node in the foreground as the calling user; /usr/sbin/rabbitmq-server
#: is a wrapper that switches to the rabbitmq user.
SERVER_SCRIPT_ENV = "PODIUM_TEST_RABBITMQ_SERVER"
_DEFAULT_SERVER_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
_NODE_PREFIX = "podium-faults-"
_OWNER_ENV = "PODIUM_FAULTS_OWNER_PID"
_START_TIMEOUT = 90.0
#: The pytest timeout of a test that starts the node again (twice at most): each
#: start may take up to _START_TIMEOUT on a loaded machine, beyond the suite's
#: 120 s safety net; the test's own deadlines are what it asserts.
RESTARTING_TEST_TIMEOUT = 2 * _START_TIMEOUT + 180


def find_server_script() -> Path | None:
    """The ``rabbitmq-server`` script that runs a node in the foreground, if installed."""
    candidates = [os.environ.get(SERVER_SCRIPT_ENV), _DEFAULT_SERVER_SCRIPT]
    on_path = shutil.which("rabbitmq-server")
    if on_path:
        # A wrapper (Debian's rabbitmq-script-wrapper) sits beside the real scripts.
        candidates.append(str(Path(os.path.realpath(on_path)).with_name("rabbitmq-server")))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def _ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections as their source port."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default; IANA's starts at 49152


def free_port(taken: tuple[int, ...] = ()) -> int:
    """A free port below the ephemeral range, which the node keeps across restarts.

    Between a stop and the next start nobody listens on it; were it an
    ephemeral port (what binding port 0 gives), any outgoing connection on
    the machine could take it as its source port meanwhile, and the node
    would fail to start with eaddrinuse (seen on a busy machine).
    """
    ephemeral = _ephemeral_ports()
    candidates = list(range(max(1024, ephemeral.start - 20000), ephemeral.start))
    random.SystemRandom().shuffle(candidates)
    for port in candidates:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphaned_nodes() -> list[int]:
    """SIGKILL nodes of this suite whose pytest process died without stopping them.

    Only beam processes started by this fixture (their environment names a
    ``podium-faults-`` node and an owner pid) whose owner is gone: never the
    machine's broker, never a node of a run still going.
    """
    reaped = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("beam"):
                continue
        except OSError:
            continue
        env = _environ_of(int(entry.name))
        owner = env.get(_OWNER_ENV, "")
        if not env.get("RABBITMQ_NODENAME", "").startswith(_NODE_PREFIX) or not owner.isdigit():
            continue
        if _alive(int(owner)):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.name), signal.SIGKILL)
            reaped.append(int(entry.name))
    return reaped


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: the authority clients must present certificates of."""

    ca: Path
    cert: Path
    key: Path

    def listener(self, port: int) -> str:
        # Mutual TLS: the node also verifies the client's certificate.
        return (
            f"listeners.ssl.default = 127.0.0.1:{port}\n"
            f"ssl_options.cacertfile = {self.ca}\n"
            f"ssl_options.certfile = {self.cert}\n"
            f"ssl_options.keyfile = {self.key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
        )


class RabbitNode:
    """A RabbitMQ node of the test's own: start, stop, SIGKILL, freeze and thaw it.

    Stops and kills keep the data directory and the port, so durable queues
    and persistent messages survive them as they would on a real host.
    """

    def __init__(self, base: Path, server_script: Path, tls: TlsFiles | None = None) -> None:
        self.base = base
        self.server_script = server_script
        self.ctl_script = server_script.with_name("rabbitmqctl")
        self.name = f"{_NODE_PREFIX}{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port((self.port,))
        self.tls_port = free_port((self.port, self.dist_port))
        self.url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        home = base / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")  # not the machine's node's settings
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # Keep restarts quick: a stop or a kill happens several times a run.
            "collect_statistics_interval = 60000\n"
            "disk_free_limit.absolute = 50MB\n"
            + ("" if tls is None else tls.listener(self.tls_port))
        )
        self.ctl_env = {
            **os.environ,
            "HOME": str(home),  # the cookie: ours, not root's nor the machine node's
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }
        self.env = {
            **self.ctl_env,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "beam.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            _OWNER_ENV: str(os.getpid()),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.beam_pid: int | None = None
        self.frozen = False
        self.startups: list[float] = []  # seconds each start took, until AMQP answered
        self._console = base / "console.log"

    # -- life cycle ------------------------------------------------------------

    def start(self) -> float:
        """Start the node and wait until it serves AMQP; return the seconds it took."""
        assert self.process is None or self.process.poll() is not None, "already running"
        began = time.monotonic()
        with open(self._console, "ab") as console:
            self.process = subprocess.Popen(
                [str(self.server_script)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest reaches the fixture, not the node
            )
        deadline = began + _START_TIMEOUT
        while not _accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.name} did not listen:\n{self.log_tail()}")
            time.sleep(0.1)
        self.ctl("await_startup", "--timeout", str(int(_START_TIMEOUT)))
        self.beam_pid = self._find_beam_pid()
        took = time.monotonic() - began
        self.startups.append(took)
        return took

    def _find_beam_pid(self) -> int:
        pid = int((self.base / "beam.pid").read_text().strip())
        # Never signal a process that is not this very node.
        if _environ_of(pid).get("RABBITMQ_NODENAME") != self.name:
            raise RuntimeError(f"pid {pid} in the pid file is not node {self.name}")
        return pid

    def stop(self) -> None:
        """A clean stop (``rabbitmqctl stop``); the data directory stays."""
        self.thaw()
        self.ctl("stop")
        self._wait_gone()

    def kill(self) -> None:
        """SIGKILL this node's beam process (no clean shutdown), then start it again."""
        assert self.beam_pid is not None
        os.kill(self.beam_pid, signal.SIGKILL)
        self.frozen = False
        self._wait_gone()
        self.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the node: sockets stay open, nothing answers (a hung VM, a long GC)."""
        assert self.beam_pid is not None
        self.frozen = True
        os.kill(self.beam_pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.frozen and self.beam_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.beam_pid, signal.SIGCONT)
        self.frozen = False

    @contextlib.contextmanager
    def frozen_for_a_while(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        self.thaw()
        if not self.running:
            if self.process is not None:
                self._wait_gone()
            self.start()

    def close(self) -> None:
        self.thaw()
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                self.ctl("stop", timeout=30)
        if self.beam_pid is not None and _environ_of(self.beam_pid).get("RABBITMQ_NODENAME"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.beam_pid, signal.SIGKILL)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(30)

    def _wait_gone(self) -> None:
        assert self.process is not None
        self.process.wait(60)
        # The shell script may end before its beam does.
        deadline = time.monotonic() + 60
        while self.beam_pid is not None and _environ_of(self.beam_pid).get("RABBITMQ_NODENAME"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.name} did not exit")
            time.sleep(0.05)
        self.beam_pid = None

    # -- tools -------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 120) -> str:
        assert not self.frozen, "rabbitmqctl would hang on a frozen node"
        done = subprocess.run(
            [str(self.ctl_script), "-q", "-n", self.name, *args],
            env=self.ctl_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name} failed ({done.returncode}): "
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        texts = []
        for path in [self._console, *sorted((self.base / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                tail = path.read_text().splitlines()[-lines:]
                texts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(texts)
