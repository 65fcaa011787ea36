"""archive_deleted_rows on every backend, on the toy application's tables:
batches, --before, --max-rows, nothing lost, every app's archive list in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from toy_app import TOY
from toy_app.models import Part, Widget

from podium.apps import App
from podium.context import RequestContext
from podium.db import Database
from podium.db import api as db_api
from podium.db.archive import archive_deleted_rows, archived_tables
from podium.db.models import shadow_table, table_of
from podium.exceptions import DBError, DuplicateEntry, NotFound

CTX = RequestContext()
NOTHING = {"toy_parts": 0, "toy_widgets": 0}


def _archive(database: Database, **kwargs: object) -> dict[str, int]:
    """The toy application's tables only: the others are the installed apps' business."""
    return archive_deleted_rows(database, apps=[TOY], **kwargs)  # type: ignore[arg-type]


def _counts(database: Database, table: sa.Table) -> tuple[int, int, set[int]]:
    """(live rows, shadow rows, every id in either)."""
    shadow = shadow_table(table.name)
    with database.connection() as connection:
        live = set(connection.scalars(sa.select(table.c.id)))
        archived = set(connection.scalars(sa.select(shadow.c.id)))
    assert not live & archived, "a row sits in both tables"
    return len(live), len(archived), live | archived


def _make_widgets(database: Database, alive: int, deleted: int) -> list[Widget]:
    rows = [
        db_api.create(database, Widget, {"name": f"w{n}", "colour": "red"})
        for n in range(alive + deleted)
    ]
    for row in rows[alive:]:
        database.run(lambda session, row=row: db_api.soft_delete(session, Widget, id=row.id))
    return rows


def _make_parts(database: Database, deleted: int) -> None:
    for n in range(deleted):
        part = db_api.create(database, Part, {"widget_id": n, "label": f"p{n}"})
        database.run(lambda session, part=part: db_api.soft_delete(session, Part, id=part.id))


def test_archive_moves_deleted_rows_in_batches(database: Database) -> None:
    rows = _make_widgets(database, alive=3, deleted=7)
    _make_parts(database, deleted=1)
    table = table_of(Widget)
    batches: list[str] = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SHADOW_TOY_WIDGETS"):
            batches.append(statement)

    moved = _archive(database, batch_size=3)
    assert moved == {"toy_parts": 1, "toy_widgets": 7}
    assert list(moved) == ["toy_parts", "toy_widgets"]  # the app's order: children first
    assert len(batches) == 3  # 3 + 3 + 1
    assert _counts(database, table)[:2] == (3, 7)
    # the archived rows are whole: every column copied
    shadow = shadow_table("toy_widgets")
    with database.connection() as connection:
        shadow_row = connection.execute(sa.select(shadow).where(shadow.c.id == rows[5].id)).one()
    assert shadow_row.name == rows[5].name and shadow_row.deleted == rows[5].id
    assert shadow_row.colour == "red" and shadow_row.deleted_at is not None
    assert shadow_row.metadata == {}
    # nothing left to do
    assert _archive(database) == NOTHING
    # live rows are still readable, archived ones are gone even for read_deleted
    yes = RequestContext(read_deleted="yes")
    with pytest.raises(NotFound):
        db_api.get(database, yes, Widget, id=rows[5].id)
    assert db_api.get(database, yes, Widget, id=rows[0].id).name == "w0"


def test_archive_before(database: Database) -> None:
    rows = _make_widgets(database, alive=0, deleted=4)
    old = datetime.now(UTC) - timedelta(days=30)
    with database.connection() as connection:
        table = table_of(Widget)
        connection.execute(
            table.update().where(table.c.id.in_([rows[0].id, rows[1].id])).values(deleted_at=old)
        )
    moved = _archive(database, before=datetime.now(UTC) - timedelta(days=1))
    assert moved["toy_widgets"] == 2
    with database.connection() as connection:
        archived = set(connection.scalars(sa.select(shadow_table("toy_widgets").c.id)))
    assert archived == {rows[0].id, rows[1].id}
    # a naive "before" is UTC
    moved = _archive(database, before=datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5))
    assert moved["toy_widgets"] == 2


def test_archive_max_rows_stops_and_resumes(database: Database) -> None:
    _make_widgets(database, alive=2, deleted=5)
    _make_parts(database, deleted=3)
    table = table_of(Widget)
    before = _counts(database, table)[2]
    moved = _archive(database, max_rows=4, batch_size=3)
    assert sum(moved.values()) == 4
    assert moved == {"toy_parts": 3, "toy_widgets": 1}
    assert _archive(database, max_rows=0) == NOTHING
    moved = _archive(database, max_rows=100, batch_size=2)
    assert moved["toy_widgets"] == 4
    live, archived, ids = _counts(database, table)
    assert (live, archived, ids) == (2, 5, before)


def test_failure_inside_a_batch_loses_nothing(database: Database) -> None:
    _make_widgets(database, alive=1, deleted=6)
    table = table_of(Widget)
    before = _counts(database, table)
    calls = {"n": 0}

    @event.listens_for(database.engine, "before_cursor_execute")
    def fail_second_delete(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE FROM TOY_WIDGETS"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        _archive(database, batch_size=4)
    live, archived, ids = _counts(database, table)
    assert (live, archived) == (3, 4)  # first batch done, second rolled back whole
    assert ids == before[2]
    event.remove(database.engine, "before_cursor_execute", fail_second_delete)
    assert _archive(database, batch_size=4)["toy_widgets"] == 2
    assert _counts(database, table) == (1, 6, before[2])


def test_id_already_in_shadow_rolls_back(database: Database) -> None:
    rows = _make_widgets(database, alive=0, deleted=2)
    shadow = shadow_table("toy_widgets")
    with database.connection() as connection:
        connection.execute(
            shadow.insert().values(
                id=rows[1].id,
                name="x",
                size=0,
                metadata={},
                created_at=datetime.now(UTC),
                deleted=rows[1].id,
            )
        )
    with pytest.raises(DuplicateEntry):
        _archive(database)
    with database.connection() as connection:
        live = set(connection.scalars(sa.select(table_of(Widget).c.id)))
        archived = list(connection.scalars(sa.select(shadow.c.name)))
    assert live == {rows[0].id, rows[1].id}
    assert archived == ["x"]


def test_bad_arguments(database: Database) -> None:
    with pytest.raises(DBError, match="batch_size"):
        _archive(database, batch_size=0)
    with pytest.raises(DBError, match="max_rows"):
        _archive(database, max_rows=-1)


def test_archived_tables_are_every_apps_list_in_order(apps: tuple[App, ...]) -> None:
    expected = [name for app in apps for name in app.archive]
    assert archived_tables(apps) == expected
    assert expected[-2:] == ["toy_parts", "toy_widgets"]


def test_default_archive_walks_the_installed_apps(database: Database) -> None:
    """Without ``apps``: every installed app's tables (not the toy's, which is not installed)."""
    _make_widgets(database, alive=0, deleted=1)
    moved = archive_deleted_rows(database)
    assert list(moved) == archived_tables()
    assert "toy_widgets" not in moved
    assert _counts(database, table_of(Widget))[:2] == (1, 0)


def test_an_app_archiving_a_table_it_does_not_declare_is_refused() -> None:
    wrong = App(name="wrong", models=("toy_app.models",), archive=("toy_gears",))
    with pytest.raises(DBError, match="App wrong archives 'toy_gears', which is no soft-delete"):
        archived_tables([wrong])
    twice = App(name="twice", models=("toy_app.models",), archive=("toy_parts", "toy_parts"))
    with pytest.raises(DBError, match="archived twice"):
        archived_tables([twice])
