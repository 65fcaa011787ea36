"""The caller's side: RPCClient.call / cast / prepare."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from podium.context import RequestContext, current_request_id
from podium.exceptions import InvalidTarget, UnsupportedVersion

from . import _codec
from ._serializer import NoOpSerializer, Serializer
from ._target import Target
from ._transport import Transport

__all__ = ["RPCClient"]

LOG = logging.getLogger(__name__)

_UNSET: Any = object()

Context = RequestContext | Mapping[str, Any] | None


class RPCClient:
    """Sends calls and casts to a :class:`Target` over a :class:`Transport`.

    Cheap to create; :meth:`prepare` returns a copy with a few attributes
    overridden (server, version, timeout, fanout, namespace, idempotent).

    ``idempotent=True`` says the server applies a request once by its message
    id (:func:`current_message_id`; the conductor's inbox does): a call whose
    connection is lost after it was sent is then sent again, with the same id,
    until its timeout, instead of failing with "it may or may not have run".
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        version_cap: str | None = None,
        timeout: float | None = 60,
        serializer: Serializer | None = None,
        retry: int | None = None,
        idempotent: bool = False,
    ) -> None:
        if not isinstance(transport, Transport):
            raise TypeError(f"transport must be a Transport, not {type(transport).__name__}")
        if not isinstance(target, Target):
            raise TypeError(f"target must be a Target, not {type(target).__name__}")
        self.transport = transport
        self.target = target
        self.version_cap = version_cap
        self.timeout = timeout
        self.serializer: Serializer = serializer or NoOpSerializer()
        self.retry = retry
        # The server applies a request once by its id (the conductor's inbox,
        # a shared de-dup store): a call cut off after it was sent may go again.
        self.idempotent = idempotent

    def prepare(
        self,
        exchange: Any = _UNSET,
        topic: Any = _UNSET,
        namespace: Any = _UNSET,
        version: Any = _UNSET,
        server: Any = _UNSET,
        fanout: Any = _UNSET,
        timeout: Any = _UNSET,
        version_cap: Any = _UNSET,
        retry: Any = _UNSET,
        idempotent: Any = _UNSET,
    ) -> RPCClient:
        changes = {
            name: value
            for name, value in (
                ("exchange", exchange),
                ("topic", topic),
                ("namespace", namespace),
                ("version", version),
                ("server", server),
                ("fanout", fanout),
            )
            if value is not _UNSET
        }
        return RPCClient(
            self.transport,
            self.target(**changes) if changes else self.target,
            version_cap=self.version_cap if version_cap is _UNSET else version_cap,
            timeout=self.timeout if timeout is _UNSET else timeout,
            serializer=self.serializer,
            retry=self.retry if retry is _UNSET else retry,
            idempotent=self.idempotent if idempotent is _UNSET else idempotent,
        )

    def can_send_version(self, version: str | None = _UNSET) -> bool:
        """Does the version cap allow sending ``version`` (default: the target's)?"""
        wanted = self.target.version if version is _UNSET else version
        return _codec.version_is_compatible(self.version_cap, wanted)

    def _check_version_cap(self, version: str | None) -> None:
        if not _codec.version_is_compatible(self.version_cap, version):
            raise UnsupportedVersion(
                f"Requested message version {version} is incompatible with the version cap "
                f"{self.version_cap}: it must be the same major and not a higher minor"
            )

    def _make_message(self, ctxt: Any, method: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if not self.target.topic:
            raise InvalidTarget("RPCClient needs a target with a topic")
        if not isinstance(method, str) or not method:
            raise TypeError("method must be a non-empty string")
        self._check_version_cap(self.target.version)
        serialize = self.serializer.serialize_entity
        message: dict[str, Any] = {
            "method": method,
            "args": {name: serialize(ctxt, value) for name, value in kwargs.items()},
        }
        if self.target.namespace is not None:
            message["namespace"] = self.target.namespace
        if self.target.version is not None:
            message["version"] = self.target.version
        _codec.pack_context(message, self.serializer.serialize_context(ctxt))
        if self.transport.driver.sealer is not None:
            # Signed with the request: a copy moved to another queue is refused there.
            target = self.target
            one_server = target.server and not target.fanout
            destination = f"{target.topic}.{target.server}" if one_server else target.topic
            message[_codec.DESTINATION] = destination
        return message

    def cast(self, ctxt: Context, method: str, **kwargs: Any) -> None:
        """Send without waiting; fanout targets reach every server of the topic."""
        message = self._make_message(ctxt, method, kwargs)
        if LOG.isEnabledFor(logging.DEBUG):  # describe() builds a string: only when logged
            LOG.debug("cast %s to %s [%s]", method, self.target.describe(), _request_id(ctxt))
        self.transport.send(
            self.target, message, wait_for_reply=False, timeout=self.timeout, retry=self.retry
        )

    def call(self, ctxt: Context, method: str, **kwargs: Any) -> Any:
        """Send and wait for the result; remote exceptions are re-raised here."""
        if self.target.fanout:
            raise InvalidTarget("call() cannot be used with a fanout target; use cast()")
        message = self._make_message(ctxt, method, kwargs)
        if LOG.isEnabledFor(logging.DEBUG):  # describe() builds a string: only when logged
            LOG.debug("call %s on %s [%s]", method, self.target.describe(), _request_id(ctxt))
        reply = self.transport.send(
            self.target,
            message,
            wait_for_reply=True,
            timeout=self.timeout,
            retry=self.retry,
            resend_lost=self.idempotent,
        )
        assert reply is not None
        seal = reply.pop(_codec.SEAL, None)
        if self.transport.signing is not None:
            self.transport.signing.check_reply(seal)
        failure = reply.get("failure")
        if failure:
            raise _codec.deserialize_remote_exception(failure, self.transport.allowed_remote_exmods)
        return self.serializer.deserialize_entity(ctxt, reply.get("result"))


def _request_id(ctxt: Any) -> str:
    if isinstance(ctxt, RequestContext):
        return ctxt.request_id
    if isinstance(ctxt, Mapping):
        return str(ctxt.get("request_id", "-"))
    return current_request_id.get() or "-"
