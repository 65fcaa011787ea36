"""Where a message goes, and which API version it speaks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from podium._versions import parse_version
from podium.exceptions import InvalidTarget

__all__ = ["Target"]


def _check_version(version: str | None) -> None:
    if version is not None and parse_version(version) is None:
        raise InvalidTarget(f"version must look like 'major.minor', not {version!r}")


@dataclass(frozen=True, slots=True)
class Target:
    """A destination (client side) or what a server listens for (server side).

    ``topic`` names a service kind (one shared queue, competing consumers),
    ``server`` one host of it, ``fanout`` every host of it. ``namespace`` and
    ``version`` select endpoints on the server.
    """

    topic: str | None = None
    server: str | None = None
    namespace: str | None = None
    version: str | None = None
    fanout: bool = False
    exchange: str | None = None

    def __post_init__(self) -> None:
        _check_version(self.version)
        for name in ("topic", "server", "namespace", "exchange"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or value == ""):
                raise InvalidTarget(f"Target.{name} must be a non-empty string, not {value!r}")

    def __call__(self, **kwargs: Any) -> Target:
        """A copy with some attributes replaced (oslo.messaging's idiom)."""
        return replace(self, **kwargs)

    def describe(self) -> str:
        where = self.topic or "?"
        if self.server:
            where += f".{self.server}"
        if self.fanout:
            where += " (fanout)"
        return where
