"""Signed messages: which service sent a message, when, and proof of it (Ed25519).

A process given a :class:`SigningKey` seals everything it sends (requests and
replies): beside the oslo.messaging envelope's ``oslo.message`` it writes its
name (``podium.sender``: ``<service>.<host>``), its send time in milliseconds
(``podium.sent_at``) and an Ed25519 signature (``podium.signature``) over
those two and the bytes of ``oslo.message``. Nothing inside ``oslo.message``
changes, so a peer that does not check signatures (an oslo.messaging service)
reads a sealed message as any other.

A process given a :class:`KeyRing` (the public keys of the services it
trusts, one ``<service>.<host>.pub`` file each) checks what it receives:
:class:`MessageSigning` holds both halves, the policy (``require_signed``,
``window``) and the counts. Ed25519 rather than HMAC: a verifier holds only
public keys, so a conductor that checks every compute's messages cannot sign
as any of them, and a stolen keys directory forges nothing.

The sending half (:class:`Sender`, :class:`SigningKey`) is in
:mod:`podium.rpc._seal`; this module checks what it seals.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.exceptions import UnauthenticatedMessage

from . import _codec
from ._seal import (
    PUBLIC_SUFFIX,
    Sender,
    SigningKey,
    ed25519_module,
    serialization_module,
    signed_bytes,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "PUBLIC_SUFFIX",
    "KeyRing",
    "MessageSigning",
    "Sender",
    "SigningKey",
    "current_sender",
]

LOG = logging.getLogger(__name__)

DEFAULT_WINDOW = 60.0
# How long a key file is trusted as read before it is looked at again: a key
# removed from the directory (revoked) or replaced is noticed within this time.
_RECHECK_SECONDS = 5.0
# Ids of requests run within the window, remembered to refuse a copy of one.
# Past this many, the oldest are forgotten (the de-dup memory still has them).
MAX_REMEMBERED = 1 << 20

_current_sender: contextvars.ContextVar[Sender | None] = contextvars.ContextVar(
    "podium_message_sender", default=None
)


def current_sender() -> Sender | None:
    """Inside an endpoint method: who signed the request, as checked; else None.

    None when the server checks no signatures, or accepted the request
    unsigned (``require_signed = false``). Authorization decisions read the
    sender from here, never from the request's context, which the sender
    writes as it likes.
    """
    return _current_sender.get()


class _Entry:
    __slots__ = ("checked", "key", "stamp")

    def __init__(self, key: Ed25519PublicKey | None, stamp: tuple[int, int] | None) -> None:
        self.key = key
        self.stamp = stamp
        self.checked = time.monotonic()


class KeyRing:
    """The public keys a process accepts signatures from, by sender name.

    ``directory`` holds one ``<service>.<host>.pub`` (PEM) per trusted
    service process. A key is read when first needed and looked at again
    every few seconds: a file added is picked up, one removed (a revoked key)
    or replaced takes effect, without a restart. ``keys`` adds keys in code.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None and not self.directory.is_dir():
            raise ValueError(f"the keys directory {self.directory} does not exist")
        self._fixed = dict(keys or {})
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Ed25519PublicKey | None:
        """The public key of sender ``name``, or None if none is trusted."""
        fixed = self._fixed.get(name)
        if fixed is not None or self.directory is None:
            return fixed
        entry = self._cache.get(name)
        if entry is not None and time.monotonic() - entry.checked < _RECHECK_SECONDS:
            return entry.key
        try:
            Sender.parse(name)  # a name from the wire never walks the file system
        except ValueError:
            return None
        entry = self._read(name, entry)
        with self._lock:
            if len(self._cache) >= 65536:
                self._cache.clear()
            self._cache[name] = entry
        return entry.key

    def _read(self, name: str, old: _Entry | None) -> _Entry:
        assert self.directory is not None
        path = self.directory / f"{name}{PUBLIC_SUFFIX}"
        try:
            info = path.stat()
        except OSError:
            return _Entry(None, None)
        stamp = (info.st_mtime_ns, info.st_size)
        if old is not None and old.stamp == stamp:
            return _Entry(old.key, stamp)
        try:
            key = serialization_module().load_pem_public_key(path.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            LOG.error("ignoring the public key %s: %s", path, exc)
            return _Entry(None, stamp)
        if not isinstance(key, ed25519_module().Ed25519PublicKey):
            LOG.error("ignoring the public key %s: not an Ed25519 key", path)
            return _Entry(None, stamp)
        return _Entry(key, stamp)

    def add(self, name: str, public_pem: bytes) -> None:
        """Trust ``public_pem`` for sender ``name`` (in code; tests, embedded setups)."""
        Sender.parse(name)
        key = serialization_module().load_pem_public_key(public_pem)
        if not isinstance(key, ed25519_module().Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        self._fixed[name] = key


class Refusal(Exception):
    """Why a received message is refused: its ``kind`` (a count's name) and the reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


#: The counts :meth:`MessageSigning.counts` reports.
COUNT_KINDS = (
    "signed",  # requests accepted with a good signature
    "unsigned_accepted",  # requests accepted unsigned (require_signed = false)
    "unsigned",  # requests refused unsigned (require_signed = true)
    "bad_signature",  # a signature that does not verify, or unreadable signing fields
    "unknown_key",  # signed by a sender with no trusted key
    "stale",  # sent longer ago (or further ahead) than the window
    "misrouted",  # signed for another destination (topic or server) than this server's
    "replayed",  # a copy of a request already run here
    "bad_reply",  # replies refused by a caller
)


class MessageSigning:
    """What a process signs with, whose signatures it accepts, and how strictly.

    ``key``: this process's :class:`SigningKey` (None: it sends unsigned).
    ``keys``: the :class:`KeyRing` it checks received messages against
    (None: it checks nothing). ``require_signed``: refuse requests without a
    good signature (False, for an upgrade: accept and count them).
    ``window``: seconds a request's send time may be from this host's clock.

    Given to :func:`~podium.rpc.get_transport`, it applies to every client
    and server on that transport.
    """

    def __init__(
        self,
        key: SigningKey | None = None,
        keys: KeyRing | None = None,
        *,
        require_signed: bool = False,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        if require_signed and keys is None:
            raise ValueError("require_signed needs the keys to check signatures with")
        if not window > 0:
            raise ValueError("the signature window must be a positive number of seconds")
        self.key = key
        self.keys = keys
        self.require_signed = require_signed
        self.window = float(window)
        self._counts = dict.fromkeys(COUNT_KINDS, 0)
        self._lock = threading.Lock()
        # unique id -> (signature, forget after): requests run here within the window.
        self._ran: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._overflow_logged = False

    @property
    def sender(self) -> Sender | None:
        return self.key.sender if self.key is not None else None

    def counts(self) -> dict[str, int]:
        """How many received messages of each kind (:data:`COUNT_KINDS`) so far."""
        with self._lock:
            return dict(self._counts)

    def count(self, kind: str) -> int:
        with self._lock:
            self._counts[kind] += 1
            return self._counts[kind]

    # -- requests ------------------------------------------------------------

    def check_request(
        self, seal: Any, unique_id: Any, destinations: Collection[str]
    ) -> Sender | None:
        """The checked sender of a request (None: accepted unsigned), or :class:`Refusal`.

        ``destinations``: what the receiving server serves (``topic`` and
        ``topic.server``); a request signed for elsewhere was moved on its way.
        """
        if self.keys is None:
            return None
        if seal is None:
            if self.require_signed:
                raise Refusal("unsigned", "unsigned request (this server requires signatures)")
            total = self.count("unsigned_accepted")
            if total & (total - 1) == 0 or total % 10000 == 0:  # 1, 2, 4, ... then every 10000
                LOG.warning(
                    "accepted an unsigned request (require_signed = false): %d so far", total
                )
            return None
        sender, signature = self._verify(seal)
        # An int of any size reads from JSON; past 2**53 ms (year 287396) it is no time.
        if not 0 <= seal.sent_at < 2**53:
            raise Refusal("stale", f"request from {sender} with no usable send time")
        skew = time.time() - seal.sent_at / 1000
        if abs(skew) > self.window:
            when = "ago" if skew > 0 else "ahead"
            raise Refusal(
                "stale",
                f"request from {sender} sent {abs(skew):.0f} s {when}, "
                f"outside the {self.window:g} s window",
            )
        if seal.destination not in destinations:
            raise Refusal(
                "misrouted",
                f"request from {sender} signed for {seal.destination!r}, "
                f"not for {' or '.join(sorted(destinations))}",
            )
        if isinstance(unique_id, str):
            with self._lock:
                seen = self._ran.get(unique_id)
            # The signature's bytes, not its text: base64 writes the same bytes
            # in more than one way, and a copy must not pass for new.
            if seen is not None and seen[0] == signature:
                raise Refusal("replayed", f"copy of request {unique_id} from {sender}, already run")
        self.count("signed")
        return sender

    def ran(self, seal: Any, unique_id: Any) -> None:
        """A checked request is being run: refuse copies of it until it goes stale."""
        if seal is None or self.keys is None or not isinstance(unique_id, str):
            return
        signature = base64.b64decode(seal.signature)  # checked by check_request
        now = time.monotonic()
        # Its send time may be up to a window ahead of this clock, and it goes
        # stale a window after that.
        forget_after = now + 2 * self.window
        with self._lock:
            ran = self._ran
            while ran:
                oldest = next(iter(ran.values()))
                if oldest[1] > now and len(ran) < MAX_REMEMBERED:
                    break
                if oldest[1] > now and not self._overflow_logged:
                    self._overflow_logged = True
                    LOG.warning(
                        "more than %d signed requests within %g s: copies of the oldest are "
                        "now refused only by the de-dup memory",
                        MAX_REMEMBERED,
                        2 * self.window,
                    )
                ran.popitem(last=False)
            ran[unique_id] = (signature, forget_after)
            ran.move_to_end(unique_id)

    def forget(self, unique_id: Any) -> None:
        """The request's handling failed: its own retry must run."""
        if isinstance(unique_id, str):
            with self._lock:
                self._ran.pop(unique_id, None)

    # -- replies -------------------------------------------------------------

    def check_reply(self, seal: Any) -> Sender | None:
        """The checked sender of a reply, or :class:`UnauthenticatedMessage`.

        A reply answers one call by its unique ``_msg_id`` (covered by the
        signature), so a copy of an old reply matches no call: only the
        signature and the key are checked.
        """
        if self.keys is None:
            return None
        try:
            if seal is None:
                if self.require_signed:
                    raise Refusal("unsigned", "unsigned reply (signatures are required)")
                return None
            return self._verify(seal)[0]
        except Refusal as refusal:
            self.count("bad_reply")
            raise UnauthenticatedMessage(f"reply refused: {refusal.reason}") from None

    # -- both ----------------------------------------------------------------

    def _verify(self, seal: Any) -> tuple[Sender, bytes]:
        """The sender whose key made ``seal``'s signature, and the signature's bytes."""
        if not isinstance(seal, _codec.Seal):
            raise Refusal("bad_signature", "unreadable signing fields")
        name, sent_at, signature = seal.sender, seal.sent_at, seal.signature
        if (
            not isinstance(name, str)
            or not isinstance(sent_at, int)
            or isinstance(sent_at, bool)
            or not isinstance(signature, str)
            or not isinstance(seal.destination, str | None)
        ):
            raise Refusal("bad_signature", "ill-typed signing fields")
        try:
            sender = Sender.parse(name)
        except ValueError:
            raise Refusal("unknown_key", "signed by an unreadable sender name") from None
        assert self.keys is not None
        public_key = self.keys.get(name)
        if public_key is None:
            raise Refusal("unknown_key", f"signed by {sender}, whose key is not trusted here")
        from cryptography.exceptions import InvalidSignature

        try:
            raw = base64.b64decode(signature, validate=True)
            signed = signed_bytes(name, sent_at, seal.destination, seal.inner.encode("utf-8"))
            public_key.verify(raw, signed)
        except (binascii.Error, ValueError, UnicodeError):
            raise Refusal("bad_signature", f"unreadable signature from {sender}") from None
        except InvalidSignature:
            reason = f"a signature that does not match {sender}'s key"
            raise Refusal("bad_signature", reason) from None
        return sender, raw
