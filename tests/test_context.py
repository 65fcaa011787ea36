import logging
from typing import Any

import pytest

from podium.context import (
    RequestContext,
    RequestIdLogFilter,
    current_request_id,
    get_admin_context,
)
from podium.exceptions import MalformedContext, MalformedMessage


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


# -- a context is checked field by field, wherever it comes from -------------------

_LONG = "x" * 256


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"is_admin": "false"}, "is_admin"),
        ({"is_admin": "true"}, "is_admin"),
        ({"is_admin": 1}, "is_admin"),
        ({"is_admin": 0}, "is_admin"),
        ({"is_admin": []}, "is_admin"),
        ({"roles": "admin"}, "roles"),
        ({"roles": {"admin": True}}, "roles"),
        ({"roles": ["member", 1]}, "roles"),
        ({"roles": [None]}, "roles"),
        ({"roles": [["admin"]]}, "roles"),
        ({"roles": [f"r{i}" for i in range(65)]}, "roles"),
        ({"roles": [_LONG]}, "roles"),
        ({"user_id": {"id": "u"}}, "user_id"),
        ({"user_id": 5}, "user_id"),
        ({"user": ["u"]}, "user"),
        ({"user_id": _LONG}, "user_id"),
        ({"project_id": 1.5}, "project_id"),
        ({"project": {}}, "project"),
        ({"tenant": []}, "tenant"),
        ({"tenant": True}, "tenant"),
        ({"request_id": 5}, "request_id"),
        ({"request_id": ["req-1"]}, "request_id"),
        ({"request_id": 0}, "request_id"),
        ({"request_id": False}, "request_id"),
        ({"request_id": "req-" + _LONG}, "request_id"),
        ({"request_id": "req-1\nINFO forged log line"}, "request_id"),
        ({"global_request_id": 7}, "global_request_id"),
        ({"global_request_id": "req-1\r\n"}, "global_request_id"),
        ({"global_request_id": "req-" + _LONG}, "global_request_id"),
        ({"read_deleted": "maybe"}, "read_deleted"),
        ({"read_deleted": ""}, "read_deleted"),
        ({"read_deleted": True}, "read_deleted"),
        ({"auth_token": object()}, "auth_token"),
        ({"service_catalog": [{"endpoints": {1, 2}}]}, "service_catalog"),
        ({1: "not a name"}, "1"),
    ],
)
def test_ill_typed_field_is_refused(values: dict[Any, Any], field: str) -> None:
    with pytest.raises(MalformedContext, match=field) as info:
        RequestContext.from_dict(values)
    assert isinstance(info.value, MalformedMessage)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 300  # a long value is never echoed whole


@pytest.mark.parametrize("values", [["is_admin", True], "is_admin=true", None, 5])
def test_a_context_that_is_not_an_object_is_refused(values: Any) -> None:
    with pytest.raises(MalformedContext, match="JSON object"):
        RequestContext.from_dict(values)


def test_extra_values_too_deeply_nested_are_refused() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(MalformedContext, match="nested"):
        RequestContext.from_dict({"k": deep})
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(MalformedContext, match="nested"):
        RequestContext(extra={"k": cyclic})


def test_the_error_never_shows_an_extra_value() -> None:
    class Secret:
        def __repr__(self) -> str:
            return "S3cretToken"

    with pytest.raises(MalformedContext) as info:
        RequestContext.from_dict({"auth_token": Secret()})
    assert "S3cretToken" not in str(info.value)
    assert "auth_token" in str(info.value)


def test_absent_or_null_fields_take_their_defaults() -> None:
    ctx = RequestContext.from_dict(
        {
            "user_id": None,
            "project_id": None,
            "roles": None,
            "is_admin": None,
            "request_id": None,
            "read_deleted": None,
        }
    )
    assert (ctx.user_id, ctx.project_id, ctx.roles, ctx.is_admin, ctx.read_deleted) == (
        None,
        None,
        [],
        False,
        "no",
    )
    assert ctx.request_id.startswith("req-")
    assert RequestContext.from_dict({}).is_admin is False


@pytest.mark.parametrize(
    "values",
    [
        {"user_id": "alice", "user": "mallory"},
        {"project_id": "p1", "project": "p2"},
        {"project_id": "p1", "tenant": "p2"},
        {"project": "p1", "tenant": "p2"},
    ],
)
def test_aliases_that_disagree_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(MalformedContext, match="disagree"):
        RequestContext.from_dict(values)


def test_aliases_that_agree_or_are_null_are_one_value() -> None:
    ctx = RequestContext.from_dict(
        {"user_id": "u", "user": "u", "project_id": None, "project": "p", "tenant": "p"}
    )
    assert (ctx.user_id, ctx.project_id) == ("u", "p")


def test_a_real_oslo_context_is_accepted_with_all_its_keys() -> None:
    oslo_context = pytest.importorskip("oslo_context.context")
    sent = oslo_context.RequestContext(
        user_id="u",
        project_id="p",
        domain_id="d",
        auth_token="gAAAAAB-token",
        roles=["member", "reader"],
        is_admin=True,
        show_deleted=True,
        read_only=True,
        resource_uuid="r-1",
        global_request_id="req-12345678-1234-1234-1234-123456789abc",
        system_scope="all",
    ).to_dict()
    # What nova.context adds on top of oslo.context's keys.
    sent.update(
        user_id="u",
        read_deleted="yes",
        remote_address="192.0.2.1",
        timestamp="2026-01-01T00:00:00.000000",
        quota_class=None,
        user_name="alice",
        project_name="demo",
        service_catalog=[{"type": "image", "name": "glance", "endpoints": [{"url": "http://g"}]}],
    )
    ctx = RequestContext.from_dict(sent)
    assert (ctx.user_id, ctx.project_id, ctx.roles, ctx.is_admin, ctx.read_deleted) == (
        "u",
        "p",
        ["member", "reader"],
        True,
        "yes",
    )
    assert ctx.extra["auth_token"] == "gAAAAAB-token"
    assert ctx.extra["service_catalog"] == sent["service_catalog"]
    back = ctx.to_dict()
    assert {k: back[k] for k in sent} == sent
    again = oslo_context.RequestContext.from_dict(back)
    assert (again.user_id, again.project_id, again.is_admin) == ("u", "p", True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"is_admin": "false"}, "is_admin"),
        ({"is_admin": 1}, "is_admin"),
        ({"roles": "admin"}, "roles"),
        ({"roles": ("admin",)}, "roles"),
        ({"user_id": {"id": "u"}}, "user_id"),
        ({"project_id": 3}, "project_id"),
        ({"request_id": None}, "request_id"),
        ({"request_id": ""}, "request_id"),
        ({"extra": {"is_admin": True}}, "is_admin"),
        ({"extra": {"user": "someone-else"}}, "user"),
        ({"extra": {"k": object()}}, "k"),
        ({"extra": ["not", "a", "dict"]}, "extra"),
        ({"extra": {"global_request_id": 5}}, "global_request_id"),
    ],
)
def test_a_context_built_in_code_is_checked_alike(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedContext, match=field):
        RequestContext(**kwargs)


def test_elevated_and_admin_contexts_pass_the_checks() -> None:
    ctx = RequestContext(user_id="u", roles=["member"], extra={"global_request_id": "req-g"})
    assert ctx.elevated().is_admin is True
    assert get_admin_context().roles == ["admin"]
    assert RequestContext.from_dict(ctx.to_dict()) == ctx
