"""PostgreSQL and MariaDB servers of a test's own, speaking TLS only.

Each is made from the installed server in a fresh temporary directory (data,
socket, certificates, log), on a free port of loopback, and removed with it at
the end. TCP clients must use TLS and show a certificate of the test's
authority; the test itself administers the server over its Unix socket.
Neither server runs as root: under root, files and processes belong to the
server's usual account (``postgres``, ``mysql``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from faults_node import _alive, _environ_of, free_port

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
#: In each server's environment: the pytest process that owns it, and its directory.
_OWNER_ENV = "PODIUM_DBTLS_OWNER_PID"
_BASE_ENV = "PODIUM_DBTLS_BASE"


def reap_orphaned_servers() -> list[int]:
    """SIGKILL servers of these tests whose pytest process died without stopping them,
    and remove their directories; never a server of a run still going, nor another's."""
    reaped = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ_of(int(entry.name))
        owner, base = env.get(_OWNER_ENV, ""), env.get(_BASE_ENV, "")
        if not owner.isdigit() or _alive(int(owner)):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.name), signal.SIGKILL)
            reaped.append(int(entry.name))
        if Path(base).name.startswith("podium-dbtls-"):
            shutil.rmtree(base, ignore_errors=True)
    return reaped


class ServerMissing(Exception):
    """The server, or an account to run it as, is not installed here."""


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def write_cert(ca: trustme.CA, where: Path, name: str, *identities: str, **kw: Any) -> CertFiles:
    """A certificate of ``ca`` for ``identities``, its key, and the authority, as PEM files."""
    issued = ca.issue_cert(*identities, **kw)
    files = CertFiles(where / "ca.pem", where / f"{name}.pem", where / f"{name}.key")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files


def _account(name: str) -> pwd.struct_passwd | None:
    """The account to run a server as: ``name`` under root, else the caller."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start ({process.returncode}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready in {_START_TIMEOUT:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Server:
    """What both servers share: the directory, the account, the process, the cleanup."""

    account_name = ""

    def __init__(self, ca: trustme.CA) -> None:
        account = _account(self.account_name)
        if account is None:
            raise ServerMissing(f"no {self.account_name!r} account to run the server as")
        self.account = account
        # Not under pytest's base temp: root's is closed to the server's account.
        self.base = Path(tempfile.mkdtemp(prefix="podium-dbtls-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.base / "server.log"
        self.tls = write_cert(ca, self.base, "server", "127.0.0.1")
        self.chown(self.base, *self.base.iterdir())

    def chown(self, *paths: Path) -> None:
        for path in paths:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def run(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """``argv`` as the server's account, its output in the log."""
        with open(self.log, "ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.account.pw_uid if os.geteuid() == 0 else None,
                group=self.account.pw_gid if os.geteuid() == 0 else None,
                extra_groups=[] if os.geteuid() == 0 else None,
                env={
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LC_ALL": "C",
                    _OWNER_ENV: str(os.getpid()),
                    _BASE_ENV: str(self.base),
                },
                cwd=self.base,
                start_new_session=True,  # a Ctrl-C of pytest reaches the fixture, not the server
                **kw,
            )

    def run_to_end(self, argv: list[str], what: str) -> None:
        process = self.run(argv)
        if process.wait(_START_TIMEOUT) != 0:
            raise RuntimeError(f"{what} failed ({process.returncode}):\n{_tail(self.log)}")

    def close(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            # SIGTERM: both servers stop at once, closing their clients' connections.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT)
        shutil.rmtree(self.base, ignore_errors=True)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _version_key(path: str) -> int:
    version = Path(path).parents[1].name
    return int(version) if version.isdigit() else 0


class PostgresServer(_Server):
    """``hostssl ... cert``: a TCP client needs TLS and a certificate whose common
    name is its user name; a plain TCP connection is rejected."""

    account_name = "postgres"
    backend = "postgresql"

    def start(self) -> None:
        bin_dir = _postgres_bin()
        if bin_dir is None:
            raise ServerMissing("PostgreSQL is not installed (no postgres binary)")
        data = self.base / "data"
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        self.run_to_end(
            [*initdb, "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"], "initdb"
        )
        (data / "pg_hba.conf").write_text(
            "local   all all              trust\n"
            "hostssl all all 127.0.0.1/32 cert\n"
            "host    all all 127.0.0.1/32 reject\n"
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.base),
            "ssl": "on",
            "ssl_cert_file": str(self.tls.cert),
            "ssl_key_file": str(self.tls.key),
            "ssl_ca_file": str(self.tls.ca),
            "fsync": "off",
            "max_connections": "30",
            "shared_buffers": "16MB",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self.process = self.run(argv)
        _wait_until(self._answers, self.process, "PostgreSQL", self.log)
        self.admin("CREATE ROLE podium LOGIN", "CREATE DATABASE podium OWNER podium")

    def _answers(self) -> bool:
        import psycopg

        try:
            self.admin("SELECT 1")
        except psycopg.OperationalError:
            return False  # not listening yet, or "the database system is starting up"
        return True

    def admin(self, *statements: str) -> None:
        """``statements`` as the superuser, over the Unix socket."""
        import psycopg

        with psycopg.connect(
            host=str(self.base), port=self.port, user="postgres", dbname="postgres",
            autocommit=True, connect_timeout=5,
        ) as connection:  # fmt: skip
            for statement in statements:
                connection.execute(statement.encode())


class MariaDBServer(_Server):
    """``require_secure_transport``: no plain TCP client, whoever it is (``anyone``
    has no requirement of its own); the user ``podium`` must show a certificate
    of the authority (``REQUIRE X509``)."""

    account_name = "mysql"
    backend = "mysql"
    password = "S3c@retPW"

    def start(self) -> None:
        server = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:/usr/local/sbin")
        install = shutil.which("mariadb-install-db")
        if server is None or install is None:
            raise ServerMissing("MariaDB is not installed (no mariadbd, mariadb-install-db)")
        self.socket = self.base / "mysqld.sock"
        common = [
            "--no-defaults",
            f"--datadir={self.base / 'data'}",
            f"--user={self.account.pw_name}",
            "--skip-name-resolve",
        ]
        self.run_to_end(
            [install, *common, "--auth-root-authentication-method=normal", "--skip-test-db"],
            "mariadb-install-db",
        )
        self.process = self.run(
            [
                server,
                *common,
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'mysqld.pid'}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                f"--ssl-ca={self.tls.ca}",
                f"--ssl-cert={self.tls.cert}",
                f"--ssl-key={self.tls.key}",
                "--require-secure-transport=ON",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ]
        )
        _wait_until(self._answers, self.process, "MariaDB", self.log)
        self.admin(
            f"CREATE USER podium@'%' IDENTIFIED BY '{self.password}' REQUIRE X509",
            "CREATE DATABASE podium CHARACTER SET utf8mb4",
            "GRANT ALL ON podium.* TO podium@'%'",
            # Asked nothing of, yet TCP without TLS is still refused to it.
            f"CREATE USER anyone@'%' IDENTIFIED BY '{self.password}'",
        )

    def _answers(self) -> bool:
        # The socket is listened on once the server is ready for connections.
        # (Not a PyMySQL connection: a failed one leaves its socket to the GC.)
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def admin(self, *statements: str) -> None:
        """``statements`` as root, over the Unix socket."""
        import pymysql

        connection = pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=5)
        with contextlib.closing(connection), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


class ServerWithoutTls:
    """A fake PostgreSQL or MariaDB server that offers no TLS, as one whose TLS an
    attacker on the way strips would: PostgreSQL answers the client's SSLRequest
    with ``N``; MariaDB greets without the SSL capability. Nothing more."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(30)
                with contextlib.suppress(OSError):
                    self._greet(connection)
                    while connection.recv(4096):  # until the client gives up
                        pass

    def _greet(self, connection: socket.socket) -> None:
        if self.backend == "postgresql":
            connection.recv(8)  # SSLRequest: length, 80877103
            connection.sendall(b"N")
            return
        # Protocol 41, secure connection, plugin auth; no SSL (0x800).
        capabilities = 0x0000_0200 | 0x0000_8000 | 0x0008_0000
        payload = (
            b"\x0a5.5.5-10.11.0-MariaDB-fake\x00"
            + struct.pack("<I", 1)
            + b"abcdefgh\x00"
            + struct.pack("<HBHH", capabilities & 0xFFFF, 33, 2, capabilities >> 16)
            + bytes([21])
            + bytes(10)
            + b"ijklmnopqrst\x00"
            + b"mysql_native_password\x00"
        )
        connection.sendall(len(payload).to_bytes(3, "little") + b"\x00" + payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self._listener.close()
        self._thread.join(30)
