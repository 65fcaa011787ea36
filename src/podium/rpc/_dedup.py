"""De-duplication of redelivered requests, by the ``_unique_id`` every message carries.

A broker delivers at least once: a request whose server died (or whose
connection dropped) before acknowledging it is delivered again, maybe to
another server. An :class:`RPCServer` asks its :class:`DedupStore` before
running a request:

* ``claim``: the first delivery takes the id, with a lease while it runs
  (renewed by the server; a server that dies lets it lapse);
* ``done``: when the request is settled, its reply (for a call) is kept, so
  a redelivered call is answered from the store without running again;
* a delivery that finds a live claim waits for it to end: the first run
  finishes (answer from the store) or its server died and the lease lapses
  (then this delivery takes the claim and runs).

The default, :class:`MemoryDedupStore`, remembers the last ids of one server
process. :class:`RedisDedupStore` (and ``podium.db.dedup.DatabaseDedupStore``)
are shared by every server that uses them, so a request redelivered to
*another* server is still recognised.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from . import _codec
from ._transport import IncomingMessage

if TYPE_CHECKING:
    import redis

__all__ = [
    "Claim",
    "DedupStore",
    "MemoryDedupStore",
    "RedisDedupStore",
    "current_message_id",
]

LOG = logging.getLogger(__name__)

_current_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_message_id", default=None
)


def current_message_id() -> str | None:
    """The ``_unique_id`` of the request this endpoint method is serving, else None.

    The id is the same on every delivery of one message (a broker's
    redelivery, the driver's own retries), so an endpoint can record it with
    its writes and recognise a request it already applied (the conductor does:
    :mod:`podium.db.inbox`).
    """
    return _current_id.get()


@dataclass(frozen=True, slots=True)
class Claim:
    """What a store answered to ``claim``.

    ``state``: ``"new"`` (the caller now holds the id), ``"running"`` (another
    live claim holds it) or ``"done"`` (finished; ``reply`` is the reply sent
    for a call, None for a cast).
    """

    state: Literal["new", "running", "done"]
    reply: dict[str, Any] | None = None


NEW = Claim("new")
RUNNING = Claim("running")


class DedupStore(ABC):
    """Where RPC servers record the ids of requests they took and finished.

    ``lease``: seconds a claim lives unless renewed (None: claims never lapse,
    for a store private to one process). ``keep``: seconds a finished id and
    its reply are remembered.
    """

    lease: float | None = None

    @abstractmethod
    def claim(self, unique_id: str, owner: str) -> Claim:
        """Take ``unique_id`` for ``owner``, or say who has it (atomically)."""

    def renew(self, unique_ids: Collection[str], owner: str) -> None:  # noqa: B027
        """Extend ``owner``'s live claims on ``unique_ids`` by another lease."""

    @abstractmethod
    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        """``unique_id`` is finished; keep ``reply`` (a call's) for its redeliveries."""

    @abstractmethod
    def release(self, unique_id: str, owner: str) -> None:
        """Drop ``owner``'s claim without a result (the request was given back)."""

    def close(self) -> None:  # noqa: B027
        """Release the store's connections."""


class MemoryDedupStore(DedupStore):
    """The ids of the last ``size`` requests of this process (the default; no I/O).

    A claim never lapses: its holder is this very process, and if the process
    dies the memory goes with it. Replies are kept by reference, at most
    ``size`` of them.
    """

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("a de-dup store needs room for at least one id")
        self.size = size
        self._done: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, unique_id: str, owner: str) -> Claim:
        with self._lock:
            if unique_id in self._running:
                return RUNNING
            if unique_id in self._done:
                return Claim("done", self._done[unique_id])
            self._running.add(unique_id)
            return NEW

    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        with self._lock:
            self._running.discard(unique_id)
            self._done[unique_id] = reply
            if len(self._done) > self.size:
                self._done.popitem(last=False)

    def release(self, unique_id: str, owner: str) -> None:
        with self._lock:
            self._running.discard(unique_id)


# Claim atomically: set the claim unless the key exists; return what was there.
# (SET ... NX GET needs Redis 7; a script works on every version in one round trip.)
_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Renew or release only a claim that is still the caller's.
_RENEW = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDedupStore(DedupStore):
    """Ids shared by every server on one Redis (``pip install podium[redis]``).

    One key per request id, ``<prefix><id>``: ``c<owner>`` while claimed (a
    ``lease``-second TTL, renewed while the handler runs), then ``d<reply>``
    for ``keep`` seconds. Costs one round trip before each request (claim)
    and one after it (done).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "podium:dedup:",
        lease: float = 30.0,
        keep: float = 3600.0,
        client: redis.Redis | None = None,
    ) -> None:
        if lease <= 0 or keep <= 0:
            raise ValueError("lease and keep must be positive numbers of seconds")
        if client is None:
            try:
                import redis as redis_module
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "RedisDedupStore needs redis-py: pip install 'podium[redis]'"
                ) from exc
            client = redis_module.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.client = client
        self.prefix = prefix
        self.lease: float = lease
        self.keep = keep
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _key(self, unique_id: str) -> str:
        return self.prefix + unique_id

    def claim(self, unique_id: str, owner: str) -> Claim:
        found = self._claim(
            keys=[self._key(unique_id)], args=[b"c" + owner.encode(), int(self.lease * 1000)]
        )
        if found is None:
            return NEW
        if isinstance(found, str):  # a client made with decode_responses=True
            found = found.encode()
        if found[:1] == b"d":
            return Claim("done", orjson.loads(found[1:]) if len(found) > 1 else None)
        return RUNNING

    def renew(self, unique_ids: Collection[str], owner: str) -> None:
        if unique_ids:
            keys = [self._key(unique_id) for unique_id in unique_ids]
            self._renew(keys=keys, args=[b"c" + owner.encode(), int(self.lease * 1000)])

    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        # Encoded as the codec encodes messages: a reply that was sent can be stored.
        value = b"d" if reply is None else b"d" + _codec.dumps(reply)
        self.client.set(self._key(unique_id), value, px=int(self.keep * 1000))

    def release(self, unique_id: str, owner: str) -> None:
        self._release(keys=[self._key(unique_id)], args=[b"c" + owner.encode()])

    def close(self) -> None:
        self.client.close()


def new_owner() -> str:
    """A name for one server instance: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deduplicator:
    """An RPC server's use of its store: claims, waits, renewals, replays."""

    def __init__(self, store: DedupStore, stopping: Callable[[], bool]) -> None:
        self.store = store
        self.owner = new_owner()
        self._stopping = stopping
        self._lock = threading.Lock()
        # The claims this server holds, by id: at most one delivery of an id
        # holds its claim at a time.
        self._held: dict[str, _Tracked] = {}
        self._keeper: threading.Thread | None = None
        self._store_down = False

    def take(self, incoming: IncomingMessage, unique_id: Any) -> IncomingMessage | None:
        """The message to handle (wrapped to report its end), or None if it is settled here."""
        if not isinstance(unique_id, str):
            return incoming
        pause = 0.005
        while True:
            claim = self._claim(unique_id)
            if claim is None:  # the store is unreachable: run, as without a store
                return incoming
            if claim.state == "new":
                return self._track(incoming, unique_id)
            if claim.state == "done":
                self._replay(incoming, unique_id, claim.reply)
                return None
            # Another delivery of this request is running (here, or on a server
            # whose lease has not lapsed yet): neither run it twice nor drop it.
            if self._stopping():
                incoming.requeue()
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def forget(self, unique_id: Any) -> None:
        """Give up this server's claim on ``unique_id``: its handling failed, a
        redelivery must run it again."""
        if isinstance(unique_id, str):
            with self._lock:
                tracked = self._held.get(unique_id)
            if tracked is not None:
                self.finished(tracked, ok=False)

    def _claim(self, unique_id: str) -> Claim | None:
        try:
            claim = self.store.claim(unique_id, self.owner)
        except Exception as exc:
            if not self._store_down:
                LOG.warning(
                    "de-dup store unreachable (%s): running requests without it until it is back",
                    exc,
                )
                self._store_down = True
            return None
        if self._store_down:
            LOG.warning("de-dup store reachable again")
            self._store_down = False
        return claim

    def _replay(
        self, incoming: IncomingMessage, unique_id: str, reply: dict[str, Any] | None
    ) -> None:
        msg_id = incoming.message.get("_msg_id")
        if msg_id and reply is not None:
            LOG.info("answering redelivered call %s from the de-dup store", unique_id)
            # The caller waits for its own call's id, whoever sent the id first.
            incoming.reply({**reply, "_msg_id": msg_id})
        else:
            LOG.warning("dropping redelivered message %s: already taken", unique_id)
        incoming.ack()

    def _track(self, incoming: IncomingMessage, unique_id: str) -> IncomingMessage:
        tracked = _Tracked(incoming, unique_id, self)
        with self._lock:
            self._held[unique_id] = tracked
            if self.store.lease is not None and self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._renew_leases, name="rpc-dedup-leases", daemon=True
                )
                self._keeper.start()
        return tracked

    def finished(self, tracked: _Tracked, ok: bool) -> None:
        """``tracked``'s request is settled: record it done (``ok``) or drop the claim."""
        with self._lock:
            if self._held.get(tracked.unique_id) is not tracked:
                return  # settled already
            del self._held[tracked.unique_id]
        try:
            if ok:
                self.store.done(tracked.unique_id, self.owner, tracked.sent)
            else:
                self.store.release(tracked.unique_id, self.owner)
        except Exception as exc:
            # A shared store's claim lapses by itself; a redelivery then runs again.
            LOG.warning(
                "could not record message %s in the de-dup store: %s", tracked.unique_id, exc
            )

    def _renew_leases(self) -> None:
        lease = self.store.lease
        assert lease is not None
        while True:
            time.sleep(lease / 3)
            with self._lock:
                ids = list(self._held)
                if not ids:
                    self._keeper = None
                    return
            try:
                self.store.renew(ids, self.owner)
            except Exception as exc:
                LOG.warning("could not renew %d de-dup claims: %s", len(ids), exc)


class _Tracked(IncomingMessage):
    """A claimed message: its reply is kept, and how it was settled is told to the store."""

    def __init__(self, inner: IncomingMessage, unique_id: str, dedup: Deduplicator) -> None:
        self.inner = inner
        self.message = inner.message
        self.unique_id = unique_id
        self.dedup = dedup
        self.sent: dict[str, Any] | None = None

    def reply(self, reply: dict[str, Any]) -> None:
        self.inner.reply(reply)
        self.sent = reply

    def ack(self) -> None:
        # Recorded before the ack: a server dying in between leaves a message
        # the broker redelivers and the store answers, never one run twice.
        self.dedup.finished(self, ok=True)
        self.inner.ack()

    def requeue(self) -> None:
        self.dedup.finished(self, ok=False)
        self.inner.requeue()

    def fail(self, reason: str) -> None:
        self.dedup.finished(self, ok=False)
        self.inner.fail(reason)

    def dead_letter(self, reason: str) -> None:
        self.dedup.finished(self, ok=False)
        self.inner.dead_letter(reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
