"""Who a request comes from (static tokens from the configuration) and how often it may ask.

Tokens are kept only as SHA-256 digests: the table never holds a secret a log
line or a traceback could print, and the rate limiter's buckets are keyed by
the same digest.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from podium.context import MAX_ID_LENGTH, RequestContext

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Credentials:
    """What a token stands for."""

    user_id: str
    project_id: str
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def context(self) -> RequestContext:
        """A fresh request context (its own request id) for one request."""
        return RequestContext(
            user_id=self.user_id,
            project_id=self.project_id,
            roles=list(self.roles),
            is_admin=self.is_admin,
        )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenError(ValueError):
    """The ``api_tokens`` setting cannot be read; says where, never the token."""


def _parse_entry(entry: str, where: str) -> tuple[str, Credentials]:
    token, sep, who = entry.partition("=")
    token = token.strip()
    if not sep or not token:
        raise TokenError(f"{where}: expected TOKEN=user:project:roles")
    parts = who.strip().split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise TokenError(f"{where}: expected TOKEN=user:project:roles after the token")
    listed = parts[2].split(",") if len(parts) == 3 else []
    roles = tuple(role.strip() for role in listed if role.strip())
    user, project = parts[0].strip(), parts[1].strip()
    # They end up in every request context; refuse here what the context would
    # refuse on the first request.
    for name, value in (("user", user), ("project", project), *(("role", r) for r in roles)):
        if len(value) > MAX_ID_LENGTH or not value.isprintable():
            raise TokenError(
                f"{where}: the {name} must be printable, at most {MAX_ID_LENGTH} characters"
            )
    return token, Credentials(user, project, roles)


def parse_tokens(setting: str) -> dict[str, Credentials]:
    """``"TOKEN=user:project:role,role;..."`` or ``"@PATH"`` (one entry a line, ``#`` comments).

    Returns token digest -> credentials. :class:`TokenError` names the entry
    (by position) that cannot be read.
    """
    setting = setting.strip()
    entries: list[tuple[str, str]]
    if setting.startswith("@"):
        path = Path(setting[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokenError(f"api_tokens: cannot read {path}: {error}") from None
        entries = [
            (line.strip(), f"api_tokens file {path}, line {number}")
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    else:
        entries = [
            (entry.strip(), f"api_tokens entry {number}")
            for number, entry in enumerate(setting.split(";"), 1)
            if entry.strip()
        ]
    table: dict[str, Credentials] = {}
    for entry, where in entries:
        token, credentials = _parse_entry(entry, where)
        digest = token_digest(token)
        if digest in table:
            raise TokenError(f"{where}: the same token is given twice")
        table[digest] = credentials
    return table


class TokenTable:
    """Looks tokens up by digest."""

    def __init__(self, table: Mapping[str, Credentials]) -> None:
        self._table = dict(table)

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, token: str) -> tuple[str, Credentials] | None:
        digest = token_digest(token)
        credentials = self._table.get(digest)
        return None if credentials is None else (digest, credentials)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per key (a valid token's digest, so the table stays as small as the
    token list): ``per_minute`` requests a minute, bursts up to ``per_minute``.

    ``per_minute`` 0 means unlimited. ``acquire`` answers 0 when the request may
    go on, else the seconds until it would be allowed (what Retry-After says).
    """

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, key: str) -> float:
        if self.per_minute <= 0:
            return 0.0
        capacity = float(self.per_minute)
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


def retry_after(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up: never earlier than the bucket allows."""
    return str(max(1, math.ceil(seconds)))
