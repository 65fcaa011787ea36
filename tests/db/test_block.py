"""block_db_access: run in a child process, so the test process is never poisoned.

Each way into the database that goes through podium or SQLAlchemy is tried
after the block; the ways docs/db.md says are not covered are tried too, so
the page cannot claim more than the code does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from podium.db import Database, allow_db_access, block_db_access
from podium.exceptions import DBNotAllowed

CHILD = textwrap.dedent(
    """
    import json, sqlite3, sys
    import sqlalchemy as sa
    from sqlalchemy import create_engine as imported_early
    from sqlalchemy import event
    from sqlalchemy.orm import Mapped, mapped_column
    from podium.context import RequestContext
    from podium.db import Database, block_db_access
    from podium.db import api as db_api
    from podium.db.models import Base, SoftDeleteMixin
    from podium.exceptions import DBNotAllowed

    class Thing(SoftDeleteMixin, Base):  # an application's table
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)

    url, path = sys.argv[1], sys.argv[2]
    results = {}

    def warm_engine():
        engine = sa.create_engine(url)
        with engine.connect() as connection:  # leaves a pooled connection behind
            connection.execute(sa.text("select 1"))
        return engine

    early = warm_engine()
    warm = warm_engine()
    held = sa.create_engine(url).connect()  # checked out before the block, kept
    held.execute(sa.text("select 1"))
    raw_before = sa.create_engine(url).raw_connection()  # a DBAPI connection, kept
    used_before = Database(url)
    with used_before.session() as session:
        session.execute(sa.text("select 1"))
    closed = []
    event.listen(used_before.engine.pool, "close", lambda *args: closed.append(1))

    block_db_access("podium-compute")  # BLOCK

    def attempt(name, fn):
        try:
            fn()
        except DBNotAllowed as error:
            results[name] = str(error)
        else:
            results[name] = None

    def open_session():
        with Database(url).session():  # SESSION
            pass

    def open_old_session():
        with used_before.session():
            pass

    def direct():
        with imported_early(url).connect():  # DIRECT
            pass

    def pooled():
        with early.connect():
            pass

    def raw():
        warm.raw_connection()  # RAW

    def statement():
        held.execute(sa.text("select 1"))  # HELD

    attempt("session", open_session)
    attempt("engine", lambda: Database(url).engine)  # ENGINE
    attempt("api", lambda: db_api.get(Database(url), RequestContext(), Thing, id=1))  # API
    attempt("old_session", open_old_session)
    attempt("direct", direct)
    attempt("pooled", pooled)
    attempt("raw", raw)
    attempt("statement", statement)

    # Not covered, as docs/db.md says: the DBAPI used directly.
    cursor = raw_before.cursor()
    cursor.execute("select 1")
    not_covered = {
        "dbapi_connection_taken_before": cursor.fetchone()[0],
        "sqlite3_connect": sqlite3.connect(path).execute("select 1").fetchone()[0],
    }
    print(json.dumps({"refused": results, "closed": len(closed), "not_covered": not_covered}))
    """
)


def _line_of(marker: str) -> int:
    for number, line in enumerate(CHILD.splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(marker)


def test_block_db_access_in_a_worker_process(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(CHILD)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    done = subprocess.run(
        [sys.executable, str(script), url, str(tmp_path / "other.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    results = report["refused"]
    assert set(results) == {
        "session",
        "engine",
        "api",
        "old_session",
        "direct",
        "pooled",
        "raw",
        "statement",
    }
    for name, message in results.items():
        assert message is not None, f"{name}: no DBNotAllowed"
        assert "'podium-compute'" in message
        assert f"block_db_access() was called at {script}:{_line_of('# BLOCK')}" in message
    # the call site named is the worker's own line, not podium's or SQLAlchemy's
    assert f"{script}:{_line_of('# SESSION')} " in results["session"]
    assert f"{script}:{_line_of('# ENGINE')} " in results["engine"]
    assert f"{script}:{_line_of('# API')} " in results["api"]
    assert "tried to open a database connection" in results["direct"]
    assert f"{script}:{_line_of('# DIRECT')} " in results["direct"]
    assert "tried to use a database connection" in results["pooled"]
    assert "tried to use a database connection" in results["raw"]
    assert f"{script}:{_line_of('# RAW')} " in results["raw"]
    assert "tried to run a statement" in results["statement"]
    assert f"{script}:{_line_of('# HELD')} " in results["statement"]
    # podium's engine closed its idle pooled connection at the block
    assert report["closed"] == 1
    assert report["not_covered"] == {"dbapi_connection_taken_before": 1, "sqlite3_connect": 1}


def test_allow_db_access_undoes_the_block(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    database = Database(url)
    plain = sa.create_engine(url)
    held = plain.connect()
    block_db_access("podium-test")
    try:
        with pytest.raises(DBNotAllowed, match=r"'podium-test'.*test_block\.py"):
            database.engine  # noqa: B018
        with pytest.raises(DBNotAllowed, match=r"'podium-test'.*test_block\.py"):
            held.exec_driver_sql("select 1")
        with pytest.raises(DBNotAllowed, match=r"'podium-test'.*test_block\.py"):
            plain.raw_connection()
    finally:
        allow_db_access()
    assert held.exec_driver_sql("select 1").scalar() == 1
    held.close()
    plain.raw_connection().close()
    plain.dispose()
    with database.session() as session:
        assert session.connection().exec_driver_sql("select 1").scalar() == 1
    database.dispose()
