"""The request context that travels with every object and every message.

It sits below every layer: objects keep one in ``_context``, RPC carries it in
each message, the DB layer reads ``read_deleted`` from it. The request id is
also published in a context variable so that log lines on both sides of a call
carry it (see :class:`RequestIdLogFilter`).
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ReadDeleted = Literal["no", "yes", "only"]
_READ_DELETED: tuple[str, ...] = ("no", "yes", "only")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_request_id", default=None
)


def generate_request_id() -> str:
    return f"req-{uuid.uuid4()}"


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
        if self.read_deleted not in _READ_DELETED:
            raise ValueError(
                f"read_deleted must be one of {_READ_DELETED}, not {self.read_deleted!r}"
            )

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
        known = {
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
        extra = {k: v for k, v in values.items() if k not in known}
        if extra.get("global_request_id") is None:
            extra.pop("global_request_id", None)
        read_deleted: ReadDeleted = values.get("read_deleted") or "no"
        if read_deleted not in _READ_DELETED:
            raise ValueError(f"read_deleted must be one of {_READ_DELETED}")
        roles = values.get("roles") or []
        return cls(
            user_id=values.get("user_id") or values.get("user"),
            project_id=(values.get("project_id") or values.get("project") or values.get("tenant")),
            roles=[str(r) for r in roles],
            is_admin=bool(values.get("is_admin", False)),
            request_id=values.get("request_id") or generate_request_id(),
            read_deleted=read_deleted,
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


def get_admin_context(read_deleted: ReadDeleted = "no") -> RequestContext:
    return RequestContext(is_admin=True, roles=["admin"], read_deleted=read_deleted)


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) for log formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True
