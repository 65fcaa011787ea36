"""The request context that travels with every object and every message.

It sits below every layer: objects keep one in ``_context``, RPC carries it in
each message, the DB layer reads ``read_deleted`` from it. The request id is
also published in a context variable so that log lines on both sides of a call
carry it (see :class:`RequestIdLogFilter`).

A context is checked field by field when it is built, in code or from a
message (:func:`check_context`); a bad one raises :class:`MalformedContext`.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from podium.exceptions import MalformedContext

ReadDeleted = Literal["no", "yes", "only"]
_READ_DELETED: tuple[str, ...] = ("no", "yes", "only")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_request_id", default=None
)


# Keystone ids are 64 characters and its names 255; a request id is 40.
MAX_ID_LENGTH = 255
MAX_ROLES = 64
# JSON from a peer is shallow (nova's service catalog is four levels); the
# bound stops a cyclic or absurdly deep value built in code.
MAX_EXTRA_DEPTH = 32

# The fields of their own; extra must not carry them, or to_dict() would
# silently send the field's value instead of the one in extra.
_FIELD_KEYS = frozenset(
    {
        "user_id",
        "user",
        "project_id",
        "project",
        "tenant",
        "roles",
        "is_admin",
        "request_id",
        "read_deleted",
    }
)
# Written into log lines: a control character there could forge a line.
_CONTROL = frozenset(chr(c) for c in (*range(32), 127))


def generate_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def _refuse(what: str, why: str) -> MalformedContext:
    return MalformedContext(f"malformed request context: {what} {why}")


def _kind(value: Any) -> str:
    """A value's JSON type, for messages: the value itself may be a secret or huge."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _check_id(name: str, value: Any, *, logged: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise _refuse(name, f"must be a string or null, not {_kind(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise _refuse(name, f"is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    if logged and not _CONTROL.isdisjoint(value):
        raise _refuse(name, "must not contain control characters")


def _check_json(name: str, value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, str | bool | int | float):
        return
    if depth >= MAX_EXTRA_DEPTH:
        raise _refuse(name, f"is nested more than {MAX_EXTRA_DEPTH} levels deep")
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(name, item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _refuse(name, f"has a key that is {_kind(key)}, not a string")
            _check_json(name, item, depth + 1)
    else:
        raise _refuse(name, f"must hold only JSON values, not {_kind(value)}")


def check_context(ctx: RequestContext) -> None:
    """Raise :class:`MalformedContext` unless every field of ``ctx`` is well typed.

    Checked here, for contexts built in code and from messages alike, because
    a wrong type does not fail loudly later: ``bool("false")`` is ``True``.
    """
    if not isinstance(ctx.is_admin, bool):
        raise _refuse("is_admin", f"must be true or false, not {_kind(ctx.is_admin)}")
    _check_id("user_id", ctx.user_id)
    _check_id("project_id", ctx.project_id)
    if not isinstance(ctx.roles, list):
        raise _refuse("roles", f"must be a list of strings, not {_kind(ctx.roles)}")
    if len(ctx.roles) > MAX_ROLES:
        raise _refuse("roles", f"has {len(ctx.roles)} entries; the limit is {MAX_ROLES}")
    for role in ctx.roles:
        if not isinstance(role, str):
            raise _refuse("roles", f"must hold only strings, not {_kind(role)}")
        if len(role) > MAX_ID_LENGTH:
            raise _refuse(
                "roles", f"has a role of {len(role)} characters; the limit is {MAX_ID_LENGTH}"
            )
    if not isinstance(ctx.request_id, str) or not ctx.request_id:
        raise _refuse("request_id", f"must be a non-empty string, not {_kind(ctx.request_id)}")
    _check_id("request_id", ctx.request_id, logged=True)
    if not isinstance(ctx.read_deleted, str) or ctx.read_deleted not in _READ_DELETED:
        shown = repr(ctx.read_deleted[:20]) if isinstance(ctx.read_deleted, str) else None
        raise _refuse(
            "read_deleted",
            f"must be one of {', '.join(_READ_DELETED)}, not {shown or _kind(ctx.read_deleted)}",
        )
    if not isinstance(ctx.extra, dict):
        raise _refuse("extra", f"must be a dict, not {_kind(ctx.extra)}")
    for key, value in ctx.extra.items():
        if not isinstance(key, str):
            raise _refuse(f"key {str(key)[:40]!r}", f"is {_kind(key)}, not a string")
        if len(key) > MAX_ID_LENGTH:
            raise _refuse(f"key {key[:40]!r}...", f"is longer than {MAX_ID_LENGTH} characters")
        if key in _FIELD_KEYS:
            raise _refuse(f"extra key {key!r}", "is a field of its own; set the field")
        _check_json(key, value)
    _check_id("global_request_id", ctx.extra.get("global_request_id"), logged=True)


@dataclass
class RequestContext:
    """Who asks, on whose behalf, and how deleted rows are treated."""

    user_id: str | None = None
    project_id: str | None = None
    roles: list[str] = field(default_factory=list)
    is_admin: bool = False
    request_id: str = field(default_factory=generate_request_id)
    read_deleted: ReadDeleted = "no"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_context(self)

    # Keys chosen to match oslo.context's to_dict(), so an oslo.messaging peer
    # rebuilds an equivalent context from ours and the other way round.
    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.extra)
        values.update(
            user_id=self.user_id,
            user=self.user_id,
            project_id=self.project_id,
            project=self.project_id,
            tenant=self.project_id,
            roles=list(self.roles),
            is_admin=self.is_admin,
            request_id=self.request_id,
            global_request_id=self.extra.get("global_request_id"),
            read_deleted=self.read_deleted,
        )
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RequestContext:
        """The context ``values`` (oslo.context's ``to_dict()`` keys) describes.

        An absent or null field takes its default. ``user`` is an alias of
        ``user_id``, ``project`` and ``tenant`` of ``project_id``: oslo sends
        them equal, and aliases that disagree are refused rather than one
        picked, since one side could authorise on one and log the other.
        Other keys land in ``extra``. :class:`MalformedContext` otherwise.
        """
        if not isinstance(values, Mapping):
            raise MalformedContext(
                f"malformed request context: must be a JSON object, not {_kind(values)}"
            )
        extra = {k: v for k, v in values.items() if k not in _FIELD_KEYS}
        if extra.get("global_request_id") is None:
            extra.pop("global_request_id", None)
        request_id = values.get("request_id")
        if request_id is None or request_id == "":
            request_id = generate_request_id()
        return cls(
            user_id=_one_of(values, "user_id", "user"),
            project_id=_one_of(values, "project_id", "project", "tenant"),
            roles=_default(values, "roles", []),
            is_admin=_default(values, "is_admin", False),
            request_id=request_id,
            read_deleted=_default(values, "read_deleted", "no"),
            extra=extra,
        )

    def elevated(self, read_deleted: ReadDeleted | None = None) -> RequestContext:
        """A copy with admin rights, for work the service does on its own account."""
        roles = self.roles if "admin" in self.roles else [*self.roles, "admin"]
        return replace(
            self,
            is_admin=True,
            roles=roles,
            read_deleted=read_deleted or self.read_deleted,
            extra=dict(self.extra),
        )

    @contextmanager
    def activated(self) -> Iterator[RequestContext]:
        """Make this context's request id the one log lines carry, for a block."""
        token = current_request_id.set(self.request_id)
        try:
            yield self
        finally:
            current_request_id.reset(token)


def _default(values: Mapping[str, Any], key: str, default: Any) -> Any:
    value = values.get(key)
    return default if value is None else value


def _one_of(values: Mapping[str, Any], *aliases: str) -> Any:
    """The one value the present aliases agree on (each checked under its own name)."""
    found: dict[str, Any] = {}
    for key in aliases:
        value = values.get(key)
        _check_id(key, value)
        if value is not None:
            found[key] = value
    if len(set(found.values())) > 1:
        raise _refuse(" and ".join(found), "disagree; send them equal or only one")
    return next(iter(found.values()), None)


def get_admin_context(read_deleted: ReadDeleted = "no") -> RequestContext:
    return RequestContext(is_admin=True, roles=["admin"], read_deleted=read_deleted)


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) for log formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True
