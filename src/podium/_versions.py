"""Version strings, ``"major.minor"`` or ``"major.minor.revision"``, read in one place.

Object versions and RPC API versions share the grammar: dot-separated groups
of ASCII digits. Each caller turns ``None`` into its own error (an object
layer's format error, an RPC layer's malformed message or invalid target).
"""

from __future__ import annotations

__all__ = ["MAX_VERSION_LENGTH", "parse_version"]

# Longer is no version anyway, and int() of over 4,300 digits raises ValueError.
MAX_VERSION_LENGTH = 32


def parse_version(text: object, min_parts: int = 2) -> tuple[int, ...] | None:
    """``"1.10"`` -> ``(1, 10)``, ``"1.2.3"`` -> ``(1, 2, 3)``; None if ``text`` is not a version.

    At most three parts and at least ``min_parts``: an RPC message's ``"1"``
    means 1.0, as oslo.messaging reads it (``min_parts=1``); an object version
    always has a minor. ``"+1.0"``, ``" 1.0"`` and ``"1.0."`` are not versions.
    """
    if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
        return None
    parts = text.split(".")
    if not min_parts <= len(parts) <= 3:
        return None
    for part in parts:
        if not (part.isdigit() and part.isascii()):
            return None
    return tuple(map(int, parts))
