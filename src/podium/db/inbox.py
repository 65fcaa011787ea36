"""The conductor's inbox: a request's writes and its record commit together.

The bus delivers at least once: a request is redelivered when its conductor
dies before acknowledging it, and a caller whose connection dropped may send
it again. :func:`run_once` makes the *effect* exactly once. The object
method's DB work and an ``INSERT`` of the request's id into
``conductor_inbox`` run in one transaction, and the reply is stored in the
same row; a second delivery of the id finds the row and is answered from it.

How the object's DB functions join that transaction: each of them opens
``db.session()`` on the database that :func:`podium.db.current.get_database`
returns. For the length of the request that is an :class:`InboxDatabase`, a
:class:`~podium.db.engine.Database` whose ``session()`` yields the one
ambient session instead of starting a transaction of its own.

Which requests are recorded: only those that write. The inbox row is
inserted just before the transaction's first write statement, so reads
(``get_by_uuid``, ``refresh``, a ``save()`` with nothing to save) cost no
INSERT and leave no row; a read has no effect to repeat, so answering it
afresh is as good as a record. Inserting *before* the write, not after it,
is what makes a concurrent duplicate safe: its own INSERT of the same
primary key waits on the first transaction's uncommitted row (a row lock on
PostgreSQL and MariaDB; SQLite has one writer at a time), then fails once
the first commits, and it is answered from the record without having
written anything. If the first rolls back (its conductor died before
COMMIT), the duplicate's INSERT goes through and it runs normally.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from podium.db.current import use_database
from podium.db.engine import Database, DriverStatement, translate_error
from podium.db.models import ConductorInbox, RPCDedup, table_of
from podium.db.types import utcnow
from podium.exceptions import DBConnectionError, DBDeadlock, DBError, DuplicateEntry

__all__ = [
    "DEFAULT_RETENTION",
    "InboxDatabase",
    "prune_inbox",
    "run_once",
    "stored_reply",
]

LOG = logging.getLogger(__name__)

#: How long a record is kept. A redelivery or a retry comes within seconds or
#: minutes of the first attempt (a broker's redelivery, a caller's retry after
#: its timeout); an hour is far above both.
DEFAULT_RETENTION = timedelta(hours=1)

R = TypeVar("R")
T = TypeVar("T")

_INBOX = table_of(ConductorInbox)
# Compiled once per dialect and run on the driver's cursor: they go with every
# request that writes, and SQLAlchemy's execution of a statement costs more
# CPU than its round trip.
_INSERT = DriverStatement(
    _INBOX.insert().values(
        id=sa.bindparam("id"), method=sa.bindparam("method"), created_at=sa.bindparam("created_at")
    )
)
_RECORD_REPLY = DriverStatement(
    _INBOX.update().where(_INBOX.c.id == sa.bindparam("rid")).values(reply=sa.bindparam("reply"))
)


class _Replayed(Exception):
    """The request's id is already in the inbox: answer from the record."""


class _Redo(Exception):
    """Run the method again, with a savepoint around each DB function."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


#: The fast attempt, one with savepoints, and one more for SQLite's stale
#: snapshot or a COMMIT whose outcome was lost with the connection.
_MAX_ATTEMPTS = 3


class InboxDatabase(Database):
    """A :class:`Database` whose ``session()`` joins one ambient transaction.

    A view of ``outer`` for the length of one request: ``session()`` and
    ``connection()`` yield the transaction :func:`run_once` opened, flush at
    the end of the block and detach the rows loaded in it (as a session of
    its own would leave them). It does not call ``Database.__init__``: it
    owns no engine, it borrows ``outer``'s.

    ``savepoints=False`` (the fast path) runs each block straight in the
    transaction. Outside the inbox a DB function that fails rolls back only
    its own transaction, and the object method may handle the error and go
    on (a replayed ``create`` that meets its own row reads it instead). On
    PostgreSQL a failed statement spoils the whole transaction, so a block
    that raises marks the request, and :func:`run_once` runs it again with
    ``savepoints=True``, a SAVEPOINT around each block, if the method went on
    after the error. Two more round trips per DB function, paid only then.
    A block that raised without having failed a statement or written
    anything (a read that found nothing) leaves the transaction as it was:
    the method goes on in it, with no second run.
    """

    def __init__(
        self,
        outer: Database,
        session: Session,
        *,
        savepoints: bool,
        request: _Request | None = None,
    ) -> None:
        self._outer = outer
        self._session = session
        self._savepoints = savepoints
        self._request = request
        self.failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"InboxDatabase({self._outer!r})"

    @property
    def url(self) -> URL:
        return self._outer.url

    @property
    def safe_url(self) -> str:
        return self._outer.safe_url

    @property
    def backend(self) -> str:
        return self._outer.backend

    @property
    def engine(self) -> Engine:
        return self._outer.engine

    @contextmanager
    def session(self, *, single_statement: bool = False) -> Iterator[Session]:
        session = self._session
        request = self._request
        recorded = request is not None and request.recorded
        writes = 0 if request is None else request.writes
        try:
            if self._savepoints:
                try:
                    with session.begin_nested():
                        yield session
                except BaseException:
                    if request is not None and not recorded:
                        # The inbox row went with the savepoint: the next write
                        # must insert it again.
                        request.recorded = False
                    raise
            else:
                yield session
                session.flush()
        except exc.StatementError as error:
            translated = translate_error(error, self._outer.url)
            self._failed(translated)
            raise translated from error
        except _Replayed:
            raise
        except BaseException as error:
            if not self._changed_nothing(error, session, writes):
                self._failed(error)
            raise
        finally:
            session.expunge_all()

    def _changed_nothing(self, error: BaseException, session: Session, writes: int) -> bool:
        """Whether a block that raised ``error`` left the transaction as it found it.

        A DB function that reads, finds nothing and raises (NotFound, on a
        heartbeat's first report) did not spoil the transaction, nor did it
        write anything that its own transaction would have rolled back: the
        method may go on in the same transaction, with no second run.
        """
        request = self._request
        return (
            request is not None
            and request.writes == writes
            and not isinstance(error, exc.SQLAlchemyError | self.engine.dialect.loaded_dbapi.Error)
            and not (session.new or session.dirty or session.deleted)
        )

    def _failed(self, error: BaseException) -> None:
        # The first failure is the one the method saw; what follows may be its
        # consequence (a statement on a transaction the failure closed).
        if self.failure is None:
            self.failure = error

    def run(self, work: Callable[[Session], T], *, single_statement: bool = False) -> T:
        """``work(session)`` in the ambient transaction, once.

        No retry on a lost connection here: the transaction is the request's,
        and :func:`run_once` decides about it as a whole.
        """
        with self.session(single_statement=single_statement) as session:
            return work(session)

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        with self.session() as session:
            yield session.connection()

    def dispose(self) -> None:
        """Nothing to release: the engine is ``outer``'s."""


class _Request:
    """The request being recorded on one connection (at most one per thread)."""

    __slots__ = ("connection", "id", "inserting", "method", "recorded", "replayed", "writes")

    def __init__(self, request_id: str, method: str, connection: sa.Connection) -> None:
        self.id = request_id
        self.method = method
        self.connection = connection
        self.recorded = False
        self.inserting = False
        self.replayed = False
        self.writes = 0  # write statements sent, the inbox's own excepted


_request: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "podium_inbox_request", default=None
)


def _writes(statement: Any) -> bool:
    if isinstance(statement, sa.TextClause):
        return statement.text.lstrip()[:6].lower() != "select"
    if isinstance(statement, sa.sql.ddl.ExecutableDDLElement):
        return True
    return bool(getattr(statement, "is_dml", False))


def _before_execute(connection: sa.Connection, statement: Any, *_args: Any) -> None:
    request = _request.get()
    if (
        request is None
        or request.inserting
        or connection is not request.connection
        or not _writes(statement)
    ):
        return
    request.writes += 1
    if request.recorded:
        return
    request.inserting = True
    try:
        _INSERT.execute(
            connection, {"id": request.id, "method": request.method, "created_at": utcnow()}
        )
    except exc.IntegrityError as error:
        if isinstance(translate_error(error), DuplicateEntry):
            request.replayed = True
            raise _Replayed(request.id) from None
        raise
    finally:
        request.inserting = False
    request.recorded = True


_hooked: weakref.WeakSet[Engine] = weakref.WeakSet()
_hook_lock = threading.Lock()


def _hook(engine: Engine) -> None:
    # One listener per engine, for its life: listening and unlistening per
    # request would cost more than the early return above.
    if engine in _hooked:
        return
    with _hook_lock:
        if engine not in _hooked:
            event.listen(engine, "before_execute", _before_execute)
            _hooked.add(engine)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def run_once(
    database: Database,
    request_id: str | None,
    method: str,
    run: Callable[[], R],
    dump: Callable[[R], Any],
) -> R | Any:
    """Run ``run()`` in one transaction with its inbox record; at most one effect per id.

    ``run`` calls the object method (object code finds its database with
    ``get_database()``); it may be called again in a fresh transaction (see
    :class:`InboxDatabase`; and on a connection lost before COMMIT), so it
    must start from the request's original object each time. ``dump(result)`` is the reply as
    JSON-ready primitives, stored with the record. Returns ``run()``'s
    result, or, for an id already recorded, the stored primitives.

    Without a ``request_id`` (a call made in-process, not from the bus),
    ``run`` simply runs with ``database`` bound.
    """
    if request_id is None:
        with use_database(database):
            return run()
    if len(request_id) > 255:
        raise DBError("a request id longer than 255 characters cannot be recorded")
    _hook(database.engine)
    savepoints = False
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        committing = [False]
        try:
            return _attempt(database, request_id, method, run, dump, savepoints, committing)
        except _Redo as redo:
            if attempt == _MAX_ATTEMPTS:
                raise redo.error from None
            LOG.debug("%s met a DB error inside the inbox; running it again", method)
            savepoints = True
        except _Replayed:
            reply = stored_reply(database, request_id)
            LOG.info("%s %s was already applied: answered from the inbox", method, request_id)
            return reply
        except DBConnectionError as error:
            if not committing[0] or attempt == _MAX_ATTEMPTS:
                raise
            # Lost while committing: did it commit? The inbox knows. Run it
            # again: a committed request meets its record, else it applies now.
            LOG.warning("%s: %s; asking the inbox whether it committed", method, error)
    raise AssertionError("unreachable")


def _attempt(
    database: Database,
    request_id: str,
    method: str,
    run: Callable[[], R],
    dump: Callable[[R], Any],
    savepoints: bool,
    committing: list[bool],
) -> R:
    def work(session: Session) -> R:
        # The transaction's one connection, looked up once: the session's own
        # lookup costs more than the statement it is for.
        connection = session.connection()
        request = _Request(request_id, method, connection)
        ambient = InboxDatabase(database, session, savepoints=savepoints, request=request)
        token = _request.set(request)
        try:
            with use_database(ambient):
                result = run()
        except Exception as error:
            if request.replayed:
                raise _Replayed(request_id) from None
            _lost_to_a_concurrent_transaction(ambient)
            if not savepoints and ambient.failure is not None and ambient.failure is not error:
                # The method went on after a failed DB function and then failed
                # otherwise: run it as it would have run outside the inbox.
                raise _Redo(error) from None
            raise
        finally:
            _request.reset(token)
        if request.replayed:
            # The method swallowed the duplicate; its work is not wanted.
            raise _Replayed(request_id)
        _lost_to_a_concurrent_transaction(ambient)
        if not savepoints and ambient.failure is not None:
            raise _Redo(ambient.failure)
        if request.recorded:
            # A statement of its own, prepared by the driver after a few uses:
            # sent with the COMMIT in one simple query instead (its values bound
            # client-side, planned every time), it cost more than the round trip
            # it saved on loopback.
            _RECORD_REPLY.execute(connection, {"rid": request_id, "reply": _dumps(dump(result))})
        committing[0] = True  # what fails from here on is the COMMIT
        return result

    # Database.run runs the whole request again on a new connection when the
    # old one was lost before COMMIT was sent, as each DB function did alone.
    return database.run(work)


def _lost_to_a_concurrent_transaction(ambient: InboxDatabase) -> None:
    """Raise the DBDeadlock a DB function of the request met, if any.

    The database rolled the request's transaction back (or, for SQLite's stale
    snapshot, refused its first write) for a concurrent one: Database.run
    starts the whole request again in a new transaction, where a duplicate
    that waited for the first meets its record.
    """
    if isinstance(ambient.failure, DBDeadlock):
        raise ambient.failure


def stored_reply(database: Database, request_id: str) -> Any:
    """The reply recorded for ``request_id`` (JSON primitives); DBError if none."""
    with database.session() as session:
        row = session.execute(sa.select(_INBOX.c.reply).where(_INBOX.c.id == request_id)).first()
    if row is None or row.reply is None:
        raise DBError(f"no reply recorded for request {request_id!r}")
    return orjson.loads(row.reply)


def prune_inbox(
    database: Database, older_than: timedelta = DEFAULT_RETENTION, batch_size: int = 1000
) -> int:
    """Delete inbox and RPC de-dup records older than ``older_than``; how many went.

    In batches of ``batch_size`` rows, one transaction each, so a large
    backlog never holds a long lock on the tables the conductor writes to.
    """
    if older_than < timedelta(0):
        raise DBError("older_than must not be negative")
    if batch_size < 1:
        raise DBError("batch_size must be at least 1")
    now = utcnow()
    cutoff = now - older_than
    inbox, dedup = table_of(ConductorInbox), table_of(RPCDedup)
    # A claim still held (a handler running longer than the retention) stays.
    finished = sa.or_(dedup.c.done, dedup.c.expires_at < now)
    old: list[tuple[sa.Table, sa.ColumnElement[bool]]] = [
        (inbox, inbox.c.created_at < cutoff),
        (dedup, sa.and_(dedup.c.created_at < cutoff, finished)),
    ]
    total = 0
    for table, where in old:
        while True:
            with database.session() as session:
                ids = list(session.scalars(sa.select(table.c.id).where(where).limit(batch_size)))
                if ids:
                    session.execute(table.delete().where(table.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch_size:
                break
    return total
