"""``podium db ...`` through click's CliRunner, on every backend.

The toy application stands in as an installed one (``installed_apps`` patched),
so the commands show every branch: the framework's, the installed apps', the toy's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from toy_app.models import Widget

import podium.apps
from podium.apps import App
from podium.cli import main
from podium.db import Database, migration
from podium.db import api as db_api
from podium.db.models import table_of


@pytest.fixture(autouse=True)
def _toy_installed(monkeypatch: pytest.MonkeyPatch, apps: tuple[App, ...]) -> None:
    monkeypatch.setattr(podium.apps, "installed_apps", lambda: apps)


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["db", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_sync_and_version_from_empty(empty_url: str, apps: tuple[App, ...]) -> None:
    heads = migration.head_versions(apps)
    branches = ["podium", *(app.name for app in apps)]
    assert list(heads) == branches and branches[-1] == "toy"
    assert (heads["podium"], heads["toy"]) == ("podium_0001", "toy_0001")
    code, out, err = _run("version", "--database-url", empty_url)
    assert (code, out) == (0, "".join(f"{branch} none\n" for branch in branches))
    assert "run `podium db sync`" in err and "toy toy_0001" in err
    code, out, _ = _run("sync", "--database-url", empty_url)
    width = max(map(len, branches))
    assert code == 0
    assert out.splitlines()[1:] == [
        f"{branch:<{width}}  empty -> {heads[branch]}" for branch in branches
    ]
    code, out, _ = _run("sync", "--database-url", empty_url)
    assert code == 0
    assert out.splitlines()[1:] == [
        f"{branch:<{width}}  already at {heads[branch]}" for branch in branches
    ]
    code, out, err = _run("version", "--database-url", empty_url)
    assert (code, err) == (0, "")
    assert out == "".join(f"{branch} {heads[branch]}\n" for branch in branches)
    assert out.startswith("podium podium_0001\n") and out.endswith("toy toy_0001\n")


def test_version_hints_at_the_branch_behind(empty_url: str, apps: tuple[App, ...]) -> None:
    database = Database(empty_url)
    try:
        migration.sync(database, apps=apps)
        migration.downgrade(database, "toy@base", apps=apps)
    finally:
        database.dispose()
    code, out, err = _run("version", "--database-url", empty_url)
    assert code == 0 and out.endswith("toy none\n") and "podium podium_0001\n" in out
    assert err == "(newest is toy toy_0001; run `podium db sync`)\n"
    code, out, _ = _run("sync", "--database-url", empty_url)
    changes = dict(line.split(maxsplit=1) for line in out.splitlines()[1:])
    assert changes["toy"] == "empty -> toy_0001"
    assert changes["podium"] == "already at podium_0001"


def test_database_url_from_environment(empty_url: str) -> None:
    code, out, _ = _run("sync", env={"PODIUM_DATABASE_URL": empty_url})
    assert code == 0 and "podium_0001" in out
    out = _run("version", env={"PODIUM_DATABASE_URL": empty_url})[1]
    assert "podium podium_0001\n" in out and "toy toy_0001\n" in out


def _table(output: str) -> dict[str, int]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["table", "archived"]
    return {name: int(count) for name, count in (line.split() for line in lines[1:])}


def test_archive_deleted_rows(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    rows = [db_api.create(database, Widget, {"name": f"w{n}"}) for n in range(5)]
    for row in rows[:4]:
        database.run(lambda session, row=row: db_api.soft_delete(session, Widget, id=row.id))
    table = table_of(Widget)
    with database.connection() as connection:
        connection.execute(
            table.update()
            .where(table.c.id == rows[0].id)
            .values(deleted_at=datetime.now(UTC) - timedelta(days=10))
        )
    day = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d")
    code, out, _ = _run("archive-deleted-rows", "--database-url", url, "--before", day)
    assert code == 0, out
    counts = _table(out)
    assert (counts["toy_parts"], counts["toy_widgets"], counts["total"]) == (0, 1, 1)
    code, out, _ = _run(
        "archive-deleted-rows", "--database-url", url, "--max-rows", "2", "--batch-size", "1"
    )
    assert _table(out)["toy_widgets"] == 2
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
