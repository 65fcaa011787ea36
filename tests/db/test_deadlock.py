"""A transaction the database rolls back for a concurrent one runs again, on every backend.

PostgreSQL and MariaDB pick a deadlock victim; SQLite in WAL mode refuses a
write from a transaction whose snapshot another writer has since moved past
("database is locked", at once, whatever the busy timeout). In each case
nothing of the transaction committed, so ``Database.run`` starts it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tests.conftest import Servers

from podium.db import Database, engine
from podium.exceptions import DBDeadlock

TABLE = "deadlock_probe"


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    db = Database(servers.new_url(backend), pool_size=4)
    with db.connection() as connection:
        connection.execute(sa.text(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, v INTEGER)"))
        connection.execute(sa.text(f"INSERT INTO {TABLE} (id, v) VALUES (1, 0), (2, 0)"))
    yield db
    db.dispose()


def _values(db: Database) -> list[int]:
    with db.connection() as connection:
        return list(connection.scalars(sa.text(f"SELECT v FROM {TABLE} ORDER BY id")))


def _bump(session: Session, row: int) -> None:
    session.execute(sa.text(f"UPDATE {TABLE} SET v = v + 1 WHERE id = :id"), {"id": row})


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_a_deadlock_victim_runs_again(database: Database) -> None:
    # Each transaction locks one row, waits until the other has locked the
    # other row, then wants it: a deadlock the server breaks by rolling one back.
    both_locked = threading.Barrier(2)
    attempts = [0, 0]
    errors: list[BaseException] = []

    def transaction(index: int, first: int, second: int) -> None:
        def work(session: Session) -> None:
            attempts[index] += 1
            _bump(session, first)
            if attempts[index] == 1:
                both_locked.wait(timeout=30)
            _bump(session, second)

        try:
            database.run(work)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=transaction, args=(0, 1, 2)),
        threading.Thread(target=transaction, args=(1, 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(attempts) == [1, 2]  # one victim, run again once
    assert _values(database) == [2, 2]  # both transactions' writes, each once


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_stale_sqlite_snapshot_runs_again(database: Database) -> None:
    read, other_committed = threading.Event(), threading.Event()
    attempts = 0

    def work(session: Session) -> None:
        nonlocal attempts
        attempts += 1
        # A transaction that reads first (pysqlite would begin only at the write).
        session.connection().exec_driver_sql("BEGIN")
        session.execute(sa.text(f"SELECT v FROM {TABLE} WHERE id = 1")).scalar_one()
        if attempts == 1:
            read.set()
            assert other_committed.wait(30)
        _bump(session, 1)

    def other_writer() -> None:
        assert read.wait(30)
        database.run(lambda session: _bump(session, 2))
        other_committed.set()

    writer = threading.Thread(target=other_writer)
    writer.start()
    database.run(work)
    writer.join(30)
    assert attempts == 2
    assert _values(database) == [1, 1]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_retries_are_bounded(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "DEADLOCK_RETRIES", 3)
    attempts = 0

    def always_loses(session: Session) -> None:
        nonlocal attempts
        attempts += 1
        raise DBDeadlock("rolled back for a concurrent transaction")

    with pytest.raises(DBDeadlock):
        database.run(always_loses)
    assert attempts == 4


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_retries_stop_after_their_time_budget(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock the busy timeout already waited out is not worth twenty more waits.
    monkeypatch.setattr(engine, "DEADLOCK_RETRY_SECONDS", 0.0)
    attempts = 0

    def always_loses(session: Session) -> None:
        nonlocal attempts
        attempts += 1
        raise DBDeadlock("rolled back for a concurrent transaction")

    with pytest.raises(DBDeadlock):
        database.run(always_loses)
    assert attempts == 1
