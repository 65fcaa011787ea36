"""The checks of single settings: a typed value in, the value (maybe normalised) out.

Each raises ValueError with the reason a value is wrong; :func:`podium.service.config.setting`
attaches one to a setting as its ``check``.
"""

from __future__ import annotations

import difflib
import re

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"not a log level (one of {', '.join(LOG_LEVELS)})")
    return level


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def transport_url(value: str) -> str:
    """A transport URL that reads one way and names a transport podium has; "" is none."""
    if not value.strip():
        return ""
    from podium.exceptions import InvalidTransportURL
    from podium.rpc._transport import SCHEMES, TransportURL

    try:
        parsed = TransportURL.parse(value.strip())
    except InvalidTransportURL as error:
        raise ValueError(str(error)) from None
    if parsed.scheme not in SCHEMES:
        close = difflib.get_close_matches(parsed.scheme, SCHEMES, n=1)
        hint = f"did you mean {close[0]}://?" if close else "use rabbit://USER:PASS@HOST:5672/"
        raise ValueError(f"unknown transport {parsed.scheme!r} ({hint})")
    return value.strip()


_TOPIC = re.compile(r"^[A-Za-z0-9_.-]+$")
_LEVEL = re.compile(r"^(?:auto|\d+\.\d+|[a-z][a-z0-9-]*)$")


def upgrade_levels(value: dict[str, str]) -> dict[str, str]:
    """topic -> ``auto``, a version ``X.Y`` or a release name (lower case)."""
    levels = {}
    for topic, level in value.items():
        if not _TOPIC.match(topic):
            raise ValueError(f"{topic!r} is not a topic name")
        level = level.strip()
        if not _LEVEL.match(level):
            raise ValueError(
                f"{topic} = {level!r}: a level is auto, a version (1.0) or a release name"
            )
        levels[topic] = level
    return levels


def database_url(value: str | None) -> str | None:
    """A database URL SQLAlchemy reads, with its driver installed; "" is none."""
    if value is None or not value.strip():
        return None
    # The engine module is the one place that knows database URLs; it imports
    # SQLAlchemy, which only a process given a database pays for.
    from podium.db.engine import check_url
    from podium.exceptions import InvalidDatabaseURL

    try:
        check_url(value.strip())
    except InvalidDatabaseURL as error:
        raise ValueError(str(error)) from None
    return value.strip()
