"""The curated public surface of podium.db (others code against these names)."""

from __future__ import annotations

import inspect

import podium.db
from podium.db import api


def test_package_exports() -> None:
    assert podium.db.__all__ == ["Database", "allow_db_access", "block_db_access", "default_url"]
    for name in podium.db.__all__:
        assert getattr(podium.db, name) is not None


def test_api_is_the_generic_helpers() -> None:
    assert api.__all__ == [
        "PreparedUpdate",
        "create",
        "get",
        "get_one",
        "insert_row",
        "returns_updates",
        "soft_delete",
        "update_live",
        "update_returning",
        "update_row",
    ]
    # A Database (own transaction) or a Session (composed in the caller's) first.
    for name in api.__all__:
        if inspect.isclass(getattr(api, name)):
            continue  # a statement built once, run with a Session (its run())
        first = next(iter(inspect.signature(getattr(api, name)).parameters))
        assert first in ("db", "session"), name
