"""The text of any value for an error message: bounded, and never raising.

A plain ``repr`` of a value nested 1,000 levels deep raises RecursionError, of
an int of 5,000 digits ValueError, and of a 10 MB string makes a 10 MB message:
each in the middle of reporting a bad value.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["short_repr", "text_of"]

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 80
_REPR.maxother = 80

# Deeper than this, str() is not even tried: its text would be useless anyway.
_STR_MAX_DEPTH = 32


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters and a few levels of nesting."""
    try:
        if isinstance(value, int) and value.bit_length() > 128:
            text = f"<int of {value.bit_length()} bits>"
        else:
            text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _children(node: Any) -> Any:
    if isinstance(node, dict):
        return node.values()
    if isinstance(node, BaseException):
        return node.args
    return node if isinstance(node, list | tuple) else ()


def _shallow(value: Any, room: int) -> bool:
    """Is ``value`` (an exception: its args) nested at most ``room`` levels?"""
    # Each container once per level (by id): a value may share or hold itself.
    level = [value]
    for _ in range(room):
        level = list({id(item): item for node in level for item in _children(node)}.values())
        if not level:
            return True
    return False


def text_of(value: Any) -> str:
    """``str(value)`` when that works; else a :func:`short_repr` (of an exception's args)."""
    if _shallow(value, _STR_MAX_DEPTH):
        try:
            return str(value)
        except Exception:  # a value whose __str__ fails must still be reported
            pass
    if isinstance(value, BaseException):
        return f"{type(value).__name__}{short_repr(value.args, 200)}"
    return short_repr(value, 200)
