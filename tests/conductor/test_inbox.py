"""The conductor's inbox: a redelivered or retried request is applied once, answered alike.

The object used here is deliberately *not* idempotent (``Tally.bump`` adds to
a counter), so a second application would show. Each delivery goes to a
different conductor (each with its own in-process de-dup memory), as a
redelivery after a conductor's death does: only the database can tell.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pika
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from deliveries import Delivery
from podium.cloud.models import Instance
from podium.conductor import ConductorService
from podium.conductor.manager import ConductorManager
from podium.context import RequestContext
from podium.db import Database, allow_db_access
from podium.db.current import get_database
from podium.db.inbox import prune_inbox
from podium.db.models import Base, ConductorInbox, table_of
from podium.db.types import utcnow
from podium.exceptions import DuplicateEntry, NotFound
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    fields,
    remotable,
    remotable_classmethod,
)
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport
from podium.rpc import _codec as codec

if TYPE_CHECKING:
    from tests.conftest import Servers

REGISTRY = VersionedObjectRegistry()
INSTANCES = table_of(Instance)
INBOX = table_of(ConductorInbox)


class Hooks:
    """What the next run of a Tally method does besides its work (set by a test)."""

    after_write: Callable[[], None] | None = None
    before_return: Callable[[], None] | None = None
    #: How many times a method marked as counting ran (the inbox may run one twice).
    runs = 0


class TallyBase(VersionedObject):
    pass


class Tally(TallyBase):
    """A counter kept in ``instances.power_state``."""

    VERSION = "1.0"
    fields = {"uuid": fields.UUIDField(), "count": fields.IntegerField(default=0)}

    @remotable
    def bump(self, by: int) -> int:
        self.count = _add(self.uuid, by)
        hook = Hooks.before_return
        if hook is not None:
            hook()
        return self.count

    @remotable
    def bump_after_a_clash(self, by: int) -> int:
        """First a write that fails and is handled (a duplicate row), then the bump."""
        with contextlib.suppress(DuplicateEntry), get_database().session() as session:
            session.execute(INSTANCES.insert().values(_row(self.uuid)))
        self.count = _add(self.uuid, by)
        return self.count

    @remotable
    def bump_after_a_block_changed_its_mind(self, by: int) -> int:
        """A DB function that writes, then raises (handled): outside the inbox its
        own transaction takes the write back."""
        Hooks.runs += 1
        with contextlib.suppress(ValueError), get_database().session() as session:
            session.execute(
                INSTANCES.update()
                .where(_is(self.uuid))
                .values(power_state=INSTANCES.c.power_state + 100)
            )
            raise ValueError("changed its mind")
        self.count = _add(self.uuid, by)
        return self.count

    @remotable_classmethod
    def bump_by_uuid(cls, context: RequestContext, uuid: str, by: int) -> int:
        return _add(uuid, by)

    @remotable_classmethod
    def start_counting(cls, context: RequestContext, uuid: str) -> int:
        """A first report: its row is looked for, not found (NotFound, handled), created."""
        Hooks.runs += 1
        try:
            with get_database().session() as session:
                found = session.scalar(sa.select(INSTANCES.c.power_state).where(_is(uuid)))
                if found is None:
                    raise NotFound(f"no tally {uuid}")
                return int(found)
        except NotFound:
            pass
        with get_database().session() as session:
            session.execute(INSTANCES.insert().values(_row(uuid)))
        return 0

    @remotable_classmethod
    def peek(cls, context: RequestContext, uuid: str) -> int:
        with get_database().session() as session:
            return int(session.scalar(sa.select(INSTANCES.c.power_state).where(_is(uuid))))


def _row(uuid: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "power_state": 0,
        "memory_mb": 0,
        "vcpus": 0,
        "root_gb": 0,
        "metadata": {},
        "created_at": utcnow(),
        "deleted": 0,
    }


def _is(uuid: str) -> sa.ColumnElement[bool]:
    return INSTANCES.c.uuid == uuid


def _add(uuid: str, by: int) -> int:
    with get_database().session(single_statement=True) as session:
        session.execute(
            INSTANCES.update().where(_is(uuid)).values(power_state=INSTANCES.c.power_state + by)
        )
    hook = Hooks.after_write
    if hook is not None:
        hook()
    with get_database().session() as session:
        return int(session.scalar(sa.select(INSTANCES.c.power_state).where(_is(uuid))))


REGISTRY.register_class(Tally)


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    """A migrated database on ``backend``, emptied, holding one tally at 0."""
    allow_db_access()
    url = servers.migrated_url(backend, "inbox")
    database = Database(url, pool_size=4)
    with database.connection() as connection:
        # Only what this database has: other suites may have declared more tables
        # (e.g. tests/db's toy application) in the shared MetaData.
        present = set(sa.inspect(connection).get_table_names())
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in present:
                connection.execute(table.delete())
    yield database
    database.dispose()


@pytest.fixture
def tally(database: Database) -> Tally:
    key = str(uuid.uuid4())
    with database.connection() as connection:
        connection.execute(INSTANCES.insert().values(_row(key)))
    return Tally(CTX, uuid=key, count=0)


@pytest.fixture(autouse=True)
def _no_hooks() -> Iterator[None]:
    yield
    Hooks.after_write = Hooks.before_return = None
    Hooks.runs = 0


CTX = RequestContext(user_id="alice", project_id="p1")


def conductor(transport: Transport, database: Database) -> RPCServer:
    """A conductor's RPC server (not consuming: deliveries are handed to it)."""
    return RPCServer(
        transport,
        Target(topic="conductor", server=f"c-{uuid.uuid4().hex[:6]}"),
        [ConductorManager(database, registry=REGISTRY)],
        serializer=VersionedObjectSerializer(registry=REGISTRY),
    )


@pytest.fixture
def memory() -> Iterator[Transport]:
    with get_transport(f"memory://inbox-{uuid.uuid4().hex}") as transport:
        yield transport


def request(transport: Transport, method: str, **kwargs: Any) -> dict[str, Any]:
    """A call to the conductor as a worker sends it, with its id and reply address."""
    client = RPCClient(
        transport,
        Target(topic="conductor", version="1.0"),
        serializer=VersionedObjectSerializer(registry=REGISTRY),
    )
    message = client._make_message(CTX, method, kwargs)
    message.update(_unique_id=f"req-{uuid.uuid4().hex}", _msg_id="m1", _reply_q="reply_x")
    return message


def bump(transport: Transport, tally: Tally, by: int = 1) -> dict[str, Any]:
    return request(
        transport, "object_action", objinst=tally, objmethod="bump", args=[by], kwargs={}
    )


def deliver(server: RPCServer, message: dict[str, Any]) -> Delivery:
    delivery = Delivery(message)
    server._process(delivery)
    return delivery


def count(database: Database, tally: Tally) -> int:
    with database.connection() as connection:
        return int(connection.scalar(sa.select(INSTANCES.c.power_state).where(_is(tally.uuid))))


def records(database: Database) -> list[tuple[str, str]]:
    with database.connection() as connection:
        return [tuple(row) for row in connection.execute(sa.select(INBOX.c.id, INBOX.c.method))]


def test_a_redelivered_object_action_applies_once_and_is_answered_alike(
    memory: Transport, database: Database, tally: Tally
) -> None:
    message = bump(memory, tally, by=5)
    first = deliver(conductor(memory, database), message)
    again = deliver(conductor(memory, database), message)
    assert first.answer["failure"] is None
    updates, result = first.answer["result"]
    assert (updates["count"], result) == (5, 5)
    assert again.answer == first.answer
    assert count(database, tally) == 5
    assert records(database) == [(message["_unique_id"], "object_action Tally.bump")]
    # A new request (a new id) is applied, of course.
    deliver(conductor(memory, database), bump(memory, tally, by=5))
    assert count(database, tally) == 10


def test_a_class_method_that_writes_is_recorded_and_a_read_is_not(
    memory: Transport, database: Database, tally: Tally
) -> None:
    versions = {"Tally": "1.0"}
    write = request(
        memory,
        "object_class_action_versions",
        objname="Tally",
        objmethod="bump_by_uuid",
        object_versions=versions,
        args=[tally.uuid, 3],
        kwargs={},
    )
    read = request(
        memory,
        "object_class_action_versions",
        objname="Tally",
        objmethod="peek",
        object_versions=versions,
        args=[tally.uuid],
        kwargs={},
    )
    answers = [deliver(conductor(memory, database), m).answer for m in (write, write, read, read)]
    assert [a["result"] for a in answers] == [3, 3, 3, 3]
    assert count(database, tally) == 3
    assert [record_id for record_id, _ in records(database)] == [write["_unique_id"]]


def test_a_conductor_that_fails_before_commit_leaves_no_record_and_the_retry_applies_once(
    memory: Transport, database: Database, tally: Tally
) -> None:
    message = bump(memory, tally, by=2)

    def crash() -> None:
        raise RuntimeError("conductor lost its footing after the UPDATE")

    Hooks.after_write = crash
    failed = deliver(conductor(memory, database), message)
    assert "conductor lost its footing" in failed.answer["failure"]
    assert count(database, tally) == 0 and records(database) == []

    Hooks.after_write = None
    retried = deliver(conductor(memory, database), message)
    assert retried.answer["result"][1] == 2
    assert deliver(conductor(memory, database), message).answer == retried.answer
    assert count(database, tally) == 2
    assert len(records(database)) == 1


def test_a_handled_db_error_before_the_first_write_still_leaves_a_record(
    memory: Transport, database: Database, tally: Tally
) -> None:
    message = request(
        memory, "object_action", objinst=tally, objmethod="bump_after_a_clash", args=[3], kwargs={}
    )
    first = deliver(conductor(memory, database), message)
    again = deliver(conductor(memory, database), message)
    assert first.answer["result"][1] == 3
    assert again.answer == first.answer
    assert count(database, tally) == 3
    assert len(records(database)) == 1


def test_a_read_that_finds_nothing_spoils_nothing_and_runs_once(
    memory: Transport, database: Database
) -> None:
    """A DB function that raises without a failed statement or a write (NotFound
    on a first report) leaves the transaction usable: no second run, no savepoints."""
    key = str(uuid.uuid4())
    message = request(
        memory,
        "object_class_action_versions",
        objname="Tally",
        objmethod="start_counting",
        object_versions={"Tally": "1.0"},
        args=[key],
        kwargs={},
    )
    first = deliver(conductor(memory, database), message)
    assert first.answer["failure"] is None and first.answer["result"] == 0
    assert Hooks.runs == 1
    assert records(database) == [
        (message["_unique_id"], "object_class_action_versions Tally.start_counting")
    ]
    # A redelivery meets the record at its first write and is answered from it.
    assert deliver(conductor(memory, database), message).answer == first.answer
    assert len(records(database)) == 1


def test_a_block_that_wrote_and_raised_is_taken_back_as_outside_the_inbox(
    memory: Transport, database: Database, tally: Tally
) -> None:
    message = request(
        memory,
        "object_action",
        objinst=tally,
        objmethod="bump_after_a_block_changed_its_mind",
        args=[2],
        kwargs={},
    )
    answer = deliver(conductor(memory, database), message).answer
    assert answer["failure"] is None and answer["result"][1] == 2
    assert count(database, tally) == 2  # not 102: the block's write went with it
    assert Hooks.runs == 2  # run again, a savepoint around each block


def test_a_replayed_create_still_finds_its_row(memory: Transport, database: Database) -> None:
    """A DB error the object method handles (a create that meets its own row)
    runs it again with savepoints, so it sees what it would outside the inbox."""
    from podium.cloud.objects import Instance as CloudInstance

    instance = CloudInstance(CTX, uuid=str(uuid.uuid4()), hostname="vm")
    cloud = VersionedObjectSerializer()
    client = RPCClient(memory, Target(topic="conductor", version="1.0"), serializer=cloud)
    replies = []
    for _ in range(2):  # two requests (two ids): the second is the app-level replay
        message = client._make_message(
            CTX,
            "object_action",
            {"objinst": instance, "objmethod": "create", "args": [], "kwargs": {}},
        )
        message.update(_unique_id=f"req-{uuid.uuid4().hex}", _msg_id="m1", _reply_q="reply_x")
        server = RPCServer(
            memory,
            Target(topic="conductor", server="c"),
            [ConductorManager(database)],
            serializer=cloud,
        )
        replies.append(deliver(server, message).answer)
    assert replies[0]["failure"] is None and replies[1]["failure"] is None
    assert replies[0]["result"][0]["id"] == replies[1]["result"][0]["id"]


def test_a_redelivered_cloud_save_is_recorded_and_answered_from_the_record(
    memory: Transport, database: Database
) -> None:
    """The cloud's save runs its UPDATE on the driver's cursor (podium.db.api.update_row):
    the inbox still records it before the write, and a redelivery writes nothing."""
    from podium.cloud.objects import Instance as CloudInstance

    cloud = VersionedObjectSerializer()
    manager = ConductorManager(database)
    instance = CloudInstance(CTX, uuid=str(uuid.uuid4()), hostname="vm", task_state="scheduling")
    manager.object_action(CTX, instance, "create", [], {})
    instance.obj_reset_changes()
    instance.task_state = "spawning"
    client = RPCClient(memory, Target(topic="conductor", version="1.0"), serializer=cloud)
    message = client._make_message(
        CTX,
        "object_action",
        {
            "objinst": instance,
            "objmethod": "save",
            "args": [],
            "kwargs": {"expected_task_state": "scheduling"},
        },
    )
    message.update(_unique_id=f"req-{uuid.uuid4().hex}", _msg_id="m1", _reply_q="reply_x")
    answers = []
    for _ in range(2):
        server = RPCServer(
            memory, Target(topic="conductor", server="c"), [ConductorManager(database)], cloud
        )
        answers.append(deliver(server, message).answer)
    # Applied once: run again, the compare-and-swap would have failed.
    assert answers[0]["failure"] is None and answers[1] == answers[0]
    assert records(database) == [(message["_unique_id"], "object_action Instance.save")]
    with database.connection() as connection:
        stored = connection.execute(
            sa.select(INSTANCES.c.task_state).where(INSTANCES.c.uuid == instance.uuid)
        ).scalar_one()
    assert stored == "spawning"


def _waiting_on_a_lock(database: Database, backend: str) -> int:
    """Sessions whose INSERT into the inbox is waiting (on PostgreSQL: on a lock)."""
    query = {
        "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE 'INSERT INTO conductor_inbox%%'",
        # The statement a MariaDB session is executing (waiting on a lock included).
        "mysql": "SELECT count(*) FROM information_schema.processlist"
        " WHERE db = DATABASE() AND info LIKE 'INSERT INTO conductor_inbox%%'",
    }[backend]
    with database.connection() as connection:
        return int(connection.exec_driver_sql(query).scalar_one())


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_a_duplicate_arriving_while_the_first_runs_waits_and_is_answered_from_the_record(
    memory: Transport, database: Database, tally: Tally, backend: str
) -> None:
    message = bump(memory, tally, by=7)
    inside, go = threading.Event(), threading.Event()
    runs: list[str] = []

    def pause_the_first() -> None:
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            inside.set()
            assert go.wait(60)

    Hooks.after_write = pause_the_first
    deliveries: dict[str, Delivery] = {}

    def run(name: str) -> None:
        deliveries[name] = deliver(conductor(memory, database), message)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    assert inside.wait(60)  # the first has written, not committed
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    deadline = time.monotonic() + 60
    while not _waiting_on_a_lock(database, backend):  # the duplicate's INSERT waits
        assert time.monotonic() < deadline, "the duplicate never waited on the first"
        time.sleep(0.01)
    go.set()
    first.join(60)
    second.join(60)
    assert runs == ["first"]  # the duplicate never got past its INSERT to the UPDATE
    assert deliveries["first"].answer["result"][1] == 7
    assert deliveries["second"].answer == deliveries["first"].answer
    assert count(database, tally) == 7


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_connection_lost_just_before_the_reply_is_recorded_runs_the_request_again_once(
    memory: Transport, database: Database, tally: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    """The reply goes on the driver's cursor (not through SQLAlchemy's execution):
    a connection lost there, before COMMIT, still runs the whole request again."""
    killed: list[int] = []

    def kill(pid: int) -> None:
        with database.connection() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 30
        while True:  # until the server has closed it
            with database.connection() as other:
                alive = other.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
            if not alive:
                return
            assert time.monotonic() < deadline, "the killed backend never went"
            time.sleep(0.01)

    def kill_the_request_connection() -> None:
        if killed:
            return
        with get_database().connection() as mine:
            pid = mine.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        killed.append(pid)
        # From a thread of its own: its commits are no part of the request's.
        killer = threading.Thread(target=kill, args=(pid,))
        killer.start()
        killer.join(60)

    Hooks.before_return = kill_the_request_connection
    message = bump(memory, tally, by=4)
    with caplog.at_level(logging.WARNING, logger="podium.db.engine"):
        first = deliver(conductor(memory, database), message)
    assert killed and first.answer["failure"] is None
    [retried] = [r.getMessage() for r in caplog.records if r.name == "podium.db.engine"]
    assert "failed before the transaction could commit" in retried
    assert first.answer["result"][1] == 4
    assert deliver(conductor(memory, database), message).answer == first.answer
    assert count(database, tally) == 4
    assert records(database) == [(message["_unique_id"], "object_action Tally.bump")]


def test_prune_inbox_removes_records_older_than_the_retention(
    memory: Transport, database: Database, tally: Tally
) -> None:
    old, new = bump(memory, tally), bump(memory, tally)
    deliver(conductor(memory, database), old)
    deliver(conductor(memory, database), new)
    with database.connection() as connection:
        connection.execute(
            INBOX.update()
            .where(INBOX.c.id == old["_unique_id"])
            .values(created_at=utcnow() - timedelta(hours=2))
        )
    assert prune_inbox(database, older_than=timedelta(hours=1), batch_size=1) == 1
    assert [record_id for record_id, _ in records(database)] == [new["_unique_id"]]
    assert prune_inbox(database, older_than=timedelta(0)) == 1
    assert records(database) == []


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_prune_inbox_command(memory: Transport, database: Database, tally: Tally) -> None:
    from podium.cli import main

    deliver(conductor(memory, database), bump(memory, tally))
    url = database.url.render_as_string(hide_password=False)
    runner = CliRunner()
    kept = runner.invoke(main, ["db", "prune-inbox", "--database-url", url])
    assert kept.exit_code == 0, kept.output
    assert kept.stdout == "pruned 0 request records older than 3600 s\n"
    pruned = runner.invoke(main, ["db", "prune-inbox", "--older-than", "0", "--database-url", url])
    assert pruned.stdout == "pruned 1 request records older than 0 s\n"
    bad = runner.invoke(main, ["db", "prune-inbox", "--older-than", "-5", "--database-url", url])
    assert bad.exit_code == 2 and "-5" in bad.output


@pytest.mark.rabbit
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_same_message_published_twice_on_rabbit_applies_once(
    rabbit_url: str, database: Database, tally: Tally
) -> None:
    """Two conductors compete on one topic; the same body arrives twice."""
    topic = f"inbox-{uuid.uuid4().hex[:8]}"
    transport = get_transport(rabbit_url)
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    services = [
        ConductorService(
            transport, database, host=f"c{i}", topic=topic, workers=1, registry=REGISTRY
        )
        for i in range(2)
    ]
    try:
        for service in services:
            service.start()
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            channel = connection.channel()
            reply_q = channel.queue_declare("", exclusive=True).method.queue
            message = bump(transport, tally, by=4)
            message["_reply_q"] = reply_q
            body = codec.encode(message)
            channel.basic_publish("", topic, body)
            channel.basic_publish("", topic, body)
            replies: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while len(replies) < 2:
                assert time.monotonic() < deadline, f"got {len(replies)} replies of 2"
                method, _props, reply_body = channel.basic_get(reply_q, auto_ack=True)
                if method is None:
                    connection.sleep(0.01)
                    continue
                replies.append(codec.decode(reply_body))
    finally:
        for service in services:
            service.stop()
        for service in services:
            service.wait()
        transport.cleanup()
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            channel = connection.channel()
            for queue in (topic, f"{topic}.c0", f"{topic}.c1"):
                channel.queue_delete(queue)
    assert replies[0]["failure"] is None
    assert replies[0]["result"] == replies[1]["result"]
    assert replies[0]["result"][1] == 4
    assert count(database, tally) == 4


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_a_running_conductor_prunes_its_inbox(
    memory: Transport, database: Database, tally: Tally
) -> None:
    message = bump(memory, tally)
    deliver(conductor(memory, database), message)
    with database.connection() as connection:
        connection.execute(INBOX.update().values(created_at=utcnow() - timedelta(hours=2)))
    service = ConductorService(
        memory, database, host="pruner", registry=REGISTRY, inbox_retention=timedelta(seconds=0.2)
    )
    with service:
        deadline = time.monotonic() + 60
        while records(database):
            assert time.monotonic() < deadline, "the old record was never pruned"
            time.sleep(0.02)
    with pytest.raises(ValueError):
        ConductorService(memory, database, host="x", inbox_retention=timedelta(0))


def test_the_ambient_database_overrides_everything_public_of_database() -> None:
    """It borrows the outer Database's engine and never runs Database.__init__:
    a public method it inherited would reach attributes it does not have."""
    from podium.db.inbox import InboxDatabase

    public = {name for name in dir(Database) if not name.startswith("_")}
    assert public <= set(vars(InboxDatabase))
