"""The curated public surface of podium.db (others code against these names)."""

from __future__ import annotations

import inspect

import podium.db
from podium.db import api


def test_package_exports() -> None:
    assert podium.db.__all__ == ["Database", "allow_db_access", "block_db_access", "default_url"]
    for name in podium.db.__all__:
        assert getattr(podium.db, name) is not None


def test_every_api_function_takes_db_and_context_first() -> None:
    assert api.__all__ == sorted(api.__all__)
    for name in api.__all__:
        parameters = list(inspect.signature(getattr(api, name)).parameters)
        assert parameters[:2] == ["db", "context"], name
