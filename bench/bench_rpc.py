"""podium.rpc vs oslo.messaging vs a raw pika echo, on memory:// and the local RabbitMQ.

    python bench/run.py rpc

Every rabbit:// server runs in its own process (spawned), the callers in this
one. Figures, each measured in the same run, the stacks in alternating rounds
(so drift in the shared broker and CPUs falls on all of them alike):

- sequential ``call`` round trip: calls/s, p50 and p99 in ms (one caller);
- ``cast`` throughput: casts/s until the server has run them all;
- ``call`` carrying a 10-field versioned object, echoed back (podium with
  ``podium.objects`` and its ``VersionedObjectSerializer``; oslo with
  ``oslo.versionedobjects`` and its serializer);
- concurrency: 16 caller threads against 2 server processes, calls/s and p99.

The raw pika echo (direct reply-to, one connection, no envelope) is the
practical limit of a pika-based client here. Ratios are printed at the end.
Environment knobs: PODIUM_BENCH_RABBIT_URL, PODIUM_BENCH_CALLS, PODIUM_BENCH_CASTS,
PODIUM_BENCH_CALLS_PER_THREAD, PODIUM_BENCH_WORKERS (podium server max_workers, 16).
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from _common import (
    bench_signing,
    delete_queues,
    interleaved,
    make_keys,
    percentiles_ms,
    run_callers,
)

URL = os.environ.get("PODIUM_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
SEQ_CALLS = int(os.environ.get("PODIUM_BENCH_CALLS", "1500"))
CASTS = int(os.environ.get("PODIUM_BENCH_CASTS", "2000"))
THREADS = 16
CALLS_PER_THREAD = int(os.environ.get("PODIUM_BENCH_CALLS_PER_THREAD", "60"))
SPAWN = multiprocessing.get_context("spawn")
PAYLOAD = {"name": "x" * 40, "n": 1}


# -- objects (built the same way in the caller and in the server processes) ----


def record_fields(f: Any) -> dict[str, Any]:
    """The benchmark object's fields, from either library's ``fields`` module (same names)."""
    return {
        "id": f.IntegerField(),
        "uuid": f.UUIDField(),
        "name": f.StringField(),
        "host": f.StringField(nullable=True),
        "memory_mb": f.IntegerField(),
        "vcpus": f.IntegerField(),
        "created_at": f.DateTimeField(),
        "tags": f.ListOfStringsField(),
        "locked": f.BooleanField(),
        "task_state": f.StringField(nullable=True),
    }


def podium_objects() -> tuple[Any, Any]:
    from podium.objects import VersionedObject, VersionedObjectRegistry, VersionedObjectSerializer
    from podium.objects import fields as f

    registry = VersionedObjectRegistry()

    @registry.register
    class BenchRecord(VersionedObject):
        VERSION = "1.0"
        fields = record_fields(f)

    return BenchRecord, VersionedObjectSerializer(registry=registry)


def oslo_objects() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_versionedobjects import base as obase
        from oslo_versionedobjects import fields as f

    @obase.VersionedObjectRegistry.register
    class BenchRecord(obase.VersionedObject):
        VERSION = "1.0"
        fields = record_fields(f)

    return BenchRecord, obase.VersionedObjectSerializer()


def record_values() -> dict[str, Any]:
    return {
        "id": 7,
        "uuid": str(uuid.UUID(int=7)),
        "name": "vm-7",
        "host": "compute-1",
        "memory_mb": 2048,
        "vcpus": 2,
        "created_at": datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=datetime.UTC),
        "tags": ["web", "prod"],
        "locked": False,
        "task_state": None,
    }


# -- endpoints -------------------------------------------------------------------


class Endpoint:
    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def tick(self, ctxt: Any) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_count(self, ctxt: Any, n: int) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.count >= n, timeout=120)
            return self.count

    def reset(self, ctxt: Any) -> None:
        with self.cond:
            self.count = 0


# -- server processes ----------------------------------------------------------


def podium_server(url: str, topic: str, server: str, ready: Any, stop: Any) -> None:
    signed_podium_server(url, topic, "", server, ready, stop)


def signed_podium_server(
    url: str, topic: str, keys_dir: str, server: str, ready: Any, stop: Any
) -> None:
    """A podium echo server; with ``keys_dir``, signing as conductor.<server> and requiring
    signatures from the keys there."""
    from podium.rpc import RPCServer, Sender, Target, get_transport

    _cls, serializer = podium_objects()
    signing = bench_signing(keys_dir, Sender("conductor", server)) if keys_dir else None
    transport = get_transport(url, signing=signing)
    with RPCServer(
        transport,
        Target(topic=topic, server=server),
        [Endpoint()],
        serializer=serializer,
        max_workers=int(os.environ.get("PODIUM_BENCH_WORKERS", "16")),
    ):
        ready.set()
        stop.wait()
    transport.cleanup()


def oslo_conf() -> Any:
    # Noise, not figures: oslo.messaging warns of a "leak" once 16 caller threads
    # wait for replies at once, and py-amqp of consumer cancellations that
    # arrive while the servers close their channels at the end.
    logging.getLogger("oslo_messaging._drivers.amqpdriver").setLevel(logging.ERROR)
    logging.getLogger("amqp").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_config import cfg
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing

    conf = cfg.ConfigOpts()
    conf([], project="podium-bench")
    conf.register_opts(tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")
    return conf


def oslo_transport(url: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging

    conf = oslo_conf()
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    return transport


def oslo_server(url: str, topic: str, server: str, ready: Any, stop: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging

        _cls, serializer = oslo_objects()
        transport = oslo_transport(url)
        srv = oslo_messaging.get_rpc_server(
            transport,
            oslo_messaging.Target(topic=topic, server=server),
            [Endpoint()],
            serializer=serializer,
        )
        srv.start()
        ready.set()
        stop.wait()
        srv.stop()
        srv.wait()
        transport.cleanup()


def raw_server(url: str, queue: str, ready: Any, stop: Any) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url.replace("rabbit://", "amqp://", 1)))
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)

    def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
        ch.basic_publish(
            "", props.reply_to, body, pika.BasicProperties(correlation_id=props.correlation_id)
        )
        ch.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_request)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.2)
    conn.close()


@contextmanager
def processes(target: Callable[..., None], *args: Any, count: int = 1) -> Iterator[None]:
    procs = []
    stops = []
    for i in range(count):
        ready, stop = SPAWN.Event(), SPAWN.Event()
        extra = () if target is raw_server else (f"s{i}",)
        proc = SPAWN.Process(target=target, args=(*args, *extra, ready, stop))
        proc.start()
        if not ready.wait(60):
            raise RuntimeError(f"{target.__name__} did not start")
        procs.append(proc)
        stops.append(stop)
    try:
        yield
    finally:
        for stop in stops:
            stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


# -- measuring -----------------------------------------------------------------


class Result:
    def __init__(self, label: str, rate: float, lat: list[float] | None = None) -> None:
        self.label = label
        self.rate = rate
        self.p50, self.p99 = percentiles_ms(lat) if lat else (None, None)

    def row(self) -> str:
        p50 = f"{self.p50:8.2f}" if self.p50 is not None else "       -"
        p99 = f"{self.p99:8.2f}" if self.p99 is not None else "       -"
        return f"  {self.label:<44} {self.rate:10.0f}/s  p50 {p50} ms  p99 {p99} ms"


class Stack:
    """One RPC stack, connected to its echo servers ``s0`` and ``s1``.

    ``call``, ``call_object`` and casts go to ``s0`` (one server); the
    concurrent callers go to the topic, which both servers share.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[], Any],
        call_object: Callable[[], Any] | None = None,
        cast: Callable[[], Any] | None = None,
        count_casts: Callable[[int], Any] | None = None,
        reset: Callable[[], Any] | None = None,
        call_any: Callable[[], Any] | None = None,
    ) -> None:
        self.name = name
        self.call = call
        self.call_object = call_object
        self.cast = cast
        self.count_casts = count_casts
        self.reset = reset
        self.call_any = call_any


def measure(stacks: list[Stack]) -> list[Result]:
    """Every figure for ``stacks``, each case measured in rounds alternating between them."""
    for stack in stacks:  # warm up connections and caches
        for _ in range(50):
            stack.call()
            if stack.call_object is not None:
                stack.call_object()
        if stack.call_any is not None:
            # Every caller thread's first call opens connections (podium's pool,
            # oslo's per-thread reply queues): setup, not a round trip.
            run_callers([lambda _i, c=stack.call_any: c() for _ in range(THREADS)], 5)
    results: list[Result] = []

    def add(
        suffix: str, cases: dict[str, list[Callable[[int], object]]], per: int, rounds: int = 5
    ) -> None:
        for label, measured in interleaved(cases, per, rounds).items():
            results.append(Result(f"{label}{suffix}", measured.rate, measured.latencies))

    # The broker's pace drifts over seconds; short rounds (100 calls) spread
    # each drift over every stack instead of landing it on one of them.
    seq_rounds = max(1, SEQ_CALLS // 100)
    add("call", {f"{s.name} ": [lambda _i, s=s: s.call()] for s in stacks}, SEQ_CALLS, seq_rounds)
    with_objects = [s for s in stacks if s.call_object is not None]
    add(
        ", 10-field object",
        {f"{s.name} call": [lambda _i, c=s.call_object: c()] for s in with_objects},
        SEQ_CALLS,
        seq_rounds,
    )
    results.extend(cast_throughput([s for s in stacks if s.cast is not None]))
    concurrent = [s for s in stacks if s.call_any is not None]
    add(
        f" {THREADS} callers x 2 servers",
        {s.name: [lambda _i, c=s.call_any: c() for _ in range(THREADS)] for s in concurrent},
        CALLS_PER_THREAD,
    )
    return results


def cast_throughput(stacks: list[Stack], rounds: int = 4) -> list[Result]:
    """Casts/s until the server has run them all, in rounds alternating between stacks."""
    spent = dict.fromkeys([s.name for s in stacks], 0.0)
    per_round = CASTS // rounds
    for index in range(rounds):
        shift = index % len(stacks) if stacks else 0
        for stack in stacks[shift:] + stacks[:shift]:
            assert stack.cast is not None and stack.count_casts is not None
            assert stack.reset is not None
            stack.reset()
            start = time.perf_counter()
            for _ in range(per_round):
                stack.cast()
            stack.count_casts(per_round)
            spent[stack.name] += time.perf_counter() - start
    return [Result(f"{name} cast", per_round * rounds / t) for name, t in spent.items()]


# -- the stacks ----------------------------------------------------------------


@contextmanager
def raw_stack() -> Iterator[Stack]:
    import pika

    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    with processes(raw_server, URL, queue):
        conn = pika.BlockingConnection(pika.URLParameters(URL.replace("rabbit://", "amqp://", 1)))
        ch = conn.channel()
        got: list[bytes] = []
        ch.basic_consume(
            "amq.rabbitmq.reply-to", lambda _c, _m, _p, body: got.append(body), auto_ack=True
        )
        body = b'{"method": "echo", "args": {"value": {"name": "' + b"x" * 40 + b'"}}}'
        props = pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="1")

        def call() -> None:
            ch.basic_publish("", queue, body, props)
            while not got:
                conn.process_data_events(time_limit=None)
            got.clear()

        try:
            yield Stack("raw pika echo (direct reply-to)", call)
        finally:
            conn.close()


def echo_stack(name: str, client: Any, ctxt: Any, record: Any) -> Stack:
    """The Stack of an RPC client of the echo servers (podium's and oslo's have one API)."""
    one = client.prepare(server="s0")
    return Stack(
        name,
        call=lambda: one.call(ctxt, "echo", value=PAYLOAD),
        call_object=lambda: one.call(ctxt, "echo", value=record),
        cast=lambda: one.cast(ctxt, "tick"),
        count_casts=lambda n: one.call(ctxt, "wait_count", n=n),
        reset=lambda: one.call(ctxt, "reset"),
        call_any=lambda: client.call(ctxt, "echo", value=PAYLOAD),
    )


@contextmanager
def podium_stack(
    url: str, label: str, in_process: bool, keys_dir: str | None = None
) -> Iterator[Stack]:
    """podium's echo stack; with ``keys_dir``, every message signed and checked (both ways)."""
    from podium.context import RequestContext
    from podium.rpc import RPCClient, RPCServer, Sender, Target, get_transport

    topic = f"bench-podium-{uuid.uuid4().hex[:8]}"
    record_cls, serializer = podium_objects()
    ctxt = RequestContext(user_id="bench", project_id="bench")
    if keys_dir is not None:
        make_keys(keys_dir, [Sender("conductor", name) for name in ("client", "s0", "s1")])
    transport = get_transport(
        url,
        signing=bench_signing(keys_dir, Sender("conductor", "client"))
        if keys_dir is not None
        else None,
    )
    try:
        with ExitStack() as servers:
            if in_process:
                for i in range(2):
                    server_transport = transport
                    if keys_dir is not None:
                        # The memory bus of the client's transport, each server with its key.
                        server_transport = get_transport(
                            url, signing=bench_signing(keys_dir, Sender("conductor", f"s{i}"))
                        )
                        servers.callback(server_transport.cleanup)
                    srv = RPCServer(
                        server_transport,
                        Target(topic=topic, server=f"s{i}"),
                        [Endpoint()],
                        serializer=serializer,
                    )
                    servers.enter_context(srv)
            elif keys_dir is not None:
                servers.enter_context(
                    processes(signed_podium_server, url, topic, keys_dir, count=2)
                )
            else:
                servers.enter_context(processes(podium_server, url, topic, count=2))
            client = RPCClient(transport, Target(topic=topic), timeout=60, serializer=serializer)
            yield echo_stack(f"podium {label}", client, ctxt, record_cls(**record_values()))
    finally:
        transport.cleanup()
        if url.startswith("rabbit"):
            _delete_queues([topic, f"{topic}.s0", f"{topic}.s1"])


@contextmanager
def oslo_stack() -> Iterator[Stack]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging

    topic = f"bench-oslo-{uuid.uuid4().hex[:8]}"
    record_cls, serializer = oslo_objects()
    transport = oslo_transport(URL)
    ctxt = {"user_id": "bench", "project_id": "bench"}
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=topic), timeout=60, serializer=serializer
    )
    try:
        with processes(oslo_server, URL, topic, count=2):
            yield echo_stack("oslo.messaging", client, ctxt, record_cls(**record_values()))
    finally:
        transport.cleanup()
        _delete_queues([topic, f"{topic}.s0", f"{topic}.s1"])


def _delete_queues(names: list[str]) -> None:
    delete_queues(URL, names)


def main() -> None:
    print(
        f"sequential calls {SEQ_CALLS}, casts {CASTS}, "
        f"{THREADS} threads x {CALLS_PER_THREAD} calls; rabbit at {URL}; "
        "stacks measured in alternating rounds"
    )
    rows: dict[str, Result] = {}
    bus = f"memory://bench-{uuid.uuid4().hex[:6]}"
    with (
        tempfile.TemporaryDirectory() as keys_dir,
        podium_stack(bus, "memory://", True) as memory,
        podium_stack(bus, "memory:// signed", True, keys_dir) as memory_signed,
    ):
        for result in measure([memory, memory_signed]):
            rows[result.label] = result
            print(result.row(), flush=True)
    with (
        tempfile.TemporaryDirectory() as keys_dir,
        raw_stack() as raw,
        podium_stack(URL, "rabbit://", False) as ours,
        podium_stack(URL, "rabbit:// signed", False, keys_dir) as signed,
        oslo_stack() as oslo,
    ):
        for result in measure([raw, ours, signed, oslo]):
            rows[result.label] = result
            print(result.row(), flush=True)

    def ratio(ours: str, theirs: str, target: float) -> None:
        value = rows[ours].rate / rows[theirs].rate
        verdict = "meets" if value >= target else "MISSES"
        print(f"  {ours:<44} / {theirs:<38} {value:5.2f}x  (target {target}x: {verdict})")

    print("ratios on rabbit://")
    ratio("podium rabbit:// call", "raw pika echo (direct reply-to) call", 0.8)
    ratio("podium rabbit:// call", "oslo.messaging call", 1.0)
    ratio("podium rabbit:// call, 10-field object", "oslo.messaging call, 10-field object", 3.0)
    ratio("podium rabbit:// cast", "oslo.messaging cast", 2.0)
    ratio("podium rabbit:// 16 callers x 2 servers", "oslo.messaging 16 callers x 2 servers", 2.0)
    print("signing every message (Ed25519, both ways) against none, same run")
    for figure in ("call", "call, 10-field object", "cast", "16 callers x 2 servers"):
        for bus_name in ("memory://", "rabbit://"):
            signed_rate = rows[f"podium {bus_name} signed {figure}"].rate
            plain_rate = rows[f"podium {bus_name} {figure}"].rate
            print(f"  {bus_name} {figure:<36} {signed_rate / plain_rate:5.2f}x")


if __name__ == "__main__":
    main()
