"""The client's one error type, and the one-line text every message goes through."""

from __future__ import annotations

import re

import click

__all__ = ["ClientError", "one_line"]

#: Longest message a failure prints: an API message or a fault may be long.
MAX_MESSAGE = 400


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (runs of blanks and line breaks become a space), cut to ``limit``."""
    flat = re.sub(r"\s+", " ", text).strip()
    # Control characters from a server's text must not drive the user's terminal.
    flat = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ClientError(click.ClickException):
    """An expected failure of a client command: one line on stderr, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))
