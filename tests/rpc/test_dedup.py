"""De-dup stores: one contract for every store, and servers sharing one.

A request redelivered to *another* server (its first server died, or the
broker lost track of the ack) runs again unless the servers share a store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pika
import pytest
import redis

from deliveries import Delivery
from podium.db import Database, allow_db_access
from podium.db.dedup import DatabaseDedupStore
from podium.rpc import (
    Claim,
    DedupStore,
    MemoryDedupStore,
    RedisDedupStore,
    RPCClient,
    RPCDispatcher,
    RPCServer,
    Target,
    Transport,
    current_message_id,
    get_transport,
)
from podium.rpc import _codec as codec

if TYPE_CHECKING:
    from tests.conftest import Servers


class Sink:
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def record(self, ctxt: Any, value: Any) -> Any:
        with self.lock:
            self.seen.append(value)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(60)
        return {"recorded": value, "n": len(self.seen)}

    def whoami(self, ctxt: Any) -> str | None:
        return current_message_id()


def message(method: str = "record", call: bool = True, **args: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "method": method,
        "args": args or {"value": 1},
        "_unique_id": f"u-{uuid.uuid4().hex}",
    }
    if call:
        found.update(_msg_id=f"m-{uuid.uuid4().hex}", _reply_q="reply_x")
    return found


# -- the stores' contract -------------------------------------------------------

STORES = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    "database-sqlite",
    pytest.param("database-postgresql", marks=pytest.mark.postgres),
    pytest.param("database-mysql", marks=pytest.mark.mysql),
]


def _database(servers: Servers, backend: str) -> Database:
    allow_db_access()
    return Database(servers.migrated_url(backend, "dedup"))


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"podium-test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def make_store(kind: str, request: pytest.FixtureRequest, lease: float = 30.0) -> DedupStore:
    if kind == "memory":
        return MemoryDedupStore(size=8)
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisDedupStore(url, prefix=request.getfixturevalue("redis_prefix"), lease=lease)
    backend = kind.removeprefix("database-")
    database = _database(request.getfixturevalue("servers"), backend)
    request.addfinalizer(database.dispose)
    return DatabaseDedupStore(database, lease=lease)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[DedupStore]:
    store = make_store(str(request.param), request)
    yield store
    store.close()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        "database-sqlite",
        pytest.param("database-postgresql", marks=pytest.mark.postgres),
    ]
)
def shared_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_claim_running_done_and_release(store: DedupStore) -> None:
    key = f"id-{uuid.uuid4().hex}"
    assert store.claim(key, "a") == Claim("new")
    assert store.claim(key, "b") == Claim("running")
    store.done(key, "a", {"result": [1, "ü"], "_msg_id": "m"})
    assert store.claim(key, "b") == Claim("done", {"result": [1, "ü"], "_msg_id": "m"})

    cast = f"id-{uuid.uuid4().hex}"
    assert store.claim(cast, "a").state == "new"
    store.done(cast, "a", None)
    assert store.claim(cast, "b") == Claim("done", None)

    given_back = f"id-{uuid.uuid4().hex}"
    assert store.claim(given_back, "a").state == "new"
    store.release(given_back, "a")
    assert store.claim(given_back, "b").state == "new"


def test_the_memory_store_is_bounded() -> None:
    store = MemoryDedupStore(size=2)
    for key in ("a", "b", "c"):
        store.claim(key, "o")
        store.done(key, "o", None)
    assert store.claim("a", "o").state == "new"  # the oldest was forgotten
    assert store.claim("c", "o").state == "done"
    with pytest.raises(ValueError):
        MemoryDedupStore(size=0)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        "database-sqlite",
        pytest.param("database-postgresql", marks=pytest.mark.postgres),
        pytest.param("database-mysql", marks=pytest.mark.mysql),
    ],
)
def test_a_shared_claim_is_held_only_by_its_owner_and_lapses_with_its_lease(
    kind: str, request: pytest.FixtureRequest
) -> None:
    # Two servers on one store, by lease: a live one's outlasts the test however
    # slow the machine, a dead one's lapses soon.
    live = make_store(kind, request, lease=600.0)
    dying = make_store(kind, request, lease=0.3)
    held = f"id-{uuid.uuid4().hex}"
    assert live.claim(held, "a").state == "new"
    live.release(held, "someone-else")  # not theirs to release
    assert live.claim(held, "b").state == "running"
    lapsing = f"id-{uuid.uuid4().hex}"
    assert dying.claim(lapsing, "dead-server").state == "new"
    deadline = time.monotonic() + 30
    while (claim := live.claim(lapsing, "b")).state == "running":  # never renewed
        assert time.monotonic() < deadline, "the lease never lapsed"
        time.sleep(0.05)
    assert claim.state == "new"
    assert dying.claim(lapsing, "dead-server").state == "running"  # b holds it now
    live.close()
    dying.close()


@pytest.mark.redis
def test_redis_renews_only_its_own_claims(redis_url: str, redis_prefix: str) -> None:
    store = RedisDedupStore(redis_url, prefix=redis_prefix, lease=30)
    mine, theirs = "id-mine", "id-theirs"
    store.claim(mine, "a")
    store.claim(theirs, "b")
    for key in (mine, theirs):
        store.client.pexpire(redis_prefix + key, 1000)
    store.renew([mine, theirs], "a")
    assert store.client.pttl(redis_prefix + mine) > 1000
    assert store.client.pttl(redis_prefix + theirs) <= 1000
    store.close()


# -- servers --------------------------------------------------------------------


@pytest.fixture
def memory() -> Iterator[Transport]:
    with get_transport(f"memory://dedup-{uuid.uuid4().hex}") as transport:
        yield transport


def server(transport: Transport, sink: Sink, store: DedupStore | None = None) -> RPCServer:
    return RPCServer(transport, Target(topic="t", server=uuid.uuid4().hex[:6]), [sink], dedup=store)


def answer(delivery: Delivery) -> Any:
    assert delivery.settled == ["ack"] and len(delivery.replies) == 1
    return delivery.replies[0]["result"]


def test_the_endpoint_reads_the_request_id(memory: Transport) -> None:
    with RPCServer(memory, Target(topic="t", server="a"), [Sink()]):
        seen = RPCClient(memory, Target(topic="t"), timeout=10).call({}, "whoami")
    assert isinstance(seen, str) and seen
    assert current_message_id() is None
    _ctxt, result = RPCDispatcher([Sink()]).dispatch(
        {"method": "whoami", "args": {}, "_unique_id": "id-7"}
    )
    assert result == "id-7"


def test_without_a_shared_store_another_server_runs_a_redelivery_again(memory: Transport) -> None:
    sink = Sink()
    cast = message(call=False)
    for _ in range(2):
        server(memory, sink)._process(Delivery(cast))
    assert sink.seen == [1, 1]


def test_one_server_answers_its_own_redelivered_call_from_memory(memory: Transport) -> None:
    sink, call = Sink(), message(value=7)
    one = server(memory, sink)
    first, again = Delivery(call), Delivery(call)
    one._process(first)
    one._process(again)
    assert sink.seen == [7]
    assert answer(again) == answer(first) == {"recorded": 7, "n": 1}


def test_servers_sharing_a_store_run_a_redelivered_request_once(
    memory: Transport, shared_kind: str, request: pytest.FixtureRequest
) -> None:
    store = make_store(shared_kind, request)
    sink = Sink()
    cast, call = message(call=False, value="c"), message(value="k")
    deliveries = [Delivery(m) for m in (cast, cast, call, call)]
    for delivery in deliveries:
        server(memory, sink, store)._process(delivery)  # each on a server of its own
    assert sink.seen == ["c", "k"]
    assert [d.settled for d in deliveries] == [["ack"]] * 4
    assert answer(deliveries[3]) == answer(deliveries[2]) == {"recorded": "k", "n": 2}
    store.close()


class CountingStore(DedupStore):
    """A store that tells when a claim was found running."""

    def __init__(self, inner: DedupStore) -> None:
        self.inner = inner
        self.lease = inner.lease
        self.found_running = threading.Event()
        self.answered: list[str] = []

    def claim(self, unique_id: str, owner: str) -> Claim:
        claim = self.inner.claim(unique_id, owner)
        self.answered.append(claim.state)
        if claim.state == "running":
            self.found_running.set()
        return claim

    def renew(self, unique_ids: Any, owner: str) -> None:
        self.inner.renew(unique_ids, owner)

    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        self.inner.done(unique_id, owner, reply)

    def release(self, unique_id: str, owner: str) -> None:
        self.inner.release(unique_id, owner)


def test_a_redelivery_while_the_first_runs_waits_then_is_answered(
    memory: Transport, shared_kind: str, request: pytest.FixtureRequest
) -> None:
    store = CountingStore(make_store(shared_kind, request))
    sink = Sink()
    sink.gate = threading.Event()
    call = message(value="slow")
    first, again = Delivery(call), Delivery(call)
    a, b = server(memory, sink, store), server(memory, sink, store)
    running = threading.Thread(target=a._process, args=(first,))
    running.start()
    assert sink.entered.wait(60)
    waiting = threading.Thread(target=b._process, args=(again,))
    waiting.start()
    assert store.found_running.wait(60)  # b saw the live claim: it waits, neither runs nor drops
    assert again.settled == []
    sink.gate.set()
    running.join(60)
    waiting.join(60)
    assert sink.seen == ["slow"]
    assert answer(again) == answer(first)


@pytest.mark.redis
def test_a_request_whose_server_died_runs_once_its_lease_lapses(
    memory: Transport, redis_url: str, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_url, prefix=redis_prefix, lease=0.3)
    call = message(value="orphan")
    assert store.claim(call["_unique_id"], "a-server-killed-mid-request").state == "new"
    sink = Sink()
    delivery = Delivery(call)
    server(memory, sink, store)._process(delivery)  # waits out the dead server's lease
    assert sink.seen == ["orphan"]
    assert answer(delivery) == {"recorded": "orphan", "n": 1}


def test_a_failure_inside_the_server_gives_the_claim_back(memory: Transport) -> None:
    class Exploding(RPCServer):
        def _handle(self, incoming: Any) -> None:
            if len(sink.seen) == 0:
                sink.seen.append("first try")
                self._seen.take(incoming, incoming.message["_unique_id"])
                raise RuntimeError("boom after the claim")
            super()._handle(incoming)

    sink = Sink()
    store = MemoryDedupStore()
    exploding = Exploding(memory, Target(topic="t", server="x"), [sink], dedup=store)
    cast = message(call=False, value="again")
    failed = Delivery(cast)
    exploding._process(failed)
    assert [s.split(":")[0] for s in failed.settled] == ["fail"]
    retried = Delivery(cast)
    exploding._process(retried)
    assert sink.seen == ["first try", "again"]
    assert retried.settled == ["ack"]


@pytest.mark.redis
def test_an_unreachable_store_is_logged_once_and_requests_still_run(
    memory: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="podium.rpc")
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    store = RedisDedupStore(client=client)
    sink = Sink()
    one = server(memory, sink, store)
    for value in (1, 2):
        one._process(Delivery(message(value=value)))
    assert sink.seen == [1, 2]
    assert len([r for r in caplog.records if "de-dup store unreachable" in r.getMessage()]) == 1


@pytest.mark.rabbit
@pytest.mark.redis
def test_two_rabbit_servers_sharing_redis_run_a_duplicated_cast_once(
    rabbit_url: str, redis_url: str, redis_prefix: str, topic: str
) -> None:
    from rpc_helpers import delete_queues

    transport = get_transport(rabbit_url)
    store = CountingStore(RedisDedupStore(redis_url, prefix=redis_prefix))
    sink = Sink()
    servers = [
        RPCServer(transport, Target(topic=topic, server=name), [sink], max_workers=1, dedup=store)
        for name in ("a", "b")
    ]
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    try:
        for each in servers:
            each.start()
        body = codec.encode(message(call=False, value="once"))
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            channel = connection.channel()
            for _ in range(2):
                channel.basic_publish("openstack", topic, body)
            deadline = time.monotonic() + 60
            # Both copies were asked about, and the second found the first done.
            while "done" not in store.answered:
                assert time.monotonic() < deadline, f"claims so far: {store.answered}"
                connection.sleep(0.02)
    finally:
        for each in servers:
            each.stop()
        for each in servers:
            each.wait()
        transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.a", f"{topic}.b"])
    assert sink.seen == ["once"]
    # One copy took the claim; the other found it running (and waited) or done.
    # Answers are listed as their threads got them back, not as the store gave
    # them: the "running" may come before the "new" it was the answer to.
    assert store.answered.count("new") == 1 and store.answered.count("done") == 1
    assert set(store.answered) <= {"new", "running", "done"}


def test_a_shared_store_keeps_any_reply_the_codec_could_send(
    shared_kind: str, request: pytest.FixtureRequest
) -> None:
    store = make_store(shared_kind, request)
    key = f"id-{uuid.uuid4().hex}"
    store.claim(key, "a")
    store.done(key, "a", {"result": {7: "seven", "tags": {"x"}}, "_msg_id": "m"})
    # As the caller would have read it: JSON keys are strings, a set a list.
    assert store.claim(key, "b") == Claim(
        "done", {"result": {"7": "seven", "tags": ["x"]}, "_msg_id": "m"}
    )
    store.close()
