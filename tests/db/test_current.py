"""podium.db.current: the database object code uses, per call or per process."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from podium.db import Database
from podium.db.current import get_database, set_default_database, use_database


def test_bound_database_wins_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    default = Database(f"sqlite:///{tmp_path / 'default.sqlite'}")
    bound = Database(f"sqlite:///{tmp_path / 'bound.sqlite'}")
    set_default_database(None)
    try:
        from_env = get_database()
        assert from_env.url.database == str(tmp_path / "env.sqlite")
        set_default_database(default)
        assert get_database() is default
        seen_in_thread: list[Database] = []
        with use_database(bound):
            assert get_database() is bound
            # a binding is per call (context variable), not per process
            thread = threading.Thread(target=lambda: seen_in_thread.append(get_database()))
            thread.start()
            thread.join()
        assert seen_in_thread == [default]
        assert get_database() is default
    finally:
        set_default_database(None)
