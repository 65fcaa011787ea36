"""archive_deleted_rows on every backend: batches, --before, --max-rows, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from podium.context import RequestContext
from podium.db import Database
from podium.db import api as db_api
from podium.db.archive import archive_deleted_rows
from podium.db.models import Instance, Service, shadow_table, table_of
from podium.exceptions import DBError, DuplicateEntry

CTX = RequestContext()


def _counts(database: Database, table: sa.Table) -> tuple[int, int, set[int]]:
    """(live rows, shadow rows, every id in either)."""
    shadow = shadow_table(table.name)
    with database.connection() as connection:
        live = set(connection.scalars(sa.select(table.c.id)))
        archived = set(connection.scalars(sa.select(shadow.c.id)))
    assert not live & archived, "a row sits in both tables"
    return len(live), len(archived), live | archived


def _make_instances(database: Database, alive: int, deleted: int) -> list[Instance]:
    rows = [db_api.instance_create(database, CTX, {"host": "h"}) for _ in range(alive + deleted)]
    for row in rows[alive:]:
        db_api.instance_destroy(database, CTX, row.uuid)
    return rows


def test_archive_moves_deleted_rows_in_batches(database: Database) -> None:
    rows = _make_instances(database, alive=3, deleted=7)
    service = db_api.service_create(database, CTX, {"host": "h", "binary": "b"})
    db_api.service_destroy(database, CTX, service.id)
    table = table_of(Instance)
    batches: list[str] = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SHADOW_INSTANCES"):
            batches.append(statement)

    moved = archive_deleted_rows(database, batch_size=3)
    assert moved == {"services": 1, "compute_nodes": 0, "instances": 7}
    assert len(batches) == 3  # 3 + 3 + 1
    assert _counts(database, table)[:2] == (3, 7)
    # the archived rows are whole: every column copied
    with database.connection() as connection:
        shadow_row = connection.execute(
            sa.select(shadow_table("instances")).where(shadow_table("instances").c.id == rows[5].id)
        ).one()
    assert shadow_row.uuid == rows[5].uuid and shadow_row.deleted == rows[5].id
    assert shadow_row.host == "h" and shadow_row.deleted_at is not None
    # nothing left to do
    assert archive_deleted_rows(database) == {"services": 0, "compute_nodes": 0, "instances": 0}
    # live rows are still readable, archived ones are gone even for read_deleted
    assert len(db_api.instance_get_all(database, RequestContext(read_deleted="yes"))) == 3


def test_archive_before(database: Database) -> None:
    rows = _make_instances(database, alive=0, deleted=4)
    old = datetime.now(UTC) - timedelta(days=30)
    with database.connection() as connection:
        table = table_of(Instance)
        connection.execute(
            table.update().where(table.c.id.in_([rows[0].id, rows[1].id])).values(deleted_at=old)
        )
    moved = archive_deleted_rows(database, before=datetime.now(UTC) - timedelta(days=1))
    assert moved["instances"] == 2
    with database.connection() as connection:
        archived = set(connection.scalars(sa.select(shadow_table("instances").c.id)))
    assert archived == {rows[0].id, rows[1].id}
    # a naive "before" is UTC
    moved = archive_deleted_rows(
        database, before=datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5)
    )
    assert moved["instances"] == 2


def test_archive_max_rows_stops_and_resumes(database: Database) -> None:
    _make_instances(database, alive=2, deleted=5)
    for i in range(3):
        svc = db_api.service_create(database, CTX, {"host": f"h{i}", "binary": "b"})
        db_api.service_destroy(database, CTX, svc.id)
    table = table_of(Instance)
    before = _counts(database, table)[2]
    moved = archive_deleted_rows(database, max_rows=4, batch_size=3)
    assert sum(moved.values()) == 4
    assert moved == {"services": 3, "compute_nodes": 0, "instances": 1}
    assert archive_deleted_rows(database, max_rows=0) == {
        "services": 0,
        "compute_nodes": 0,
        "instances": 0,
    }
    moved = archive_deleted_rows(database, max_rows=100, batch_size=2)
    assert moved["instances"] == 4
    live, archived, ids = _counts(database, table)
    assert (live, archived, ids) == (2, 5, before)


def test_failure_inside_a_batch_loses_nothing(database: Database) -> None:
    _make_instances(database, alive=1, deleted=6)
    table = table_of(Instance)
    before = _counts(database, table)
    calls = {"n": 0}

    @event.listens_for(database.engine, "before_cursor_execute")
    def fail_second_delete(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE FROM INSTANCES"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        archive_deleted_rows(database, batch_size=4)
    live, archived, ids = _counts(database, table)
    assert (live, archived) == (3, 4)  # first batch done, second rolled back whole
    assert ids == before[2]
    event.remove(database.engine, "before_cursor_execute", fail_second_delete)
    assert archive_deleted_rows(database, batch_size=4)["instances"] == 2
    assert _counts(database, table) == (1, 6, before[2])


def test_id_already_in_shadow_rolls_back(database: Database) -> None:
    rows = _make_instances(database, alive=0, deleted=2)
    shadow = shadow_table("instances")
    with database.connection() as connection:
        connection.execute(
            shadow.insert().values(
                id=rows[1].id,
                uuid="x",
                power_state=0,
                memory_mb=0,
                vcpus=0,
                root_gb=0,
                metadata={},
                created_at=datetime.now(UTC),
                deleted=rows[1].id,
            )
        )
    with pytest.raises(DuplicateEntry):
        archive_deleted_rows(database)
    with database.connection() as connection:
        live = set(connection.scalars(sa.select(table_of(Instance).c.id)))
        archived = list(connection.scalars(sa.select(shadow.c.uuid)))
    assert live == {rows[0].id, rows[1].id}
    assert archived == ["x"]


def test_bad_arguments(database: Database) -> None:
    with pytest.raises(DBError, match="batch_size"):
        archive_deleted_rows(database, batch_size=0)
    with pytest.raises(DBError, match="max_rows"):
        archive_deleted_rows(database, max_rows=-1)
    assert Service.__tablename__ == "services"
