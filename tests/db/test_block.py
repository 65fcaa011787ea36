"""block_db_access: run in a child process, so the test process is never poisoned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from podium.db import Database, allow_db_access, block_db_access
from podium.exceptions import DBNotAllowed

CHILD = textwrap.dedent(
    """
    import json, sys
    import sqlalchemy as sa
    from sqlalchemy import create_engine as imported_early
    from podium.context import RequestContext
    from podium.db import Database, block_db_access
    from podium.db import api as db_api
    from podium.exceptions import DBNotAllowed

    url = sys.argv[1]
    results = {}
    early = sa.create_engine(url)
    with early.connect() as connection:  # leaves a pooled connection behind
        connection.execute(sa.text("select 1"))
    used_before = Database(url)
    used_before.engine

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

    attempt("session", open_session)
    attempt("engine", lambda: Database(url).engine)  # ENGINE
    attempt("api", lambda: db_api.instance_get_all(Database(url), RequestContext()))  # API
    attempt("old_session", open_old_session)
    attempt("direct", direct)
    attempt("pooled", pooled)
    print(json.dumps(results))
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
        [sys.executable, str(script), url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert set(results) == {"session", "engine", "api", "old_session", "direct", "pooled"}
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


def test_allow_db_access_undoes_the_block(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    block_db_access("podium-test")
    try:
        with pytest.raises(DBNotAllowed, match=r"'podium-test'.*test_block\.py"):
            database.engine  # noqa: B018
    finally:
        allow_db_access()
    with database.session() as session:
        assert session.connection().exec_driver_sql("select 1").scalar() == 1
    database.dispose()
