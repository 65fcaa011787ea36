"""What the commands print: rich tables for people, stable JSON for scripts.

JSON goes to stdout alone (sorted keys, two-space indent), so
``podium server list --json | jq`` always parses. Tables print every value as
plain text (never as rich markup: a server may be named ``[red]x``), and off a
terminal they are as wide as their widest row, so a pipe to ``grep`` sees whole
ids rather than ids folded at 80 columns.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "plain", "print_fields", "print_json", "print_table"]

#: What an absent value shows as in a table.
NONE = "-"
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]00:00)$")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def console(*, stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr), found at call time (tests swap them)."""
    from rich.console import Console

    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False)


def plain(value: Any) -> str:
    """A cell's text: ``-`` for nothing, times to the second, and never a control character."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    stamp = _TIMESTAMP.match(text)
    if stamp is not None:
        # The API's ISO 8601 in UTC; the microseconds are noise in a table.
        text = f"{stamp[1]} {stamp[2]} UTC"
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    keep_whole: Iterable[str] = ("ID",),
    empty: str | None = None,
) -> None:
    """A table with a header; the ``keep_whole`` columns never wrap (ids stay greppable)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    if not rows and empty is not None:
        click.echo(empty)
        return
    whole = set(keep_whole)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=name in whole, overflow="fold")
    for row in rows:
        table.add_row(*(Text(plain(value)) for value in row))
    _print(table)


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """One record as a two-column table, field and value."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("Field", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for name, value in fields:
        table.add_row(Text(name), Text(plain(value)))
    _print(table)


def _print(renderable: Any) -> None:
    out = console()
    if not out.is_terminal:
        # No terminal width to fit: as wide as the content, so no row wraps.
        wide = out.options.update_width(1_000_000)
        out.width = max(80, out.measure(renderable, options=wide).maximum)
    out.print(renderable)
