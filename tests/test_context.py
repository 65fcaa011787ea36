import logging

import pytest

from podium.context import RequestContext, RequestIdLogFilter, current_request_id


def test_round_trip_keeps_every_key() -> None:
    ctx = RequestContext(
        user_id="u", project_id="p", roles=["member"], read_deleted="yes", extra={"k": 1}
    )
    again = RequestContext.from_dict(ctx.to_dict())
    assert again == ctx


def test_from_oslo_style_dict() -> None:
    ctx = RequestContext.from_dict({"user": "u", "tenant": "t", "request_id": "req-1"})
    assert (ctx.user_id, ctx.project_id, ctx.request_id) == ("u", "t", "req-1")


def test_bad_read_deleted_is_refused() -> None:
    with pytest.raises(ValueError, match="read_deleted"):
        RequestContext(read_deleted="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read_deleted"):
        RequestContext.from_dict({"read_deleted": "maybe"})


def test_elevated_is_a_copy() -> None:
    ctx = RequestContext(user_id="u", roles=["member"])
    admin = ctx.elevated(read_deleted="yes")
    assert admin.is_admin and "admin" in admin.roles and admin.read_deleted == "yes"
    assert not ctx.is_admin and ctx.roles == ["member"]


def test_request_id_reaches_log_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    ctx = RequestContext()
    with ctx.activated():
        RequestIdLogFilter().filter(record)
    assert record.request_id == ctx.request_id  # type: ignore[attr-defined]
    assert current_request_id.get() is None
