"""Helpers of the faults suite: server processes, a load of callers, and counts.

The server side (:func:`serve`) runs in children started with
``multiprocessing`` spawn, so this module imports nothing from pytest. What a
server ran is appended to a log file of its own, one ``os.write`` per line: a
process killed with SIGKILL loses nothing it wrote, and a request it ran twice
shows twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from conductor_process import ConductorProcess
from podium.exceptions import MessagingError
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport

SPAWN = multiprocessing.get_context("spawn")
#: A file to which every test's summary line is appended, when set.
REPORT_ENV = "PODIUM_FAULTS_REPORT"

#: What a call may overrun its deadline by: the clean-up after it.
GRACE = 1.0


# -- the server side (runs in spawned children) ----------------------------------------


class FaultEndpoint:
    """``echo`` for calls, ``record`` for casts, ``nap`` for a handler that takes a while."""

    def __init__(self, name: str, log_path: str) -> None:
        self.name = name
        self._fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _log(self, kind: str, value: Any) -> None:
        os.write(self._fd, f"{kind} {value}\n".encode())

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def record(self, ctxt: Any, value: str) -> None:
        self._log("cast", value)

    def nap(self, ctxt: Any, value: str, seconds: float) -> list[Any]:
        self._log("start", value)
        threading.Event().wait(seconds)
        self._log("done", value)
        return [self.name, value]


def serve(
    url: str,
    topic: str,
    name: str,
    log_path: str,
    ready: Any,
    stop: Any,
    max_workers: int = 4,
    max_message_bytes: int | None = None,
) -> None:
    kwargs = {} if max_message_bytes is None else {"max_message_bytes": max_message_bytes}
    transport = get_transport(url, **kwargs)
    server = RPCServer(
        transport,
        Target(topic=topic, server=name),
        [FaultEndpoint(name, log_path)],
        max_workers=max_workers,
    )
    server.start()
    ready.set()
    stop.wait()
    server.stop()
    server.wait()
    transport.cleanup()


# -- the parent side -------------------------------------------------------------------


class ServerProcesses:
    """RPC servers in spawned processes; what each ran is in ``<dir>/<name>.<n>.log``."""

    def __init__(self, url: str, topic: str, log_dir: Path) -> None:
        self.url = url
        self.topic = topic
        self.log_dir = log_dir
        self.procs: dict[str, tuple[Any, Any]] = {}
        self._started = 0

    def start(self, name: str, *, max_workers: int = 4, **kwargs: Any) -> Any:
        self._started += 1
        log_path = self.log_dir / f"{name}.{self._started}.log"
        log_path.touch()
        ready, stop = SPAWN.Event(), SPAWN.Event()
        proc = SPAWN.Process(
            target=serve,
            args=(self.url, self.topic, name, str(log_path), ready, stop),
            kwargs={"max_workers": max_workers, **kwargs},
            name=f"faults-server-{name}",
        )
        proc.start()
        self.procs[name] = (proc, stop)
        deadline = time.monotonic() + 60
        while not ready.wait(0.2):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"server {name} did not start (exit code {proc.exitcode})")
        return proc

    def kill(self, name: str) -> None:
        proc, _stop = self.procs.pop(name)
        proc.kill()  # SIGKILL: no clean-up, no ack of what it holds
        proc.join(30)

    def stop_all(self) -> None:
        for proc, stop in self.procs.values():
            if proc.is_alive():
                stop.set()
        for proc, _stop in self.procs.values():
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
        self.procs.clear()

    def lines(self) -> list[tuple[str, str, str]]:
        """Every ``(server, kind, value)`` the servers logged, in file order."""
        found = []
        for path in sorted(self.log_dir.glob("*.log")):
            server = path.name.split(".", 1)[0]
            for line in path.read_text().splitlines():
                kind, _, value = line.partition(" ")
                found.append((server, kind, value))
        return found

    def repeated_in_one_log(self, kind: str) -> list[tuple[str, str]]:
        """``(log file, value)`` of each ``kind`` line one server process wrote twice."""
        repeated = []
        for path in sorted(self.log_dir.glob("*.log")):
            seen = Counter(
                value
                for line in path.read_text().splitlines()
                for k, _, value in [line.partition(" ")]
                if k == kind
            )
            repeated += [(path.name, value) for value, n in seen.items() if n > 1]
        return repeated

    def values(self, kind: str) -> Counter[str]:
        return Counter(value for _server, k, value in self.lines() if k == kind)


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    if not poll(predicate, timeout):
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


@dataclass
class Outcome:
    kind: str  # "call" or "cast"
    caller: int
    value: str
    started: float
    seconds: float
    error: str | None  # None: returned; else the exception's type name
    podium: bool = True  # the error was a podium MessagingError


@dataclass
class Load:
    """Caller threads, each calling ``echo`` (and casting ``record``) in a loop.

    Every call and cast is timed and its outcome kept; a call that never
    returns shows as still in flight when the load stops.
    """

    transport: Transport
    topic: str
    callers: int = 4
    timeout: float = 10.0
    casts: bool = True
    outcomes: list[Outcome] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # casts that cast() returned for
    wrong_replies: list[tuple[str, Any]] = field(default_factory=list)
    foreign: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"faults-caller-{n}", daemon=True)
            for n in range(self.callers)
        ]
        self.in_flight: dict[int, tuple[str, float]] = {}

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, n: int) -> None:
        client = RPCClient(self.transport, Target(topic=self.topic), timeout=self.timeout)
        i = 0
        while not self._stop.is_set():
            i += 1
            value = f"{n}-{i}"
            reply = self._timed("call", n, value, client.call, {}, "echo", value=value)
            if reply is _FAILED:
                self._stop.wait(0.05)  # NoConsumer fails at once: no busy loop on 2 cores
            elif reply != value:
                with self._lock:
                    self.wrong_replies.append((value, reply))
            if self.casts and not self._stop.is_set():
                done = self._timed("cast", n, value, client.cast, {}, "record", value=value)
                if done is not _FAILED:
                    with self._lock:
                        self.sent.append(value)

    def _timed(
        self, kind: str, n: int, tag: str, action: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> Any:
        started = time.monotonic()
        self.in_flight[n] = (kind, started)
        error: str | None = None
        podium = True
        result: Any = _FAILED
        try:
            result = action(*args, **kw)
        except MessagingError as exc:
            error = type(exc).__name__
        except Exception as exc:
            error, podium = f"{type(exc).__module__}.{type(exc).__name__}", False
            with self._lock:
                self.foreign.append(exc)
        finally:
            self.in_flight.pop(n, None)
        outcome = Outcome(kind, n, tag, started, time.monotonic() - started, error, podium)
        with self._lock:
            self.outcomes.append(outcome)
        return result

    # -- what the test waits for -----------------------------------------------

    def ok_calls_since(self, since: float) -> Counter[int]:
        with self._lock:
            return Counter(
                o.caller
                for o in self.outcomes
                if o.kind == "call" and o.error is None and o.started >= since
            )

    def wait_all_succeed_since(self, since: float, timeout: float, calls: int = 1) -> float:
        """Wait until every caller had ``calls`` calls started after ``since`` succeed."""

        def done() -> bool:
            dead = [t.name for t in self._threads if not t.is_alive()]
            if dead:
                raise AssertionError(f"caller threads died: {dead}")
            return all(self.ok_calls_since(since)[n] >= calls for n in range(self.callers))

        wait_until(
            done,
            timeout,
            f"every caller to succeed {calls} time(s) again",
        )
        return time.monotonic() - since

    def stop(self, join_timeout: float) -> list[tuple[int, str, float]]:
        """Stop the callers; return those still stuck: (caller, kind, seconds so far)."""
        self._stop.set()
        deadline = time.monotonic() + join_timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        return [(n, kind, now - started) for n, (kind, started) in dict(self.in_flight).items()]

    # -- counts ------------------------------------------------------------------

    def of(self, kind: str) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.kind == kind]

    def late(self, kind: str, bound: float) -> list[Outcome]:
        return [o for o in self.of(kind) if o.seconds > bound]

    def errors(self, kind: str) -> Counter[str]:
        return Counter(o.error for o in self.of(kind) if o.error is not None)


_FAILED: Any = object()


def summary(name: str, **counts: Any) -> str:
    """One line for ``pytest -s``: ``FAULTS name: key=value ...``."""
    parts = " ".join(f"{k}={_fmt(v)}" for k, v in counts.items())
    line = f"FAULTS {name}: {parts}"
    print(f"\n{line}")
    report = os.environ.get(REPORT_ENV)
    if report:  # CI may keep the counts of every run
        with open(report, "a") as out:
            out.write(line + "\n")
    return line


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, Counter | dict):
        return "{" + ",".join(f"{k}:{v}" for k, v in sorted(value.items())) + "}"
    return str(value)


# -- raw AMQP --------------------------------------------------------------------------


def raw_connection(amqp_url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(amqp_url))


def drain(amqp_url: str, queue: str) -> list[tuple[dict[str, Any], bytes]]:
    """Every message in ``queue`` with its headers, taken off it."""
    found = []
    with contextlib.closing(raw_connection(amqp_url)) as conn:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append((dict(props.headers or {}), body))


def queue_depth(amqp_url: str, queue: str) -> int:
    with contextlib.closing(raw_connection(amqp_url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


# -- a conductor process ---------------------------------------------------------------


def start_conductors(
    transport_url: str, database_urls: Iterable[tuple[str, str]], topic: str
) -> list[ConductorProcess]:
    """Start conductors ``(host, database_url)`` side by side (each takes a second or two)."""
    started: list[ConductorProcess] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(host: str, database_url: str) -> None:
        try:
            conductor = ConductorProcess(transport_url, database_url, topic, host)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            started.append(conductor)

    threads = [threading.Thread(target=one, args=pair) for pair in database_urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        for conductor in started:
            conductor.kill()
        raise errors[0]
    return sorted(started, key=lambda c: c.host)
