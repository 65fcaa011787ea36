"""What a shared de-dup store costs an RPC server, on rabbit:// (run.py suite ``dedup``).

The same podium echo stack as bench_rpc.py (two server processes), once with
the default in-process store and once with servers sharing a
``RedisDedupStore`` (and a ``DatabaseDedupStore`` on PostgreSQL), measured in
alternating rounds; plus the store's own claim + done round trips, timed in a
loop from this process.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from _common import bench_database, interleaved, percentiles_ms
from bench_rpc import (
    SEQ_CALLS,
    URL,
    Endpoint,
    Result,
    _delete_queues,
    cast_throughput,
    echo_stack,
    podium_objects,
    processes,
    record_values,
)

REDIS_URL = os.environ.get("PODIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LOOP = int(os.environ.get("PODIUM_BENCH_DEDUP_LOOP", "2000"))


def _store(kind: str, prefix: str) -> Any:
    if kind == "redis":
        from podium.rpc import RedisDedupStore

        return RedisDedupStore(REDIS_URL, prefix=prefix)
    if kind == "database":
        from podium.db import Database
        from podium.db.dedup import DatabaseDedupStore

        return DatabaseDedupStore(Database(os.environ["PODIUM_BENCH_DEDUP_DB"], pool_size=16))
    return None


def dedup_server(url: str, topic: str, kind: str, server: str, ready: Any, stop: Any) -> None:
    from podium.rpc import RPCServer, Target, get_transport

    _cls, serializer = podium_objects()
    transport = get_transport(url)
    with RPCServer(
        transport,
        Target(topic=topic, server=server),
        [Endpoint()],
        serializer=serializer,
        dedup=_store(kind, f"bench:{topic}:"),
    ):
        ready.set()
        stop.wait()
    transport.cleanup()


@contextmanager
def stack(kind: str) -> Iterator[Any]:
    from podium.context import RequestContext
    from podium.rpc import RPCClient, Target, get_transport

    topic = f"bench-dedup-{uuid.uuid4().hex[:8]}"
    record_cls, serializer = podium_objects()
    transport = get_transport(URL)
    try:
        with processes(dedup_server, URL, topic, kind, count=2):
            client = RPCClient(transport, Target(topic=topic), timeout=60, serializer=serializer)
            ctxt = RequestContext(user_id="bench", project_id="bench")
            yield echo_stack(f"podium, {kind} store", client, ctxt, record_cls(**record_values()))
    finally:
        transport.cleanup()
        _delete_queues([topic, f"{topic}.s0", f"{topic}.s1"])


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _bench_database() -> Iterator[str | None]:
    if not _up(5432):
        yield None
        return
    with bench_database() as url:
        yield url


def store_loop(kind: str) -> None:
    """claim + done per request, sequential, from this process: the store's own cost."""
    store = _store(kind, f"bench:loop:{uuid.uuid4().hex[:6]}:")
    reply = {"result": {"name": "x" * 40, "n": 1}, "failure": None, "ending": True}
    owner = "bench"
    for i in range(100):  # warm up the connection
        store.claim(f"w{i}", owner)
        store.done(f"w{i}", owner, reply)
    latencies = []
    start = time.perf_counter()
    for i in range(LOOP):
        t0 = time.perf_counter()
        store.claim(f"r{i}", owner)
        store.done(f"r{i}", owner, reply)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    p50, p99 = percentiles_ms(latencies)
    print(
        f"{kind} store, claim + done in a loop: {LOOP / elapsed:.0f}/s, "
        f"p50 {p50 * 1000:.0f} us, p99 {p99 * 1000:.0f} us",
        flush=True,
    )
    store.close()


def main() -> None:
    if not _up(6379):
        print("Redis is not reachable on 127.0.0.1:6379: nothing to measure")
        return
    with _bench_database() as database_url:
        kinds = ["memory", "redis"]
        if database_url is not None:
            os.environ["PODIUM_BENCH_DEDUP_DB"] = database_url
            kinds.append("database")
        for kind in kinds[1:]:
            store_loop(kind)
        print(f"sequential calls {SEQ_CALLS}, stacks in alternating rounds; rabbit at {URL}")
        with ExitStack() as stacks:
            measured = [stacks.enter_context(stack(kind)) for kind in kinds]
            for each in measured:
                for _ in range(50):
                    each.call()
            cases = {f"{s.name} call": [lambda _i, s=s: s.call()] for s in measured}
            rows = [
                Result(label, measured.rate, measured.latencies)
                for label, measured in interleaved(
                    cases, SEQ_CALLS, max(1, SEQ_CALLS // 100)
                ).items()
            ]
            rows.extend(cast_throughput(measured))
        for row in rows:
            print(row.row(), flush=True)
