"""The sending half of signed messages: who sends (:class:`Sender`), with which
private key (:class:`SigningKey`), and the bytes a signature covers.

:mod:`podium.rpc._signing` checks what these seals; see it for the protocol.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import _codec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "PUBLIC_SUFFIX",
    "Sender",
    "SigningKey",
    "ed25519_module",
    "serialization_module",
    "signed_bytes",
]

#: Written before what is signed, so a signature made for anything else
#: (another protocol, a later format) never passes for one of these.
_DOMAIN = b"podium-signed-message-1\n"
_SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
PUBLIC_SUFFIX = ".pub"


@dataclass(frozen=True, slots=True)
class Sender:
    """A service process's identity: its service type and its host."""

    service: str
    host: str

    def __post_init__(self) -> None:
        if not _SERVICE.match(self.service):
            raise ValueError(
                f"service {self.service!r} is not a service name "
                "(a lower-case letter, then letters, digits, '-' or '_', at most 63)"
            )
        if not _HOST.match(self.host):
            raise ValueError(
                f"host {self.host!r} is not a host name "
                "(letters, digits, '.', '-' or '_', at most 253)"
            )

    @property
    def name(self) -> str:
        """``<service>.<host>``: how the sender is written in a message and a key file."""
        return f"{self.service}.{self.host}"

    @classmethod
    def parse(cls, name: str) -> Sender:
        service, dot, host = name.partition(".")
        if not dot:
            raise ValueError(f"{name!r} is not <service>.<host>")
        return cls(service, host)

    def __str__(self) -> str:
        return self.name


def ed25519_module() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("message signing needs the 'cryptography' package") from exc
    return ed25519


def serialization_module() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def signed_bytes(sender: str, sent_at: int, destination: str | None, inner: bytes) -> bytes:
    # The fields as one JSON array: no value can be read as part of another.
    return b"".join((_DOMAIN, orjson.dumps([sender, sent_at, destination]), b"\n", inner))


class SigningKey:
    """A service's private key and the identity it signs as."""

    def __init__(
        self,
        sender: Sender,
        private_key: Ed25519PrivateKey,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.sender = sender
        self._key = private_key
        self._name = sender.name
        # Nanoseconds since the epoch: the send time each message carries.
        self._clock = clock

    @classmethod
    def generate(cls, sender: Sender, clock: Callable[[], int] = time.time_ns) -> SigningKey:
        return cls(sender, ed25519_module().Ed25519PrivateKey.generate(), clock)

    @classmethod
    def load(cls, path: str | os.PathLike[str], sender: Sender) -> SigningKey:
        """The PEM private key at ``path``, refused if anyone but its owner may read it."""
        file = Path(path)
        try:
            mode = file.stat().st_mode
            data = file.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the key file {file}: {exc.strerror}") from None
        if os.name == "posix" and mode & 0o077:
            raise ValueError(
                f"the key file {file} may be read by others (mode {mode & 0o777:o}): "
                f"chmod 600 {file}"
            )
        serialization = serialization_module()
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{file} holds no usable private key: {exc}") from None
        if not isinstance(key, ed25519_module().Ed25519PrivateKey):
            raise ValueError(f"{file} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(sender, key)

    def private_pem(self) -> bytes:
        serialization = serialization_module()
        pem: bytes = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem

    def public_pem(self) -> bytes:
        serialization = serialization_module()
        pem: bytes = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def seal(self, inner: bytes, destination: str | None = None) -> dict[str, Any]:
        """The envelope fields that sign ``inner`` (a message's ``oslo.message`` bytes)
        and, for a request, its ``destination`` (``topic`` or ``topic.server``)."""
        sent_at = self._clock() // 1_000_000
        signature = self._key.sign(signed_bytes(self._name, sent_at, destination, inner))
        fields = {
            _codec.SENDER_KEY: self._name,
            _codec.SENT_AT_KEY: sent_at,
            _codec.SIGNATURE_KEY: base64.b64encode(signature).decode("ascii"),
        }
        if destination is not None:
            fields[_codec.DESTINATION_KEY] = destination
        return fields

    def __repr__(self) -> str:
        return f"<SigningKey {self._name}>"
