"""Query helpers for application code: model_query and soft_delete."""

from __future__ import annotations

import pytest
from toy_app.models import Widget

from podium.context import RequestContext
from podium.db import Database
from podium.db.query import deleted_filter, model_query, soft_delete
from podium.exceptions import DBError


def test_model_query_and_soft_delete(database: Database) -> None:
    with database.session() as session:
        session.add_all([Widget(name=f"h{i}") for i in range(3)])
    with database.session() as session:
        assert soft_delete(session, Widget, Widget.name.in_(["h0", "h1"])) == 2
        assert soft_delete(session, Widget, Widget.name == "h0") == 0  # already deleted
    with database.session() as session:
        hosts = session.scalars(model_query(Widget, RequestContext()).order_by(Widget.id))
        assert [s.name for s in hosts] == ["h2"]
        only = list(session.scalars(model_query(Widget, RequestContext(read_deleted="only"))))
        assert sorted(s.name for s in only) == ["h0", "h1"]
        assert all(s.deleted == s.id and s.deleted_at is not None for s in only)
        assert all(s.updated_at is None for s in only)  # soft delete keeps updated_at
        every = session.scalars(model_query(Widget, RequestContext(), read_deleted="yes"))
        assert len(list(every)) == 3


def test_deleted_filter_refuses_unknown_mode() -> None:
    with pytest.raises(DBError, match="read_deleted"):
        deleted_filter(Widget, "maybe")  # type: ignore[arg-type]
