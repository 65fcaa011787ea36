"""Pool sizing and the checks on a pooled connection, on the real PostgreSQL."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from podium.db import Database, engine
from podium.exceptions import DBConnectionError, DBError

if TYPE_CHECKING:
    from tests.conftest import Servers

pytestmark = pytest.mark.postgres


def _backend_pid(database: Database) -> int:
    with database.connection() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _kill(admin_url: str, pid: int) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
        # pg_terminate_backend only signals the backend: wait until it has gone,
        # its goodbye written to the socket, as it has when a pool meets it later.
        alive = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
        for _ in range(500):
            if not conn.execute(alive, {"p": pid}).scalar_one():
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"backend {pid} still alive 5 s after it was terminated")
    admin.dispose()


def test_pool_holds_as_many_connections_as_asked(servers: Servers) -> None:
    database = Database(servers.new_url("postgresql"), pool_size=16)
    try:
        assert database.engine.pool.size() == 16  # type: ignore[attr-defined]
    finally:
        database.dispose()


def test_connection_the_server_closed_is_replaced_before_use(
    servers: Servers, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on the socket, without a ping (none is sent to a busy connection)."""
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 3600.0)
    database = Database(servers.new_url("postgresql"))
    try:
        first = _backend_pid(database)
        _kill(postgres_url, first)
        assert _backend_pid(database) != first  # no statement failed
    finally:
        database.dispose()


def test_idle_dead_connection_is_replaced_before_use(
    servers: Servers, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A death the socket does not show (a vanished host) is found by the idle ping."""
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 0.0)
    monkeypatch.setattr(engine, "_server_hung_up", lambda _connection: False)
    database = Database(servers.new_url("postgresql"))
    try:
        first = _backend_pid(database)
        _kill(postgres_url, first)
        assert _backend_pid(database) != first  # checked, found dead, replaced
    finally:
        database.dispose()


def test_busy_connection_is_trusted_and_a_silent_death_costs_one_statement(
    servers: Servers, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside Database.run (which would run it again), the statement fails once."""
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 3600.0)
    monkeypatch.setattr(engine, "_server_hung_up", lambda _connection: False)
    database = Database(servers.new_url("postgresql"))
    try:
        first = _backend_pid(database)
        _kill(postgres_url, first)
        with pytest.raises(DBError) as failure:
            _backend_pid(database)
        assert isinstance(failure.value, DBConnectionError) or "terminat" in str(failure.value)
        assert _backend_pid(database) != first
    finally:
        database.dispose()
