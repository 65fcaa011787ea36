"""The serving side: RPCDispatcher picks the endpoint, RPCServer runs it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import FunctionType, TracebackType
from typing import Any

from podium.context import RequestContext
from podium.exceptions import (
    InvalidTarget,
    MalformedMessage,
    MessagingError,
    NoSuchMethod,
    PolicyNotAuthorized,
    UnauthenticatedMessage,
    UnsupportedVersion,
)

from . import _codec
from ._dedup import Deduplicator, DedupStore, MemoryDedupStore, _current_id
from ._serializer import NoOpSerializer, Serializer
from ._signing import Refusal, Sender, _current_sender
from ._target import Target
from ._transport import IncomingMessage, Listener, Transport

__all__ = ["RPCDispatcher", "RPCServer"]

LOG = logging.getLogger(__name__)

_DEFAULT_TARGET = Target()

#: Called with (context, method, arguments) before a request's method runs;
#: raises to refuse it (the caller gets the exception). The signed sender, if
#: any, is :func:`~podium.rpc.current_sender`.
Authorize = Callable[[Any, str, dict[str, Any]], None]

# Message ids and reply addresses are echoed as AMQP short strings.
MAX_HEADER_BYTES = 255
_ECHOED_HEADERS = ("_msg_id", "_reply_q", _codec.UNIQUE_ID)


def header_problem(message: dict[str, Any]) -> str | None:
    """Why a request's ids or reply address cannot be echoed back, or ``None``.

    Checked before the request runs: a reply that cannot be built after the
    method ran would leave its effect done and the caller waiting.
    """
    for key in _ECHOED_HEADERS:
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return f"header {key} is a {type(value).__name__}, not a string"
        # Four bytes at most per character: short values need no encoding.
        if len(value) > MAX_HEADER_BYTES // 4 and len(value.encode()) > MAX_HEADER_BYTES:
            return f"header {key} is longer than {MAX_HEADER_BYTES} bytes"
        if not value.isprintable():
            return f"header {key} holds a control character"
    return None


_METHOD_KINDS = (FunctionType, staticmethod, classmethod)


_defined: dict[tuple[type, str], bool] = {}


def _defines_method(endpoint_class: type, name: str) -> bool:
    """Is ``name`` a method written on ``endpoint_class`` (or a base other than object)?

    Anything else an endpoint holds is out of a request's reach, callable or
    not: a ``Target`` in an attribute, a callback set on the instance, what
    every object inherits from ``object``.
    """
    known = _defined.get((endpoint_class, name))
    if known is not None:
        return known
    found = False
    for klass in endpoint_class.__mro__:
        if klass is object:
            break
        if name in klass.__dict__:
            found = isinstance(klass.__dict__[name], _METHOD_KINDS)
            break
    if len(_defined) < 4096:  # names come from the wire: keep the memory bounded
        _defined[(endpoint_class, name)] = found
    return found


class RPCDispatcher:
    """Finds the endpoint method for a message, honouring namespace and version.

    An endpoint serves ``namespace`` (default ``None``) at ``version`` (default
    ``"1.0"``) as declared by its ``target`` attribute; a message at ``X.Y``
    goes to an endpoint of the same namespace, major ``X`` and minor ``>= Y``.
    Only public methods (no leading underscore) that the endpoint's class
    defines are reachable.
    """

    def __init__(
        self,
        endpoints: Iterable[Any],
        serializer: Serializer | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.authorize = authorize
        self.endpoints = list(endpoints)
        self.serializer: Serializer = serializer or NoOpSerializer()

    def find(self, method: str, namespace: str | None, version: str) -> Any:
        found_namespace = False
        for endpoint in self.endpoints:
            target = getattr(endpoint, "target", None) or _DEFAULT_TARGET
            if target.namespace != namespace:
                continue
            found_namespace = True
            if not _codec.version_is_compatible(target.version or "1.0", version):
                continue
            if _defines_method(type(endpoint), method):
                return getattr(endpoint, method)
        if found_namespace and self._has_method(method, namespace):
            raise UnsupportedVersion(
                f"Endpoint does not support RPC version {version}. "
                f"Attempted method: {method!r}, namespace {namespace!r}"
            )
        raise NoSuchMethod(
            f"Endpoint does not support RPC method {method!r} "
            f"(namespace {namespace!r}, version {version})"
        )

    def _has_method(self, method: str, namespace: str | None) -> bool:
        return any(
            _defines_method(type(endpoint), method)
            for endpoint in self.endpoints
            if (getattr(endpoint, "target", None) or _DEFAULT_TARGET).namespace == namespace
        )

    def dispatch(self, message: dict[str, Any]) -> tuple[Any, Any]:
        """Run the method ``message`` asks for; return ``(ctxt, serialized result)``."""
        raw_ctxt = _codec.unpack_context(message)
        method = message.get("method")
        args = message.get("args") or {}
        namespace = message.get("namespace")
        version = message.get("version") or "1.0"
        if not isinstance(method, str) or not isinstance(args, dict):
            raise MalformedMessage("a request needs a string 'method' and an object 'args'")
        if namespace is not None and not isinstance(namespace, str):
            raise MalformedMessage("'namespace' must be a string")
        if not isinstance(version, str):
            raise MalformedMessage("'version' must be a string")
        if method.startswith("_"):
            raise NoSuchMethod(f"private method {method!r} cannot be called remotely")
        ctxt = self.serializer.deserialize_context(raw_ctxt)
        unique_id = message.pop(_codec.UNIQUE_ID, None)
        func = self.find(method, namespace, version)
        kwargs = {
            str(name): self.serializer.deserialize_entity(ctxt, value)
            for name, value in args.items()
        }
        # The endpoint reads the request's id with current_message_id().
        token = _current_id.set(unique_id if isinstance(unique_id, str) else None)
        try:
            if self.authorize is not None:
                self.authorize(ctxt, method, kwargs)
            if isinstance(ctxt, RequestContext):
                with ctxt.activated():
                    LOG.debug("dispatching %s [%s]", method, ctxt.request_id)
                    result = func(ctxt, **kwargs)
            else:
                result = func(ctxt, **kwargs)
        finally:
            _current_id.reset(token)
        return ctxt, self.serializer.serialize_entity(ctxt, result)


class RPCServer:
    """Consumes a target's queues and runs endpoint methods on a bounded pool.

    ``executor="threading"`` runs up to ``max_workers`` requests at a time;
    the broker hands over at most that many unacknowledged messages, and each
    is acknowledged only after its method has run and its reply was sent.
    ``authorize`` (:data:`Authorize`) may refuse a request before it runs.
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        endpoints: Iterable[Any],
        serializer: Serializer | None = None,
        executor: str = "threading",
        max_workers: int = 16,
        dedup_size: int = 4096,
        dedup: DedupStore | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        if executor != "threading":
            raise MessagingError(f"unknown executor {executor!r}; podium runs 'threading'")
        if not target.topic:
            raise InvalidTarget("an RPCServer's target needs a topic")
        if max_workers < 1:
            raise MessagingError("max_workers must be at least 1")
        self.transport = transport
        self.target = target
        self.dispatcher = RPCDispatcher(endpoints, serializer, authorize)
        self.max_workers = max_workers
        # Redeliveries are recognised by the message's unique id: by default in
        # this process only; a shared store (Redis, the database) across servers.
        self.dedup_store = dedup or MemoryDedupStore(dedup_size)
        self._seen = Deduplicator(self.dedup_store, lambda: self._stopping)
        self._pool: ThreadPoolExecutor | None = None
        self._listener: Listener | None = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        self._stopping = False
        # What a signed request may name as its destination to be served here.
        self._destinations = frozenset(
            {target.topic, f"{target.topic}.{target.server}"} if target.server else {target.topic}
        )

    def start(self) -> RPCServer:
        driver = self.transport.driver
        with self._lock:
            if self._listener is not None:
                return self
            self._stopping = False
            if not driver.runs_handlers:
                self._pool = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix=f"rpc-{self.target.topic}"
                )
        callback = self._run_inline if driver.runs_handlers else self._on_message
        self._listener = driver.listen(self.target, callback, prefetch=self.max_workers)
        return self

    def stop(self) -> None:
        """Stop taking requests; those already running carry on (see :meth:`wait`)."""
        with self._lock:
            self._stopping = True
        if self._listener is not None:
            self._listener.stop()

    def wait(self) -> None:
        """Wait for running requests to finish, then release the listener and pool."""
        with self._idle:
            while self._inflight:
                self._idle.wait()
        listener, self._listener = self._listener, None
        pool, self._pool = self._pool, None
        if listener is not None:
            listener.close()
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> RPCServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.wait()

    # Runs on the driver's receiving thread: only hand over, never block.
    def _on_message(self, incoming: IncomingMessage) -> None:
        with self._lock:
            pool = None if self._stopping else self._pool
            if pool is not None:
                self._inflight += 1
        if pool is None:
            incoming.requeue()
            return
        pool.submit(self._process, incoming)

    # The driver's worker threads are the pool: run the request right here.
    def _run_inline(self, incoming: IncomingMessage) -> None:
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._inflight += 1
        if stopping:
            incoming.requeue()
            return
        self._process(incoming)

    def _process(self, incoming: IncomingMessage) -> None:
        unique_id = incoming.message.get(_codec.UNIQUE_ID)
        try:
            self._handle(incoming)
        except Exception as exc:
            LOG.exception("unexpected error while handling a message")
            self._seen.forget(unique_id)
            if self.transport.signing is not None:
                self.transport.signing.forget(unique_id)  # its retry is no copy
            try:
                incoming.fail(f"{type(exc).__name__}: {exc}")
            except Exception:
                LOG.exception("could not settle a message whose handling failed")
        finally:
            with self._idle:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.notify_all()

    def _handle(self, incoming: IncomingMessage) -> None:
        message = incoming.message
        seal = message.pop(_codec.SEAL, None)
        problem = header_problem(message)
        if problem is not None:
            incoming.dead_letter(problem)
            return
        unique_id = message.get(_codec.UNIQUE_ID)
        signing = self.transport.signing
        sender: Sender | None = None
        copy_of: Refusal | None = None
        if signing is not None:
            try:
                sender = signing.check_request(seal, unique_id, self._destinations)
            except Refusal as refusal:
                if refusal.kind != "replayed":
                    self._refuse(incoming, refusal)
                    return
                copy_of = refusal
        taken = self._seen.take(incoming, unique_id)
        if taken is None:  # settled by the de-dup store (answered, dropped or requeued)
            if copy_of is not None and signing is not None:
                signing.count("replayed")  # not run again: the de-dup store answered it
            return
        if copy_of is not None:
            # Run here within the window, and forgotten by the de-dup memory since.
            self._seen.forget(unique_id)
            self._refuse(incoming, copy_of)
            return
        if signing is not None:
            signing.ran(seal, unique_id)
        self._run(taken, message, sender)

    def _run(
        self, incoming: IncomingMessage, message: dict[str, Any], sender: Sender | None
    ) -> None:
        """Dispatch an accepted request, reply to a call, and acknowledge it."""
        msg_id = message.pop("_msg_id", None)
        message.pop("_reply_q", None)
        message.pop("_timeout", None)
        reply: dict[str, Any] = {"result": None, "failure": None, "ending": True}
        # The endpoint reads who signed the request with current_sender().
        token = _current_sender.set(sender)
        try:
            _ctxt, reply["result"] = self.dispatcher.dispatch(message)
        except Exception as exc:
            if isinstance(
                exc, NoSuchMethod | UnsupportedVersion | MalformedMessage | PolicyNotAuthorized
            ):
                LOG.warning("rejected request %s: %s", message.get("method"), exc)
            elif msg_id:
                LOG.debug("request %s raised %r", message.get("method"), exc)
            else:
                LOG.exception("cast %s raised", message.get("method"))
            reply["failure"] = _codec.serialize_remote_exception(exc)
            reply["result"] = None
        finally:
            _current_sender.reset(token)
        if msg_id:
            reply["_msg_id"] = msg_id
            reply[_codec.UNIQUE_ID] = _codec.new_id()
            try:
                incoming.reply(reply)
            except MalformedMessage as exc:
                # The result itself cannot travel: tell the caller why.
                reply["result"] = None
                reply["failure"] = _codec.serialize_remote_exception(exc)
                incoming.reply(reply)
        incoming.ack()

    def _refuse(self, incoming: IncomingMessage, refusal: Refusal) -> None:
        """Settle a request refused for its signature: unrun, counted, told once."""
        signing = self.transport.signing
        assert signing is not None
        signing.count(refusal.kind)
        message = incoming.message
        reason = f"refused: {refusal.reason}"
        msg_id = message.get("_msg_id")
        if not msg_id:
            incoming.dead_letter(reason)  # which logs it
            return
        LOG.warning(
            "refused call %r (message %s): %s",
            message.get("method"),
            message.get(_codec.UNIQUE_ID),
            refusal.reason,
        )
        # The caller learns why at once instead of waiting out its timeout.
        failure = _codec.serialize_remote_exception(UnauthenticatedMessage(reason))
        incoming.reply(
            {
                "result": None,
                "failure": failure,
                "ending": True,
                "_msg_id": msg_id,
                _codec.UNIQUE_ID: _codec.new_id(),
            }
        )
        incoming.ack()
