"""The wire format: oslo.messaging's rabbit-driver 2.0 envelope, and what rides in it.

A message on the wire is the JSON object
``{"oslo.version": "2.0", "oslo.message": "<JSON string>"}``; the inner JSON
holds ``method``, ``args``, ``namespace``, ``version``, the context flattened
into ``_context_<key>`` entries, ``_unique_id`` and, for a call, ``_msg_id`` and
``_reply_q``. A reply's inner JSON holds ``result``, ``failure`` (a JSON
string describing an exception, or null), ``ending`` and ``_msg_id``. Every
driver, the in-memory one included, goes through :func:`encode` and
:func:`decode`, so a payload that cannot travel fails in a unit test.

A signed message (:mod:`podium.rpc._signing`) has three more envelope keys,
beside ``oslo.message`` and untouched by peers that ignore them:
``podium.sender``, ``podium.sent_at``, ``podium.signature`` and, on a
request, ``podium.to``. :func:`decode`
hands them on as a :class:`Seal` under the message's :data:`SEAL` key.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import sys
import traceback
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, Protocol

import orjson

from podium._text import text_of
from podium._versions import parse_version
from podium.exceptions import (
    MalformedMessage,
    MessagingTimeout,
    NoConsumer,
    RemoteError,
    TransportError,
)

LOG = logging.getLogger(__name__)

VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
ENVELOPE_VERSION = "2.0"
UNIQUE_ID = "_unique_id"
CONTEXT_PREFIX = "_context_"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: How deep lists and objects may nest in a received message, the message
#: itself being level 1. Deeper ones are refused by :func:`decode`: code that
#: walks a message recursively (a serializer, str() of an argument) must not
#: run out of stack. Read at call time, so it may be set at start-up.
MAX_MESSAGE_DEPTH = 128
CONTENT_TYPE = "application/json"
# The signing fields of a sealed envelope.
SENDER_KEY = "podium.sender"
SENT_AT_KEY = "podium.sent_at"
SIGNATURE_KEY = "podium.signature"
DESTINATION_KEY = "podium.to"
#: Set by a signing client in the message it hands its driver: where the
#: request goes (``topic`` or ``topic.server``), signed into the envelope as
#: ``podium.to`` and left out of ``oslo.message``.
DESTINATION = "_podium_to"
#: Where :func:`decode` puts a message's :class:`Seal`. Whatever the wire put
#: there is removed: only decode() writes it, with a Seal, never JSON.
SEAL = "_podium_seal"

_REMOTE_POSTFIX = "_Remote"
# Builtin exceptions are always rebuilt (oslo.messaging does the same), so a
# ValueError raised remotely is a ValueError here.
_BUILTINS = frozenset({"builtins", "exceptions"})
_JSON_OPTS = orjson.OPT_NON_STR_KEYS
# Raised by a caller's own transport, these mean "not delivered" or "no
# answer"; coming from the remote side, the request did run.
_DELIVERY_ERRORS = (TransportError, NoConsumer, MessagingTimeout)


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable; use a serializer")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_JSON_OPTS)
    except TypeError as exc:
        raise MalformedMessage(f"message cannot be encoded: {exc}") from exc


# Ids only need to be unique, not unpredictable: a random per-process prefix
# and a counter cost far less than a uuid4 (a getrandom() call) per message.
_ID_PREFIX = uuid.uuid4().hex[:20]
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


class Sealer(Protocol):
    def seal(self, inner: bytes, destination: str | None = None) -> dict[str, Any]:
        """The envelope fields that sign ``inner`` (the bytes of ``oslo.message``) and
        ``destination`` (a request's; None for a reply)."""
        ...


class Seal(NamedTuple):
    """A received message's signing fields, as sent (checked by podium.rpc._signing)."""

    sender: Any
    sent_at: Any
    signature: Any
    destination: Any
    inner: str  # the oslo.message text they sign


def encode(message: Mapping[str, Any], sealer: Sealer | None = None) -> bytes:
    """The enveloped body for ``message`` (a request or a reply), signed by ``sealer``."""
    destination = message.get(DESTINATION)
    if destination is not None:
        message = {key: value for key, value in message.items() if key != DESTINATION}
    inner = dumps(message)
    outer = {VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: inner.decode("utf-8")}
    if sealer is not None:
        outer.update(sealer.seal(inner, destination))
    return orjson.dumps(outer)


def decode(
    body: bytes | str, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_depth: int | None = None
) -> dict[str, Any]:
    """The inner message of an enveloped body; :class:`MalformedMessage` otherwise.

    ``max_depth`` defaults to :data:`MAX_MESSAGE_DEPTH`.
    """
    limit = MAX_MESSAGE_DEPTH if max_depth is None else max_depth
    if len(body) > max_bytes:
        raise MalformedMessage(f"message of {len(body)} bytes exceeds the {max_bytes}-byte limit")
    try:
        outer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"message body is not JSON: {exc}") from exc
    if not isinstance(outer, dict):
        raise MalformedMessage(f"message body is a JSON {type(outer).__name__}, not an object")
    if VERSION_KEY not in outer or MESSAGE_KEY not in outer:
        # oslo.messaging still accepts the pre-envelope format: the bare message.
        outer.pop(SEAL, None)
        return _shallow_enough(outer, body, limit)
    version = outer[VERSION_KEY]
    if not isinstance(version, str) or version.split(".")[0] != "2":
        raise MalformedMessage(f"unsupported envelope version {version!r}")
    inner_text = outer[MESSAGE_KEY]
    if not isinstance(inner_text, str):
        raise MalformedMessage("envelope's oslo.message is not a string")
    try:
        inner = orjson.loads(inner_text)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"envelope's oslo.message is not JSON: {exc}") from exc
    if not isinstance(inner, dict):
        raise MalformedMessage("envelope's oslo.message is not a JSON object")
    # The inner text, not the body: brackets escaped as \u005b in the body are
    # real ones in the inner text.
    message = _shallow_enough(inner, inner_text, limit)
    message.pop(SEAL, None)
    if SIGNATURE_KEY in outer:
        message[SEAL] = Seal(
            outer.get(SENDER_KEY),
            outer.get(SENT_AT_KEY),
            outer[SIGNATURE_KEY],
            outer.get(DESTINATION_KEY),
            inner_text,
        )
    return message


# -- nesting depth ---------------------------------------------------------------

# Up to this size, counting brackets in the text first is worth it: most
# messages have fewer brackets than the limit, which settles it at once.
_COUNT_BRACKETS_UP_TO = 16 * 1024
_NESTED = (dict, list, tuple)


def _shallow_enough(message: dict[str, Any], text: bytes | str, limit: int) -> dict[str, Any]:
    """``message``, decoded from ``text``, unless it nests deeper than ``limit``."""
    if len(text) < 2 * (limit + 1):
        return message  # each level takes two characters
    if len(text) <= _COUNT_BRACKETS_UP_TO:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        # One level takes one opening bracket (counting those inside strings
        # too only overestimates). replace() runs at memchr speed, count() not.
        if len(data) - len(data.replace(b"[", b"").replace(b"{", b"")) <= limit:
            return message
    if deeper_than(message, limit):
        raise MalformedMessage(f"message is nested more than {limit} levels deep")
    return message


_dumps_depth_limit: int | None = -1


def _orjson_dumps_depth() -> int | None:
    """How many nested lists orjson.dumps writes before refusing (254 in orjson 3), or None."""
    global _dumps_depth_limit
    if _dumps_depth_limit == -1:
        found: int | None = None
        value: Any = None
        for depth in range(1, 2049):
            value = [value]
            try:
                orjson.dumps(value)
            except TypeError:
                found = depth - 1
                break
        _dumps_depth_limit = found
    return _dumps_depth_limit


def deeper_than(value: Any, limit: int) -> bool:
    """Do dicts, lists and tuples nest more than ``limit`` levels in ``value`` (itself one)?"""
    orjson_limit = _orjson_dumps_depth()
    if orjson_limit is not None and 0 <= limit < orjson_limit:
        # orjson.dumps counts levels in C and refuses past its own limit: wrapped
        # in (its limit - ours) lists, value passes exactly when it is within
        # ours. A few times faster than the walk below on a wide message.
        wrapped = value
        for _ in range(orjson_limit - limit):
            wrapped = [wrapped]
        try:
            # No OPT_NON_STR_KEYS: it halves orjson's speed, and a value with
            # such keys goes to the walk anyway.
            orjson.dumps(wrapped)
        except TypeError:
            pass  # too deep, or something orjson cannot write: the walk decides
        else:
            return False
    # Level by level, each container once per level (by id): a value built in
    # code may share a list between two places, or hold itself.
    level = [value] if isinstance(value, _NESTED) else []
    for _ in range(limit):
        level = list(
            {
                id(item): item
                for node in level
                for item in (node.values() if isinstance(node, dict) else node)
                if isinstance(item, _NESTED)
            }.values()
        )
        if not level:
            return False
    return bool(level)


# -- context -----------------------------------------------------------------


def pack_context(message: dict[str, Any], ctxt: Mapping[str, Any]) -> None:
    for key, value in ctxt.items():
        message[CONTEXT_PREFIX + key] = value


def unpack_context(message: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``_context_*`` keys out of ``message`` and return them as a dict."""
    keys = [k for k in message if k.startswith(CONTEXT_PREFIX)]
    return {k[len(CONTEXT_PREFIX) :]: message.pop(k) for k in keys}


# -- versions ----------------------------------------------------------------


def _parts(version: str) -> tuple[int, ...]:
    # A missing minor or revision is 0: "1" is 1.0, as oslo.messaging reads it.
    parsed = parse_version(version, min_parts=1)
    if parsed is None:
        raise MalformedMessage(f"bad version string {version!r}")
    return parsed + (0,) * (3 - len(parsed))


def version_is_compatible(imp_version: str | None, version: str | None) -> bool:
    """Can an implementation at ``imp_version`` serve a message at ``version``?

    Same major, and the message's minor (then revision) not above the
    implementation's. ``None`` as implementation means "anything".
    """
    if imp_version is None:
        return True
    if version is None:
        return False
    have, want = _parts(imp_version), _parts(version)
    return have[0] == want[0] and want[1:] <= have[1:]


# -- remote exceptions -------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` if it can travel in a failure, else its text."""
    # A failure is decoded with the limit of a message: {"args": [value]}.
    if deeper_than(value, MAX_MESSAGE_DEPTH - 2):
        return text_of(value)
    try:
        orjson.dumps(value, default=_default, option=_JSON_OPTS)
    except TypeError:
        return text_of(value)
    return value


def serialize_remote_exception(exc: BaseException, tb: TracebackType | None = None) -> str:
    """The JSON text oslo.messaging puts in a reply's ``failure``."""
    lines = traceback.format_exception(type(exc), exc, tb or exc.__traceback__)
    cls_name = type(exc).__name__
    mod_name = type(exc).__module__
    if cls_name.endswith(_REMOTE_POSTFIX) and mod_name.endswith(_REMOTE_POSTFIX):
        cls_name = cls_name[: -len(_REMOTE_POSTFIX)]
        mod_name = mod_name[: -len(_REMOTE_POSTFIX)]
    # Prefer the constructor arguments pickling would use: exceptions whose
    # __init__ differs from their args (podium's own do) rebuild faithfully.
    args: Iterable[Any] = exc.args
    try:
        reduced = exc.__reduce__()
        if isinstance(reduced, tuple) and reduced[0] is type(exc) and isinstance(reduced[1], tuple):
            args = reduced[1]
    except Exception:  # a broken __reduce__ must not stop the reply
        pass
    kwargs = getattr(exc, "kwargs", None)
    data = {
        "class": cls_name,
        "module": mod_name,
        "message": text_of(exc),
        "tb": lines,
        "args": [_jsonable(a) for a in args],
        "kwargs": {text_of(k): _jsonable(v) for k, v in kwargs.items()}
        if isinstance(kwargs, dict)
        else {},
    }
    try:
        return dumps(data).decode("utf-8")
    except MalformedMessage:
        # The reply must go out whatever the exception holds: without its arguments.
        data["args"], data["kwargs"] = [], {}
        return dumps(data).decode("utf-8")


def deserialize_remote_exception(data: str, allowed_remote_exmods: Iterable[str]) -> Exception:
    """The exception to raise on the caller for a reply's ``failure``."""
    try:
        failure = orjson.loads(data)
    except orjson.JSONDecodeError:
        return RemoteError("UnknownError", text_of(data), "")
    if deeper_than(failure, MAX_MESSAGE_DEPTH):
        return RemoteError("UnknownError", "a failure nested too deeply to read", "")
    if not isinstance(failure, dict):
        return RemoteError("UnknownError", str(failure), "")
    trace = failure.get("tb") or []
    if not isinstance(trace, list):
        trace = [trace]
    trace_text = "".join(str(line) for line in trace)
    name = str(failure.get("class") or "UnknownError")
    module = str(failure.get("module") or "")
    message = str(failure.get("message") or "")
    if module not in _BUILTINS and module not in set(allowed_remote_exmods):
        return RemoteError(name, message, trace_text)
    if module == "exceptions":
        module = "builtins"
    try:
        mod = sys.modules.get(module) or importlib.import_module(module)
        klass = getattr(mod, name)
        if not (isinstance(klass, type) and issubclass(klass, Exception)):
            raise TypeError(f"{module}.{name} is not an Exception class")
        if issubclass(klass, _DELIVERY_ERRORS):
            return RemoteError(name, message, trace_text)
        args = failure.get("args") or []
        kwargs = failure.get("kwargs") or {}
        exc: Exception = klass(*args, **kwargs)
    except Exception as error:
        LOG.warning("could not rebuild remote exception %s.%s: %s", module, name, error)
        return RemoteError(name, message, trace_text)
    exc.add_note(f"Remote traceback:\n{trace_text.rstrip()}")
    exc.remote_traceback = trace_text  # type: ignore[attr-defined]
    return exc


def current_failure() -> str:
    exc = sys.exc_info()[1]
    assert exc is not None
    return serialize_remote_exception(exc)
