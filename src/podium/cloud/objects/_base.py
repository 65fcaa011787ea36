"""What every object of the reference cloud shares: its base class, the columns
every table has, and reading a row into an object."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from podium.context import RequestContext
from podium.exceptions import (
    ObjectFieldError,
)
from podium.objects import (
    TimestampedObject,
    VersionedObject,
    fields,
)

#: Fields whose model attribute has another name.
_ATTRIBUTE = {"metadata": "metadata_"}
#: Columns the database keeps itself; an object never writes them.
_BOOKKEEPING = ("id", "created_at", "updated_at", "deleted_at", "deleted")


class CloudObject(VersionedObject):
    """Base of the cloud's objects: where a worker sets the indirection API."""

    @classmethod
    def _from_row(cls, context: RequestContext, row: Any) -> Self:
        """The object of a row of its table, with no changes pending."""
        obj = cls(context)
        load_row(obj, row, context)
        return obj


class SoftDeletedObject(TimestampedObject):
    """Mixin: the columns every podium.db table has (timestamps and soft delete)."""

    fields: ClassVar[dict[str, fields.Field[Any]]] = {
        **TimestampedObject.fields,
        "deleted_at": fields.DateTimeField(nullable=True),
        "deleted": fields.BooleanField(default=False),
    }


def load_row(
    obj: VersionedObject, row: Any, context: RequestContext, skip: tuple[str, ...] = ()
) -> None:
    for name in obj.fields:
        if name in skip:
            continue
        value = getattr(row, _ATTRIBUTE.get(name, name))
        if name == "deleted":
            value = bool(value)
        setattr(obj, name, value)
    obj._context = context
    obj.obj_reset_changes()


def column_values(changes: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        _ATTRIBUTE.get(name, name): value
        for name, value in changes.items()
        if name not in _BOOKKEEPING and name not in skip
    }


def parse_sent_at(sent_at: str) -> datetime:
    """A send time from a message: ISO 8601, naive meaning UTC."""
    try:
        moment = datetime.fromisoformat(sent_at)
    except (TypeError, ValueError):
        raise ObjectFieldError(f"sent_at must be an ISO 8601 time, not {sent_at!r:.60}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
