"""Services: the rows each podium service keeps with its reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from podium.cloud.models import Service
from podium.context import RequestContext
from podium.db import Database
from podium.db.api import (
    PreparedUpdate,
    create,
    get,
    get_one,
    insert_row,
    returns_updates,
    soft_delete,
    update_live,
)
from podium.db.models import table_of
from podium.db.query import model_query, update_values
from podium.db.types import utcnow
from podium.exceptions import DuplicateEntry, NotFound

_SERVICES = table_of(Service)


def service_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Service:
    return create(db, Service, values)


def service_get(db: Database, context: RequestContext, service_id: int) -> Service:
    return get(db, context, Service, id=service_id)


def service_get_by_host_and_binary(
    db: Database, context: RequestContext, host: str, binary: str
) -> Service:
    return get(db, context, Service, host=host, binary=binary)


def service_get_all(
    db: Database,
    context: RequestContext,
    topic: str | None = None,
    binary: str | None = None,
) -> list[Service]:
    query = model_query(Service, context).order_by(Service.id)
    if topic is not None:
        query = query.where(Service.topic == topic)
    if binary is not None:
        query = query.where(Service.binary == binary)
    return db.run(lambda session: list(session.scalars(query)))


def service_get_minimum_version(
    db: Database, context: RequestContext, binaries: Sequence[str]
) -> dict[str, int | None]:
    """The lowest ``version`` among live, not forced-down services of each binary.

    What ``upgrade_levels = auto`` caps RPC clients to; ``None`` for a binary
    with no such service. Ignores ``read_deleted``: a deleted service runs nothing.
    """
    query = (
        select(_SERVICES.c.binary, func.min(_SERVICES.c.version))
        .where(_SERVICES.c.deleted == 0, _SERVICES.c.forced_down.is_(False))
        .where(_SERVICES.c.binary.in_(list(binaries)))
        .group_by(_SERVICES.c.binary)
    )
    found = db.run(
        lambda session: {binary: int(version) for binary, version in session.execute(query)}
    )
    return {binary: found.get(binary) for binary in binaries}


def service_update(
    db: Database, context: RequestContext, service_id: int, values: Mapping[str, Any]
) -> Service:
    changes = update_values(Service, values)
    return db.run(
        lambda session: update_live(session, Service, changes, id=service_id),
        single_statement=returns_updates(db),
    )


def service_destroy(db: Database, context: RequestContext, service_id: int) -> Service:
    return db.run(lambda session: soft_delete(session, Service, id=service_id))


def _service_report_statement() -> PreparedUpdate[Service]:
    """A heartbeat's UPDATE, built once: every service reports every few seconds."""
    columns = _SERVICES.c
    by_key = [
        columns.host == bindparam("host", type_=columns.host.type),
        columns.binary == bindparam("binary", type_=columns.binary.type),
        columns.deleted == 0,
    ]
    sent = bindparam("sent", type_=columns.last_report_sent_at.type)
    now = bindparam("now", type_=columns.last_seen_up.type)
    newer = or_(columns.last_report_sent_at.is_(None), columns.last_report_sent_at < sent)
    statement = (
        update(_SERVICES)
        .where(*by_key, newer)
        .values(
            report_count=columns.report_count + 1,
            last_seen_up=now,
            last_report_sent_at=sent,
            topic=bindparam("topic", type_=columns.topic.type),
            version=bindparam("version", type_=columns.version.type),
            updated_at=now,
        )
    )
    return PreparedUpdate(Service, statement, by_key)


_SERVICE_REPORT = _service_report_statement()


def service_report(
    db: Database,
    context: RequestContext,
    host: str,
    binary: str,
    topic: str | None,
    version: int,
    sent_at: datetime,
) -> tuple[Service, bool]:
    """A heartbeat: the service's row, and whether this report was newer than the stored one.

    The first report creates the row. A report sent before the newest one
    stored (delivered late, or replayed) changes nothing. ``last_seen_up`` is
    the time the report was stored, by this clock; the send time (from the
    sender's clock, and never taken as later than now, so a sender whose clock
    runs ahead cannot shut out the reports after it) only orders the reports.
    """
    now = utcnow()
    sent = min(sent_at, now)
    params = {"host": host, "binary": binary, "sent": sent, "now": now}
    params.update(topic=topic, version=version)
    live = context.elevated(read_deleted="no")

    def work(session: Session) -> tuple[Service, bool]:
        row = _SERVICE_REPORT.run(session, params)
        if row is not None:
            return row, True
        try:
            return get_one(session, live, Service, host=host, binary=binary), False
        except NotFound:
            # The first report: the row is created in the same transaction (on a
            # conductor, one request with one record, never run twice).
            first = {"host": host, "binary": binary, "topic": topic, "version": version}
            stamps = {"last_seen_up": now, "last_report_sent_at": sent}
            return insert_row(session, Service, {**first, "report_count": 1, **stamps}), True

    try:
        return db.run(work)
    except DuplicateEntry:
        # Two first reports raced (a restart that overlapped its predecessor).
        return db.run(work)
