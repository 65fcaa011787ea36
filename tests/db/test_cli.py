"""``podium db ...`` through click's CliRunner, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from podium.cli import main
from podium.context import RequestContext
from podium.db import Database
from podium.db import api as db_api
from podium.db.models import Instance, table_of

CTX = RequestContext()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["db", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_sync_and_version_from_empty(empty_url: str) -> None:
    code, out, err = _run("version", "--database-url", empty_url)
    assert (code, out) == (0, "none\n")
    assert "run `podium db sync`" in err
    code, out, _ = _run("sync", "--database-url", empty_url)
    assert code == 0 and "schema empty -> 0002" in out
    code, out, _ = _run("sync", "--database-url", empty_url)
    assert code == 0 and "already at 0002" in out
    code, out, err = _run("version", "--database-url", empty_url)
    assert (code, out, err) == (0, "0002\n", "")


def test_database_url_from_environment(empty_url: str) -> None:
    code, out, _ = _run("sync", env={"PODIUM_DATABASE_URL": empty_url})
    assert code == 0 and "0002" in out
    assert _run("version", env={"PODIUM_DATABASE_URL": empty_url})[1] == "0002\n"


def _table(output: str) -> dict[str, int]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["table", "archived"]
    return {name: int(count) for name, count in (line.split() for line in lines[1:])}


def test_archive_deleted_rows(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    rows = [db_api.instance_create(database, CTX, {"host": "h"}) for _ in range(5)]
    for row in rows[:4]:
        db_api.instance_destroy(database, CTX, row.uuid)
    table = table_of(Instance)
    with database.connection() as connection:
        connection.execute(
            table.update()
            .where(table.c.id == rows[0].id)
            .values(deleted_at=datetime.now(UTC) - timedelta(days=10))
        )
    day = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d")
    code, out, _ = _run("archive-deleted-rows", "--database-url", url, "--before", day)
    assert code == 0, out
    assert _table(out) == {"services": 0, "compute_nodes": 0, "instances": 1, "total": 1}
    code, out, _ = _run(
        "archive-deleted-rows", "--database-url", url, "--max-rows", "2", "--batch-size", "1"
    )
    assert _table(out)["instances"] == 2
    code, out, _ = _run("archive-deleted-rows", "--database-url", url)
    assert _table(out)["total"] == 1
    with database.connection() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(table)) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nosuchdb://host/x", "Unsupported database 'nosuchdb'"),
        ("postgresql+nosuchdriver://host/x", "Invalid database URL"),
        ("not a url", "Invalid database URL"),
        ("postgresql+psycopg://u:secret@host:notaport/db", "Invalid database URL"),
        ("sqlite://", "in-memory SQLite"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", "Cannot reach the database"),
        ("mysql+pymysql://root@127.0.0.1:1/test", "Cannot reach the database"),
    ],
)
def test_friendly_errors(url: str, expected: str) -> None:
    for command in ("sync", "version", "archive-deleted-rows"):
        code, _, err = _run(command, "--database-url", url)
        assert code == 1
        assert err.startswith("Error: ") and expected in err
        assert "Traceback" not in err
        assert "secret" not in err


def test_archive_needs_a_schema(empty_url: str) -> None:
    code, _, err = _run("archive-deleted-rows", "--database-url", empty_url)
    assert code == 1 and "run `podium db sync` first" in err


def test_bad_options() -> None:
    code, _, err = _run("archive-deleted-rows", "--batch-size", "0")
    assert code == 2 and "--batch-size" in err
    code, _, err = _run("archive-deleted-rows", "--before", "yesterday")
    assert code == 2 and "--before" in err
