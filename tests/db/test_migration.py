"""Migrations up from empty, on every backend: the framework's branch, every installed
application's and the toy application's, in one run; and their agreement with the models."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from toy_app import TOY

from podium.apps import App, installed_apps
from podium.db import Database, migration
from podium.db.models import Base, is_soft_delete, shadow_table, shadow_tables
from podium.exceptions import DBError

SRC = Path(__file__).parents[2] / "src" / "podium"


def _heads(apps: tuple[App, ...]) -> dict[str, str | None]:
    return dict(migration.head_versions(apps))


def test_sync_from_empty_migrates_every_branch_in_one_run(
    empty_url: str, apps: tuple[App, ...]
) -> None:
    database = Database(empty_url)
    try:
        branches = ["podium", *(app.name for app in installed_apps()), "toy"]
        assert "cloud" in branches  # the reference application, installed like any other
        assert migration.current_version(database, apps) == dict.fromkeys(branches)
        heads = _heads(apps)
        assert list(heads) == branches
        assert heads["podium"] == "podium_0001" and heads["toy"] == "toy_0001"
        assert heads["cloud"] is not None and heads["cloud"].startswith("cloud_")
        assert migration.sync(database, apps=apps) == heads
        assert migration.current_version(database, apps) == heads
        # a second sync is a no-op, not an error
        assert migration.sync(database, apps=apps) == heads
        tables = set(sa.inspect(database.engine).get_table_names())
        assert {"conductor_inbox", "rpc_dedup", "toy_widgets", "shadow_toy_widgets"} <= tables
        # the installed apps only: the toy branch is told by its revision's name
        assert migration.current_version(database) == heads
    finally:
        database.dispose()


def test_one_branch_at_a_time(empty_url: str, apps: tuple[App, ...]) -> None:
    database = Database(empty_url)
    try:
        after = migration.sync(database, "toy@head", apps=apps)
        assert after["toy"] == "toy_0001"
        assert all(version is None for branch, version in after.items() if branch != "toy")
        assert "conductor_inbox" not in sa.inspect(database.engine).get_table_names()
        assert migration.sync(database, apps=apps) == _heads(apps)
    finally:
        database.dispose()


def test_concurrent_syncs_all_succeed(empty_url: str, apps: tuple[App, ...]) -> None:
    """Services starting together may all run sync; one migrates, the others wait."""
    databases = [Database(empty_url) for _ in range(3)]
    errors: list[BaseException] = []
    results: list[dict[str, str | None]] = []

    def run(database: Database) -> None:
        try:
            results.append(migration.sync(database, apps=apps))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.dispose()
    assert errors == []
    assert results == [_heads(apps)] * 3


@pytest.mark.parametrize("backend", [pytest.param("mysql", marks=pytest.mark.mysql)])
def test_mysql_lock_is_released_only_once_the_version_is_committed(
    empty_url: str, apps: tuple[App, ...]
) -> None:
    """MySQL's lock is per session; released before the migration's commit, the
    next service would read no version and create the tables again."""
    database = Database(empty_url)
    observer = Database(empty_url)
    seen_at_release: list[dict[str, str | None]] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "RELEASE_LOCK" in statement:
            seen_at_release.append(migration.current_version(observer, apps))

    sa.event.listen(database.engine, "before_cursor_execute", on_execute)
    try:
        migration.sync(database, apps=apps)
    finally:
        database.dispose()
        observer.dispose()
    assert seen_at_release == [_heads(apps)]


def test_migrated_schema_matches_models(empty_url: str, apps: tuple[App, ...]) -> None:
    """Catches "changed a model, forgot the migration", in every branch."""
    database = Database(empty_url)
    try:
        migration.sync(database, apps=apps)
        shadow_tables()
        assert {"toy_widgets", "shadow_toy_widgets", "conductor_inbox"} <= set(Base.metadata.tables)
        with database.connection() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        database.dispose()


def test_shadow_tables_match_their_live_tables(empty_url: str, apps: tuple[App, ...]) -> None:
    database = Database(empty_url)
    try:
        migration.sync(database, apps=apps)
        inspector = sa.inspect(database.engine)
        live_tables = [t.name for t in Base.metadata.sorted_tables if is_soft_delete(t)]
        assert "toy_widgets" in live_tables and "toy_parts" in live_tables
        for name in live_tables:
            assert inspector.get_unique_constraints(f"shadow_{name}") == []
            live_columns = [c["name"] for c in inspector.get_columns(name)]
            assert [c["name"] for c in inspector.get_columns(f"shadow_{name}")] == live_columns
            # The archive copies by column name: the model's order may differ.
            assert sorted(c.name for c in shadow_table(name).columns) == sorted(live_columns)
        live = inspector.get_unique_constraints("toy_widgets")
        assert [c["column_names"] for c in live] == [["name", "deleted"]]
    finally:
        database.dispose()


def test_shadow_table_of_a_table_without_soft_delete_is_refused() -> None:
    with pytest.raises(DBError, match="'conductor_inbox' is no soft-delete table"):
        shadow_table("conductor_inbox")
    with pytest.raises(DBError, match="'no_such_table' is no soft-delete table"):
        shadow_table("no_such_table")


def test_downgrade_to_base_and_up_again(empty_url: str, apps: tuple[App, ...]) -> None:
    database = Database(empty_url)
    try:
        migration.sync(database, apps=apps)
        after = migration.downgrade(database, "toy@base", apps=apps)
        assert after["toy"] is None and after["podium"] == "podium_0001"
        assert "toy_widgets" not in sa.inspect(database.engine).get_table_names()
        assert set(migration.downgrade(database, "base", apps=apps).values()) == {None}
        assert sa.inspect(database.engine).get_table_names() == ["alembic_version"]
        assert migration.sync(database, apps=apps) == _heads(apps)
    finally:
        database.dispose()


def test_migrations_are_package_data() -> None:
    versions = migration.MIGRATIONS_DIR / "versions"
    assert (migration.MIGRATIONS_DIR / "env.py").is_file()
    assert (migration.MIGRATIONS_DIR / "script.py.mako").is_file()
    # __init__.py files make setuptools ship these as packages; Alembic skips them.
    assert (migration.MIGRATIONS_DIR / "__init__.py").is_file()
    assert (versions / "__init__.py").is_file()
    # The framework's branch holds its request records only.
    assert sorted(p.name for p in versions.glob("*.py")) == [
        "__init__.py",
        "podium_0001_request_records.py",
    ]


def test_check_schema_refuses_a_branch_behind_and_serves_a_newer_one(
    empty_url: str, apps: tuple[App, ...]
) -> None:
    database = Database(empty_url)
    try:
        with pytest.raises(
            DBError, match=r"podium at none \(empty\), this code needs podium_0001.*toy at none"
        ):
            migration.check_schema(database, apps)
        migration.sync(database, apps=apps)
        assert migration.check_schema(database, apps) == _heads(apps)
        migration.downgrade(database, "toy@base", apps=apps)
        with pytest.raises(
            DBError, match=r"behind: toy at none \(empty\), this code needs toy_0001"
        ):
            migration.check_schema(database, apps)
        # A newer release migrated first (rolling upgrade): still served.
        migration.sync(database, apps=apps)
        with database.connection() as connection:
            connection.execute(
                sa.text(
                    "UPDATE alembic_version SET version_num = 'toy_0009' "
                    "WHERE version_num = 'toy_0001'"
                )
            )
        served = migration.check_schema(database, apps)
        assert served["toy"] == "toy_0009" and served["podium"] == "podium_0001"
        assert migration.current_version(database, apps)["toy"] == "toy_0009"
    finally:
        database.dispose()


def test_an_app_whose_migrations_carry_no_branch_label_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "unlabelled_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nolabel_0001.py").write_text(
        'revision = "nolabel_0001"\ndown_revision = None\nbranch_labels = None\n'
        "depends_on = None\n\ndef upgrade() -> None: ...\n\ndef downgrade() -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = App(name="nolabel", migrations="unlabelled_migrations")
    with pytest.raises(DBError, match="nolabel"):
        migration.head_versions([TOY, app])
    missing = App(name="missing", migrations="no_such_package_here")
    with pytest.raises(DBError, match="App missing: migrations 'no_such_package_here'"):
        migration.head_versions([missing])


def _python_sources(package: str) -> list[Path]:
    root = SRC / package
    return [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))


@pytest.mark.parametrize(
    "package", ["db", "objects", "rpc", "conductor", "service", "apps.py", "cli.py"]
)
def test_the_framework_never_names_an_application(package: str) -> None:
    """The framework serves whatever applications are installed: it imports none and
    names none (an import by string would hide from an import check)."""
    for path in _python_sources(package):
        text = path.read_text()
        assert not re.search(r"podium\.cloud|podium/cloud", text), path
        assert not re.search(r"\btoy\b|toy_app", text), path


def test_importing_the_framework_imports_no_application() -> None:
    import subprocess
    import sys

    modules = [
        "podium.db",
        "podium.db.api",
        "podium.db.archive",
        "podium.db.migration",
        "podium.db.cli",
        "podium.objects",
        "podium.rpc",
        "podium.conductor",
        "podium.service",
        "podium.apps",
    ]
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m.startswith('podium.cloud')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
