"""Database URLs checked before anything is opened, with the scheme to use instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.db import Database
from podium.db.engine import check_url
from podium.exceptions import DBConnectionError, InvalidDatabaseURL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:S3cret@db/x", "use mysql+pymysql://"),
        ("mariadb://u:S3cret@db/x", "use mariadb+pymysql://"),
        ("postgres://u:S3cret@db/x", "did you mean postgresql+psycopg://?"),
        ("postgresql+psycopg2://u:S3cret@db/x", "its driver is not installed"),
        ("postgresql+nosuch://u:S3cret@db/x", "no such driver"),
        ("oracle://u:S3cret@db/x", "Unsupported database 'oracle'"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("db.sqlite", "does not read as dialect+driver://"),
    ],
)
def test_a_url_that_cannot_work_is_refused_with_a_hint(url: str, expected: str) -> None:
    with pytest.raises(InvalidDatabaseURL) as raised:
        check_url(url)
    assert expected in str(raised.value)
    assert "S3cret" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.sqlite",
        "postgresql+psycopg://u:p@db/x",
        "postgresql://u:p@db/x",
        "mysql+pymysql://u:p@db/x",
    ],
)
def test_a_usable_url_opens_nothing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_url(url).get_backend_name() in ("sqlite", "postgresql", "mysql")
    assert not (tmp_path / "relative.sqlite").exists()


def test_a_host_that_does_not_resolve_is_unreachable() -> None:
    database = Database("postgresql+psycopg://u:S3cret@no-such-host.invalid/x", retry_attempts=1)
    try:
        with pytest.raises(DBConnectionError) as raised, database.connection():
            pass
    finally:
        database.dispose()
    assert "Cannot reach the database at postgresql+psycopg://u:***@no-such-host.invalid/x" in (
        str(raised.value)
    )


def test_a_sqlite_file_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "podium.sqlite"
    database = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(DBConnectionError) as raised, database.connection():
            pass
    finally:
        database.dispose()
    assert str(path) in str(raised.value) and "unable to open database file" in str(raised.value)
