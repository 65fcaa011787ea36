"""A de-dup store for RPC servers in the database (table ``rpc_dedup``).

For servers that share a database but no Redis. Each request costs a few
statements (claim: one INSERT, and a SELECT plus an UPDATE when the id is
already there; done: one UPDATE), each in its own short transaction, so it is
slower than :class:`podium.rpc.RedisDedupStore`; measure before using it on a
hot path. Leases are compared with the servers' clocks: keep them in sync
(NTP) to well within the lease. Old rows go with ``podium db prune-inbox``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from podium.db.engine import Database
from podium.db.models import RPCDedup, table_of
from podium.db.types import utcnow
from podium.exceptions import DuplicateEntry
from podium.rpc import Claim, DedupStore, _codec

__all__ = ["DatabaseDedupStore"]

_TABLE = table_of(RPCDedup)


class DatabaseDedupStore(DedupStore):
    """Request ids shared by every server on one database."""

    def __init__(self, database: Database, *, lease: float = 30.0) -> None:
        if lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        self.database = database
        self.lease: float = lease

    def _expiry(self) -> datetime:
        return utcnow() + timedelta(seconds=self.lease)

    def claim(self, unique_id: str, owner: str) -> Claim:
        now = utcnow()
        try:
            with self.database.session() as session:
                session.execute(
                    _TABLE.insert().values(
                        id=unique_id,
                        owner=owner,
                        done=False,
                        expires_at=self._expiry(),
                        created_at=now,
                    )
                )
            return Claim("new")
        except DuplicateEntry:
            pass
        with self.database.session() as session:
            row = session.execute(
                sa.select(_TABLE.c.done, _TABLE.c.reply, _TABLE.c.expires_at).where(
                    _TABLE.c.id == unique_id
                )
            ).first()
            if row is None:  # pruned in between: take it next time round
                return Claim("running")
            if row.done:
                return Claim("done", orjson.loads(row.reply) if row.reply else None)
            if row.expires_at >= now:
                return Claim("running")
            # The holder's lease lapsed (its server died): take the claim over,
            # unless another server just did.
            taken = session.execute(
                _TABLE.update()
                .where(
                    _TABLE.c.id == unique_id,
                    _TABLE.c.done.is_(False),
                    _TABLE.c.expires_at < now,
                )
                .values(owner=owner, expires_at=self._expiry())
            )
            return Claim("new") if taken.rowcount == 1 else Claim("running")  # type: ignore[attr-defined]

    def renew(self, unique_ids: Collection[str], owner: str) -> None:
        ids = list(unique_ids)
        if not ids:
            return
        with self.database.session() as session:
            session.execute(
                _TABLE.update()
                .where(_TABLE.c.id.in_(ids), _TABLE.c.owner == owner, _TABLE.c.done.is_(False))
                .values(expires_at=self._expiry())
            )

    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        value = None
        if reply is not None:
            # Stored as the RPC codec sent it: sets as lists, bytes as text.
            value = _codec.dumps(reply)
        with self.database.session() as session:
            session.execute(
                _TABLE.update()
                .where(_TABLE.c.id == unique_id)
                .values(done=True, owner=None, reply=value)
            )

    def release(self, unique_id: str, owner: str) -> None:
        with self.database.session() as session:
            session.execute(
                _TABLE.delete().where(
                    _TABLE.c.id == unique_id, _TABLE.c.owner == owner, _TABLE.c.done.is_(False)
                )
            )
