"""The generic DB helpers on every backend, on the toy application's tables:
soft delete, read_deleted, uniqueness with deleted twins, compare-and-swap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.orm import Session
from toy_app.models import Widget

from podium.context import RequestContext
from podium.db import Database
from podium.db import api as db_api
from podium.db.models import table_of
from podium.db.query import model_query
from podium.exceptions import DBError, DuplicateEntry, NotFound

CTX = RequestContext(user_id="u1", project_id="p1")
YES = RequestContext(read_deleted="yes")
ONLY = RequestContext(read_deleted="only")
W = table_of(Widget)


def _widget(database: Database, name: str, **values: object) -> Widget:
    return db_api.create(database, Widget, {"name": name, **values})


def _names(database: Database, context: RequestContext) -> set[str]:
    return database.run(
        lambda session: {row.name for row in session.scalars(model_query(Widget, context))}
    )


def test_create_fills_defaults(database: Database) -> None:
    row = _widget(database, "w ☃ 🚀", metadata={"k": "v", "n": [1, 2]})
    assert row.id > 0 and row.size == 0 and row.colour is None
    assert row.deleted == 0 and row.deleted_at is None and row.updated_at is None
    assert row.created_at.tzinfo is UTC
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    fetched = db_api.get(database, CTX, Widget, id=row.id)
    assert fetched.name == "w ☃ 🚀"
    assert fetched.metadata_ == {"k": "v", "n": [1, 2]}
    assert fetched["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.to_dict()["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.created_at == row.created_at  # microseconds survive (DATETIME(6))


def test_unknown_and_bookkeeping_columns_are_refused(database: Database) -> None:
    with pytest.raises(DBError, match="toy_widgets has no column 'weight'"):
        _widget(database, "a", weight=3)
    for column in ("id", "deleted", "deleted_at"):
        with pytest.raises(DBError, match=f"toy_widgets.{column} cannot be set directly"):
            _widget(database, "a", **{column: 1})


def test_get_missing_names_table_and_key(database: Database) -> None:
    with pytest.raises(NotFound, match=r"No toy_widgets row with name='nope'"):
        db_api.get(database, CTX, Widget, name="nope")


def test_soft_delete_keeps_the_row(database: Database) -> None:
    row = _widget(database, "a", colour="red")
    deleted = database.run(lambda session: db_api.soft_delete(session, Widget, name="a"))
    assert deleted.deleted == row.id and deleted.deleted_at is not None
    assert deleted.updated_at is None  # a soft delete keeps updated_at
    assert deleted.colour == "red"
    with pytest.raises(NotFound):
        db_api.get(database, CTX, Widget, name="a")
    assert db_api.get(database, YES, Widget, name="a").deleted == row.id
    with pytest.raises(NotFound, match="No live toy_widgets row with name='a'"):
        database.run(lambda session: db_api.soft_delete(session, Widget, name="a"))
    with pytest.raises(NotFound, match="No live toy_widgets row with id="):
        database.run(lambda session: db_api.update_live(session, Widget, {"size": 1}, id=row.id))


def test_read_deleted_no_yes_only(database: Database) -> None:
    _widget(database, "live")
    _widget(database, "gone")
    database.run(lambda session: db_api.soft_delete(session, Widget, name="gone"))
    assert _names(database, CTX) == {"live"}
    assert _names(database, YES) == {"live", "gone"}
    assert _names(database, ONLY) == {"gone"}
    with pytest.raises(NotFound):
        db_api.get(database, ONLY, Widget, name="live")


def test_unique_constraint_with_deleted_twins_and_newest_first(database: Database) -> None:
    first = _widget(database, "twin")
    with pytest.raises(DuplicateEntry, match="toy_widgets"):
        _widget(database, "twin")

    def delete(session: Session) -> Widget:
        return db_api.soft_delete(session, Widget, name="twin")

    database.run(delete)
    second = _widget(database, "twin")  # allowed: the twin is deleted
    with pytest.raises(DuplicateEntry):
        _widget(database, "twin")
    database.run(delete)
    third = _widget(database, "twin")
    assert len({first.id, second.id, third.id}) == 3
    # the live row wins a read when deleted rows are visible, then the newest twin
    assert db_api.get(database, YES, Widget, name="twin").id == third.id
    assert db_api.get(database, ONLY, Widget, name="twin").id == second.id


def test_update_live_returns_the_row_as_stored(database: Database) -> None:
    row = _widget(database, "a")
    now = datetime.now(UTC)
    updated = database.run(
        lambda session: db_api.update_live(
            session, Widget, {"size": 4, "metadata_": {"a": 1}, "updated_at": now}, name="a"
        ),
        single_statement=db_api.returns_updates(database),
    )
    assert (updated.id, updated.size, updated.metadata_, updated.updated_at) == (
        row.id,
        4,
        {"a": 1},
        now,
    )
    assert db_api.get(database, CTX, Widget, id=row.id).size == 4


def test_returns_updates_says_which_backends_have_update_returning(
    database: Database, backend: str
) -> None:
    assert db_api.returns_updates(database) is (backend != "mysql")


def _cas(database: Database, widget_id: int, expected: int, new: int) -> Widget | None:
    """A compare-and-swap on ``size``, as an application builds one."""
    where = [W.c.id == widget_id, W.c.deleted == 0, W.c.size == expected]
    identity = [W.c.id == widget_id]
    return database.run(
        lambda session: db_api.update_returning(session, Widget, {"size": new}, where, identity),
        single_statement=db_api.returns_updates(database),
    )


def test_update_returning_is_a_compare_and_swap(database: Database) -> None:
    row = _widget(database, "a", size=1)
    assert _cas(database, row.id, expected=2, new=3) is None
    assert db_api.get(database, CTX, Widget, id=row.id).size == 1
    swapped = _cas(database, row.id, expected=1, new=3)
    assert swapped is not None and (swapped.id, swapped.size) == (row.id, 3)


def test_compare_and_swap_has_one_winner(database: Database) -> None:
    row = _widget(database, "a", size=0)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def contend(new: int) -> None:
        won = _cas(database, row.id, expected=0, new=new) is not None
        with lock:
            outcomes.append(won)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 5 + [True]


def _row_cas(
    database: Database, name: str, values: dict[str, object], expected: dict[str, list[object]]
) -> Widget | None:
    return database.run(
        lambda session: db_api.update_row(session, Widget, values, {"name": name}, expected),
        single_statement=db_api.returns_updates(database),
    )


def test_update_row_is_a_compare_and_swap_on_the_live_row(database: Database) -> None:
    row = _widget(database, "a", size=1)
    assert _row_cas(database, "a", {"colour": "red"}, {"size": [2, 3]}) is None
    assert _row_cas(database, "a", {"colour": "red"}, {"colour": ["blue"]}) is None
    assert _row_cas(database, "a", {"colour": "red"}, {"size": []}) is None  # nothing allowed
    assert db_api.get(database, CTX, Widget, id=row.id).colour is None
    # None among the expected values stands for NULL; several columns must all match.
    swapped = _row_cas(database, "a", {"colour": "red"}, {"colour": ["blue", None], "size": [1]})
    assert swapped is not None
    assert (swapped.id, swapped.colour, swapped.size) == (row.id, "red", 1)
    assert _row_cas(database, "a", {"colour": "green"}, {"colour": [None]}) is None
    # The same shape again, new values: the statement built once is run again.
    again = _row_cas(database, "a", {"colour": "green"}, {"colour": ["blue", "red"], "size": [1]})
    assert again is not None and again.colour == "green"
    database.run(lambda session: db_api.soft_delete(session, Widget, name="a"))
    assert _row_cas(database, "a", {"colour": "red"}, {}) is None  # deleted rows are not live


def test_update_row_returns_a_detached_row_as_stored(database: Database) -> None:
    row = _widget(database, "a")
    now = datetime.now(UTC)
    updated = _row_cas(database, "a", {"metadata_": {"k": "v"}, "made_at": now, "name": "b"}, {})
    assert updated is not None and isinstance(updated, Widget)
    assert (updated.id, updated.name, updated.made_at, updated["metadata"]) == (
        row.id,
        "b",  # read back by the key as it is now (MariaDB reads the row back)
        now,
        {"k": "v"},
    )
    assert updated.to_dict()["created_at"] == row.created_at
    assert updated.updated_at is not None  # the column's onupdate default applied
    assert db_api.get(database, CTX, Widget, id=row.id).name == "b"


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_update_row_works_as_a_process_first_use_of_the_models(database: Database) -> None:
    """A conductor's first call may be an update: before any ORM query has
    configured the mappers, the row it returns is still readable."""
    _widget(database, "a")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from toy_app.models import Widget
        from podium.db import Database, api
        database = Database({database.url.render_as_string(hide_password=False)!r})
        row = database.run(lambda s: api.update_row(s, Widget, {{"size": 3}}, {{"name": "a"}}))
        print(row.name, row.size)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "a 3\n", "")


_GROW = db_api.PreparedUpdate(
    Widget,
    update(W)
    .where(
        W.c.name == bindparam("name"),
        W.c.deleted == 0,
        or_(W.c.colour.is_(None), W.c.colour != bindparam("colour")),
    )
    .values(size=W.c.size + bindparam("by"), colour=bindparam("colour"), updated_at=func.now()),
    [W.c.name == bindparam("name"), W.c.deleted == 0],
)


def test_a_prepared_update_runs_again_with_new_values(database: Database) -> None:
    """SQL expressions, a bind name used twice, a condition that matches nothing."""
    row = _widget(database, "a", size=1)

    def grow(by: int, colour: str) -> Widget | None:
        params = {"name": "a", "by": by, "colour": colour}
        return database.run(lambda session: _GROW.run(session, params))

    grown = grow(2, "red")
    assert grown is not None and isinstance(grown, Widget)
    assert (grown.id, grown.size, grown.colour) == (row.id, 3, "red")
    assert grown.updated_at is not None
    assert grow(5, "red") is None  # already red: the condition matches nothing
    again = grow(5, "blue")
    assert again is not None and (again.size, again.colour) == (8, "blue")
    assert db_api.get(database, CTX, Widget, id=row.id).size == 8


def test_a_prepared_update_runs_after_a_failed_one_and_on_a_new_connection(
    database: Database,
) -> None:
    """The driver's cursor prepared statements share serves on after a statement
    failed on it, and a connection the pool replaced gets its own."""
    _widget(database, "a")
    _widget(database, "b")

    def rename(name: str, to: str) -> Widget | None:
        return database.run(
            lambda session: db_api.update_row(session, Widget, {"name": to}, {"name": name})
        )

    with pytest.raises(DuplicateEntry):
        rename("a", "b")
    renamed = rename("a", "c")
    assert renamed is not None and renamed.name == "c"
    with database.engine.connect() as connection:  # the pool's one connection, used in turn
        connection.invalidate()
    renamed = rename("c", "d")
    assert renamed is not None and renamed.name == "d"
    assert _names(database, CTX) == {"b", "d"}


def test_update_row_takes_plain_values_only(database: Database) -> None:
    _widget(database, "a")
    with pytest.raises(TypeError, match="plain values"):
        _row_cas(database, "a", {"size": W.c.size + 1}, {})


def test_naive_datetimes_are_taken_as_utc(database: Database) -> None:
    row = _widget(database, "a", made_at=datetime(2026, 1, 2, 3, 4, 5, 678901))
    fetched = db_api.get(database, CTX, Widget, id=row.id)
    assert fetched.made_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_bad_values_are_db_errors(database: Database) -> None:
    with pytest.raises(DBError, match="expected a datetime"):
        _widget(database, "a", made_at="yesterday")
    _widget(database, "b")
    with pytest.raises(DBError, match="expected a datetime"):
        database.run(lambda session: db_api.update_live(session, Widget, {"made_at": 5}, name="b"))


def test_helpers_compose_in_one_transaction(database: Database) -> None:
    """An application's DB function: several helpers in one db.run, all or nothing."""
    _widget(database, "a")

    def work(session: Session) -> None:
        db_api.update_live(session, Widget, {"size": 9}, name="a")
        db_api.soft_delete(session, Widget, name="missing")  # NotFound: rolls back the update

    with pytest.raises(NotFound):
        database.run(work)
    assert db_api.get(database, CTX, Widget, name="a").size == 0
