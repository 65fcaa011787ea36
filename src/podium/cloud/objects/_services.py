"""Services: the processes of the cloud, their heartbeats and versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

from podium.cloud import db as cloud_db
from podium.context import RequestContext
from podium.db.current import get_database
from podium.exceptions import (
    ObjectFieldError,
)
from podium.objects import (
    ObjectListBase,
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)

from ._base import CloudObject, SoftDeletedObject, column_values, load_row, parse_sent_at


@VersionedObjectRegistry.register
class Service(CloudObject, SoftDeletedObject):
    # 1.0: initial
    # 1.1: added get_minimum_version
    VERSION = "1.1"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "host": fields.StringField(),
        "binary": fields.StringField(),
        "topic": fields.StringField(nullable=True),
        "report_count": fields.NonNegativeIntegerField(default=0),
        "last_seen_up": fields.DateTimeField(nullable=True),
        "disabled": fields.BooleanField(default=False),
        "disabled_reason": fields.StringField(nullable=True),
        "version": fields.NonNegativeIntegerField(default=0),
        "forced_down": fields.BooleanField(default=False),
    }

    def is_up(self, service_down_time: float, now: datetime | None = None) -> bool:
        """Whether its last heartbeat is younger than ``service_down_time`` seconds."""
        if self.forced_down or self.last_seen_up is None:
            return False
        elapsed = (now or datetime.now(UTC)) - self.last_seen_up
        return bool(elapsed.total_seconds() <= service_down_time)

    @remotable_classmethod
    def report(
        cls,
        context: RequestContext,
        host: str,
        binary: str,
        topic: str | None,
        version: int,
        sent_at: str,
    ) -> Service:
        """A heartbeat sent at ``sent_at``; an older one than stored changes nothing."""
        row, _newer = cloud_db.service_report(
            get_database(), context, host, binary, topic, version, parse_sent_at(sent_at)
        )
        return cls._from_row(context, row)

    @remotable_classmethod
    def get_minimum_version(cls, context: RequestContext, binary: str) -> int | None:
        """The lowest version the live services of ``binary`` report; None if there is none."""
        if not isinstance(binary, str):
            raise ObjectFieldError(f"binary must be a string, not {type(binary).__name__}")
        return cloud_db.service_get_minimum_version(get_database(), context, [binary])[binary]

    @remotable_classmethod
    def get_by_id(cls, context: RequestContext, service_id: int) -> Service:
        return cls._from_row(context, cloud_db.service_get(get_database(), context, service_id))

    @remotable_classmethod
    def get_by_host_and_binary(cls, context: RequestContext, host: str, binary: str) -> Service:
        row = cloud_db.service_get_by_host_and_binary(get_database(), context, host, binary)
        return cls._from_row(context, row)

    @remotable
    def save(self) -> None:
        changes = column_values(self.obj_get_changes())
        if not changes:
            return
        row = cloud_db.service_update(get_database(), self._context, self.id, changes)
        load_row(self, row, self._context)


@VersionedObjectRegistry.register
class ServiceList(ObjectListBase[Service], CloudObject):
    # 1.0: initial
    # 1.1: Service 1.1
    VERSION = "1.1"

    fields = {"objects": fields.ListOfObjectsField("Service")}
    obj_relationships = {"objects": [("1.0", "1.0"), ("1.1", "1.1")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: Sequence[Any]) -> Self:
        return cls(context, objects=[Service._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(cls, context: RequestContext, binary: str | None = None) -> ServiceList:
        rows = cloud_db.service_get_all(get_database(), context, binary=binary)
        return cls._from_rows(context, rows)
