"""Database URLs: which one, read and checked before anything is opened.

No message here quotes a URL as given: what could not be read may be its
password; a URL that could be read is shown with its password masked.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import exc
from sqlalchemy.engine import URL, make_url

from podium._urls import mask_url
from podium.db._errors import first_line
from podium.db._tls import check_tls_files, complete_tls
from podium.exceptions import InvalidDatabaseURL

DATABASE_URL_ENV = "PODIUM_DATABASE_URL"

IN_MEMORY_SQLITE = (
    "An in-memory SQLite database is private to one connection; give a file: "
    "sqlite:///path/to/podium.sqlite"
)


def default_url() -> str:
    """``$PODIUM_DATABASE_URL``, else a SQLite file in the current directory."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{Path.cwd() / 'podium.sqlite'}"


def mask_password(url: URL) -> str:
    """``url`` as text with its password masked by podium's one masking function."""
    # Rendered with the password (percent-encoded, so the text reads back one
    # way only) and masked from there, rather than by SQLAlchemy's own rule.
    return mask_url(url.render_as_string(hide_password=False))


def parse_url(url: str) -> URL:
    # No message here quotes ``url``: what could not be read may be its password.
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise InvalidDatabaseURL(
            "Invalid database URL: it does not read as "
            "dialect+driver://user:password@host:port/database"
        ) from None
    except ValueError:  # make_url's only one: int() of the port
        raise InvalidDatabaseURL("Invalid database URL: its port is not a number") from None
    backend = parsed.get_backend_name()
    rest = url.partition("://")[2]
    # SQLAlchemy ends the password at its first '@', so an unencoded '@' in a
    # password moves the rest of it into the host, database or options (where
    # messages show it); a '/' in a user name hides the credentials the same
    # way. SQLite URLs carry no credentials, and their paths may hold an '@'.
    if backend != "sqlite" and "@" in rest:
        after_password = rest.partition(":")[2] if parsed.password is not None else ""
        if parsed.username is None or after_password.count("@") > 1:
            raise InvalidDatabaseURL(
                "Invalid database URL: an '@' besides the one that ends the user name and "
                "password; write an '@' in a password, database name or option as %40 "
                "(and a '/' in a user name as %2F)"
            )
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        hint = DRIVER_HINTS.get(backend)
        raise InvalidDatabaseURL(
            f"Unsupported database {backend!r} in {mask_password(parsed)!r}; "
            + (
                f"did you mean {hint}://?"
                if hint
                else "use sqlite:///PATH, postgresql+psycopg://... or mysql+pymysql://..."
            )
        )
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        # MySQL's "utf8" is 3 bytes per character; anything outside the BMP
        # (emoji in a display name) would be refused or mangled.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return complete_tls(parsed)


#: The URL scheme to use for a dialect written without podium's driver (or misspelt).
DRIVER_HINTS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def driver_error(parsed: URL, error: Exception) -> InvalidDatabaseURL:
    """A driver that is not installed (or not known), and which one to use instead."""
    hint = DRIVER_HINTS.get(parsed.drivername) if "+" not in parsed.drivername else None
    if isinstance(error, ImportError):
        reason = f"its driver is not installed ({error})"
    else:
        reason = f"no such driver ({first_line(error)})"
    advice = f"; use {hint}://..." if hint else ""
    return InvalidDatabaseURL(f"Invalid database URL {mask_password(parsed)!r}: {reason}{advice}")


def check_url(url: str) -> URL:
    """``url`` parsed, its driver importable, the files of its TLS options readable;
    InvalidDatabaseURL says why not. Connects to nothing."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidDatabaseURL(IN_MEMORY_SQLITE)
    check_tls_files(parsed)
    try:
        parsed.get_dialect().import_dbapi()
    except (exc.NoSuchModuleError, ImportError) as error:
        raise driver_error(parsed, error) from None
    return parsed
