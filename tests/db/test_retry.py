"""Lost connections, on the real PostgreSQL and MariaDB.

A unit of work that lost its connection before anything of it could have
committed runs again; one whose COMMIT (or autocommit statement) had been sent
surfaces as ``DBConnectionError``. Connections are killed from an admin
connection (``pg_terminate_backend``, ``KILL``), as an operator or a failover
would; the rows then say whether every write landed exactly once.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from toy_app.models import Widget

from podium.context import RequestContext
from podium.db import Database, engine
from podium.db import api as db_api
from podium.db.models import table_of
from podium.exceptions import DBConnectionError, DBError

NETWORK_BACKENDS = [
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]
POOL_SIZE = 4
CTX = RequestContext()


@pytest.fixture(params=NETWORK_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/db/conftest.py: only servers have connections to kill."""
    return str(request.param)


class Killer:
    """Kills every server connection of one database, from an admin connection."""

    def __init__(self, backend: str, url: str, password: str | None = None) -> None:
        self.backend = backend
        parsed = make_url(url)
        admin_url = parsed.set(query={}) if backend == "postgresql" else parsed.set(database="test")
        if backend == "postgresql":
            # Every test session shares the database `test`: pick out ours by name.
            self.app = f"podium-kill-{secrets.token_hex(4)}"
            parsed = parsed.update_query_dict({"application_name": self.app})
        if password is not None:
            parsed = parsed.set(password=password)
        self.url = parsed.render_as_string(hide_password=False)
        self._database = parsed.database
        self._admin = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        ).connect()
        self.killed = 0

    def backends(self) -> list[int]:
        if self.backend == "postgresql":
            query = "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
            params = {"name": self.app}
        else:
            query = (
                "SELECT id FROM information_schema.processlist "
                "WHERE db = :name AND id <> CONNECTION_ID()"
            )
            params = {"name": self._database}
        return [int(pid) for pid in self._admin.execute(sa.text(query), params).scalars()]

    def kill_all(self, wait: bool = True) -> int:
        """Kill every connection of the database; returns how many were killed.

        ``wait``: return only once PostgreSQL's backends are gone (MariaDB's
        KILL closes the connection before it returns).
        """
        count = 0
        for pid in self.backends():
            if self.backend == "postgresql":
                timeout = ", 5000" if wait else ""
                statement = f"SELECT pg_terminate_backend({pid}{timeout})"
            else:
                statement = f"KILL {pid}"
            try:
                self._admin.execute(sa.text(statement))
            except sa.exc.DBAPIError:
                continue  # it closed by itself in between
            count += 1
        self.killed += count
        return count

    def close(self) -> None:
        self._admin.close()


@pytest.fixture
def killer(database: Database, backend: str) -> Iterator[Killer]:
    killer = Killer(backend, database.url.render_as_string(hide_password=False))
    yield killer
    killer.close()


def _fill_pool(db: Database, size: int) -> None:
    """Leave ``size`` connections in the pool (the checked-in ones the kill finds)."""
    with ExitStack() as stack:
        for _ in range(size):
            stack.enter_context(db.session()).execute(sa.text("SELECT 1"))


WIDGETS = table_of(Widget)


def _counter(db: Database) -> Widget:
    return db_api.create(db, Widget, {"name": f"counter-{secrets.token_hex(4)}", "size": 0})


def _create(db: Database) -> None:
    db_api.create(db, Widget, {"name": f"created-{secrets.token_hex(8)}", "colour": "created"})


def _created(db: Database) -> int:
    with db.session() as session:
        query = select(sa.func.count()).where(WIDGETS.c.colour == "created")
        return int(session.scalar(query) or 0)


def _swap(db: Database, widget_id: int, expected: str, new: str) -> None:
    """A compare-and-swap on ``colour``: a write applied twice would find it moved on."""
    where = [WIDGETS.c.id == widget_id, WIDGETS.c.colour == expected]
    row = db.run(
        lambda session: db_api.update_returning(
            session, Widget, {"colour": new}, where, [WIDGETS.c.id == widget_id]
        ),
        single_statement=db_api.returns_updates(db),
    )
    if row is None:
        raise DBError(f"expected colour {expected!r}: not swapped")


def _increment(db: Database, widget_id: int) -> None:
    """One write that shows if it landed twice: ``size + 1`` in one transaction."""

    def work(session: Session) -> None:
        session.execute(
            update(WIDGETS).where(WIDGETS.c.id == widget_id).values(size=WIDGETS.c.size + 1)
        )

    db.run(work)


def _size(db: Database, widget_id: int) -> int:
    with db.session() as session:
        return int(session.scalar(select(Widget.size).where(Widget.id == widget_id)) or 0)


def _retry_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "podium.db.engine" and record.levelno == logging.WARNING
    ]


def test_connections_terminated_between_requests_cost_no_request(
    database: Database, killer: Killer
) -> None:
    """The pool held connections the server had closed: none of the 200 calls fails."""
    db = Database(killer.url, pool_size=POOL_SIZE)
    try:
        cas = db_api.create(db, Widget, {"name": "cas", "colour": "s0"})
        counter = _counter(db)
        failures: list[DBError] = []
        state = increments = created = 0
        for _ in range(4):
            _fill_pool(db, POOL_SIZE)
            assert killer.kill_all() >= POOL_SIZE
            for step in range(50):
                try:
                    if step % 3 == 0:
                        # A compare-and-swap chain: a write applied twice would
                        # find the state moved on and fail.
                        _swap(db, cas.id, f"s{state}", f"s{state + 1}")
                        state += 1
                    elif step % 3 == 1:
                        _increment(db, counter.id)
                        increments += 1
                    else:
                        _create(db)
                        created += 1
                except DBError as error:
                    failures.append(error)
        assert failures == []
        assert killer.killed >= 4 * POOL_SIZE
        assert db_api.get(db, CTX, Widget, id=cas.id).colour == f"s{state}"
        assert _size(db, counter.id) == increments
        assert _created(db) == created
        assert state + increments + created == 200
    finally:
        db.dispose()


def test_a_transaction_that_met_a_dead_connection_runs_again(
    database: Database,
    killer: Killer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the free look at the socket, the dead connection is met by BEGIN or the
    first statement: the whole transaction runs again, and lands once."""
    monkeypatch.setattr(engine, "_server_hung_up", lambda _connection: False)
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    db = Database(killer.url, pool_size=POOL_SIZE)
    try:
        counter = _counter(db)
        failures: list[DBError] = []
        increments = created = 0
        for _ in range(4):
            _fill_pool(db, POOL_SIZE)
            assert killer.kill_all() >= POOL_SIZE
            for step in range(50):
                try:
                    if step % 2:
                        _increment(db, counter.id)
                        increments += 1
                    else:
                        _create(db)
                        created += 1
                except DBError as error:
                    failures.append(error)
        assert failures == []
        assert _size(db, counter.id) == increments == 100
        assert _created(db) == created
        # Each round's first call met a dead connection and ran again, and said so once.
        retries = _retry_warnings(caplog)
        assert len(retries) >= 4
        assert all("trying again" in record.getMessage() for record in retries)
    finally:
        db.dispose()


def _kill_once(killer: Killer) -> Callable[..., None]:
    done = threading.Event()

    def kill(*_args: Any) -> None:
        if not done.is_set():
            done.set()
            assert killer.kill_all() >= 1

    return kill


@pytest.mark.parametrize("single_statement", [False, True], ids=["transaction", "autocommit"])
def test_a_connection_lost_after_the_point_of_no_return_is_not_retried(
    database: Database, killer: Killer, single_statement: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed once COMMIT (or the autocommit statement) is on its way: the outcome is
    unknown, so the call fails with DBConnectionError and runs once."""
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    db = Database(killer.url)
    try:
        counter = _counter(db)
        # Listeners added now run after podium's own: after its last look at the socket.
        if single_statement:
            event.listen(db.engine, "before_cursor_execute", _kill_once(killer))
        else:
            event.listen(db.engine, "commit", _kill_once(killer))
        runs = 0

        def work(session: Session) -> None:
            nonlocal runs
            runs += 1
            session.execute(
                update(WIDGETS).where(WIDGETS.c.id == counter.id).values(size=WIDGETS.c.size + 1)
            )

        with pytest.raises(DBConnectionError, match="unknown"):
            db.run(work, single_statement=single_statement)
        assert runs == 1
        assert _retry_warnings(caplog) == []
    finally:
        db.dispose()


@pytest.mark.parametrize("single_statement", [False, True], ids=["transaction", "autocommit"])
def test_a_connection_lost_before_anything_was_sent_is_retried(
    database: Database,
    backend: str,
    killer: Killer,
    single_statement: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Killed right after checkout: the work runs again on a new connection, once more."""
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    password = "s3cret-never-logged" if backend == "postgresql" else None  # trust ignores it
    killer = Killer(backend, database.url.render_as_string(hide_password=False), password)
    db = Database(killer.url)
    try:
        counter = _counter(db)
        event.listen(db.engine, "checkout", _kill_once(killer))
        runs = 0

        def work(session: Session) -> None:
            nonlocal runs
            runs += 1
            session.execute(
                update(WIDGETS).where(WIDGETS.c.id == counter.id).values(size=WIDGETS.c.size + 1)
            )

        db.run(work, single_statement=single_statement)
        assert runs == 2
        assert _size(db, counter.id) == 1
        (warning,) = _retry_warnings(caplog)
        message = warning.getMessage()
        assert "trying again" in message
        assert "attempt 2 of 5" in message
        assert "s3cret" not in message
    finally:
        killer.close()
        db.dispose()


def test_retries_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on port 1: three attempts, two warnings, then the error."""
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    db = Database(
        "postgresql+psycopg://podium:s3cret@127.0.0.1:1/podium",
        retry_attempts=3,
        retry_max_delay=0.01,
    )
    with pytest.raises(DBConnectionError, match="refused") as failure:
        db.run(lambda session: session.execute(sa.text("SELECT 1")))
    assert len(_retry_warnings(caplog)) == 2
    assert "s3cret" not in str(failure.value)
    assert not any("s3cret" in record.getMessage() for record in caplog.records)


@pytest.mark.postgres
def test_a_refusal_for_good_is_not_retried(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    url = make_url(postgres_url).set(database=f"no_such_db_{secrets.token_hex(4)}")
    db = Database(url.render_as_string(hide_password=False))
    with pytest.raises(DBConnectionError, match="does not exist"):
        db.run(lambda session: session.execute(sa.text("SELECT 1")))
    assert _retry_warnings(caplog) == []


def test_retry_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="retry_attempts"):
        Database("sqlite:///x.sqlite", retry_attempts=0)


def test_connections_killed_under_load(
    database: Database, killer: Killer, caplog: pytest.LogCaptureFixture
) -> None:
    """One thread kills the database's connections every few ms, at random moments of
    the writes (300 at least) another thread makes: nothing that provably never ran fails, and
    no write lands twice.

    A kill that cuts off a COMMIT in flight leaves its outcome unknown; the write
    then fails with DBConnectionError saying so (on MariaDB most of those had
    committed: trying them again would have applied them twice).
    """
    caplog.set_level(logging.WARNING, logger="podium.db.engine")
    # Short pauses keep the test short; the policy is the same.
    db = Database(killer.url, pool_size=2, retry_max_delay=0.01)
    counter = _counter(db)
    writes = 300
    done = 0  # writes finished, landed or not
    stop = threading.Event()

    def kill_loop() -> None:
        pace = random.Random(7)
        while not stop.is_set():
            # One kill per two writes at most, so that no write meets more kills
            # than it has retries: what is tested is which failures are retried.
            target = done + 2
            while done < target and not stop.is_set():
                stop.wait(0.0005)
            stop.wait(pace.uniform(0, 0.003))
            killer.kill_all(wait=False)

    thread = threading.Thread(target=kill_loop, daemon=True)
    failures: list[DBError] = []
    unknown: list[DBConnectionError] = []
    landed = 0
    thread.start()
    try:
        # At least ``writes``, and on until the killer has struck 50 times: how many
        # kills land in a given number of writes depends on the machine's load.
        while done < writes or (killer.killed < 50 and done < 10 * writes):
            try:
                _increment(db, counter.id)
                landed += 1
            except DBConnectionError as error:
                (unknown if "unknown" in str(error) else failures).append(error)
            except DBError as error:
                failures.append(error)
            done += 1
    finally:
        stop.set()
        thread.join()
        db.dispose()
    check = Database(database.url.render_as_string(hide_password=False))
    try:
        stored = _size(check, counter.id)
    finally:
        check.dispose()
    retried = len(_retry_warnings(caplog))
    print(
        f"killed {killer.killed} times under {done} writes: {len(failures)} failures, "
        f"{retried} retried, {len(unknown)} unknown outcomes ({stored - landed} of them landed)"
    )
    assert failures == []
    assert killer.killed >= 50
    assert retried >= 1
    # A write whose COMMIT was cut off may or may not have landed; none landed twice.
    assert landed <= stored <= landed + len(unknown)


def test_a_connection_lost_before_sending_reaches_a_remote_caller_as_itself() -> None:
    # Only podium.exceptions crosses the wire as itself: anything else would
    # reach a worker as a RemoteError it cannot tell from a bug.
    from podium.db.engine import _lost_before_sending
    from podium.exceptions import DBConnectionError
    from podium.rpc import _codec

    failure = _codec.serialize_remote_exception(_lost_before_sending("server closed it"))
    rebuilt = _codec.deserialize_remote_exception(failure, ["podium.exceptions"])
    assert type(rebuilt) is DBConnectionError
    assert "server closed it" in str(rebuilt)
