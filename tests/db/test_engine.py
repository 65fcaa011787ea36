"""Database: URL handling, lazy engine, one transaction per session."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from toy_app.models import Widget

from podium.db import Database, default_url
from podium.db import api as db_api
from podium.exceptions import InvalidDatabaseURL


def test_default_url_is_env_then_sqlite_in_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PODIUM_DATABASE_URL", raising=False)
    assert default_url() == f"sqlite:///{tmp_path / 'podium.sqlite'}"
    assert Database().url.database == str(tmp_path / "podium.sqlite")
    monkeypatch.setenv("PODIUM_DATABASE_URL", "postgresql+psycopg://u:p@db/podium")
    assert Database().backend == "postgresql"


def test_engine_is_created_lazily(tmp_path: Path) -> None:
    path = tmp_path / "lazy.sqlite"
    database = Database(f"sqlite:///{path}")
    assert database._engine is None
    assert not path.exists()
    engine = database.engine
    assert database.engine is engine
    database.dispose()
    assert database._engine is None


def test_urls() -> None:
    mysql = Database("mysql+pymysql://root:secret@db/podium")
    assert mysql.url.query["charset"] == "utf8mb4"
    assert mysql.backend == "mysql"
    assert "secret" not in mysql.safe_url and "secret" not in repr(mysql)
    assert Database("mysql+pymysql://r@db/p?charset=latin1").url.query["charset"] == "latin1"
    assert Database("mariadb+pymysql://r@db/p").backend == "mysql"
    with pytest.raises(InvalidDatabaseURL, match="oracle"):
        Database("oracle://db/x").engine  # noqa: B018
    assert Database("::").safe_url == "<invalid URL>"


def test_sqlite_pragmas(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'p.sqlite'}")
    with database.connection() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    database.dispose()


def test_new_sqlite_file_waits_for_a_writer_before_switching_to_wal(tmp_path: Path) -> None:
    """Services starting together on a new file: one migrates, the others must wait.

    Switching a file to WAL needs a lock the writer holds, and SQLite refuses
    that at once ("database is locked") instead of honouring the busy timeout.
    """
    path = tmp_path / "new.sqlite"
    holding = threading.Event()
    release = threading.Event()

    def writer() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("CREATE TABLE t (x INTEGER)")
        connection.execute("BEGIN IMMEDIATE")
        holding.set()
        release.wait(10)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(10)
    threading.Timer(0.3, release.set).start()
    database = Database(f"sqlite:///{path}")
    try:
        started = time.monotonic()
        with database.connection() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert time.monotonic() - started >= 0.25  # it waited for the writer
    finally:
        database.dispose()
        release.set()
        thread.join()


def test_session_commits_or_rolls_back(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(Widget(name="a"))
        session.flush()
        raise RuntimeError("abort")
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Widget)) == 0
        session.add(Widget(name="a"))
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Widget)) == 1


def test_threads_share_one_database(database: Database) -> None:
    """The embedded deployment: many threads writing through one Database."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                row = db_api.create(database, Widget, {"name": f"t{n}-{i}"})
                database.run(
                    lambda session, row=row, i=i: db_api.update_live(
                        session, Widget, {"size": i}, id=row.id
                    )
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        rows = session.scalars(sa.select(Widget)).all()
    assert sorted(row.size for row in rows) == sorted(list(range(5)) * 4)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_fresh_connections(database: Database) -> None:
    with database.session() as session:
        session.execute(sa.select(1))
    assert database.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, never return into pytest
        code = 1
        try:
            fresh = database.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
            with database.session() as session:
                works = session.execute(sa.select(1)).scalar() == 1
            os.write(write, b"ok" if fresh and works else b"bad")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 10) == b"ok"
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    with database.session() as session:  # the parent's pooled connection still works
        assert session.execute(sa.select(1)).scalar() == 1
