"""TLS to the database server: the drivers' own URL options, checked and completed.

PostgreSQL (psycopg) takes libpq's options (``sslmode``, ``sslrootcert``,
``sslcert``, ``sslkey``...), passed through as they are; given a certificate
file and no ``sslmode``, podium asks for ``verify-full``. MariaDB and MySQL
(PyMySQL) take ``ssl_ca``, ``ssl_capath``, ``ssl_cert``, ``ssl_key``,
``ssl_key_password``, ``ssl_cipher`` and ``ssl_check_hostname``, from which
podium builds the ``ssl.SSLContext``: with any of them the server's
certificate is verified (against ``ssl_ca``/``ssl_capath``, else the system's
authorities), its host name too unless ``ssl_check_hostname=false``, and a
server without TLS is refused.

Options are checked when the URL is read (names, values) and when it is
checked or opened (the files). No message names a file: the URL says which,
and a key's path is not shown.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.engine import URL

from podium._urls import is_secret_option
from podium.exceptions import InvalidDatabaseURL

#: libpq's TLS options (PostgreSQL 15 to 17); those that name a file.
POSTGRES_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "sslcompression",
        "sslcertmode",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)
POSTGRES_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
POSTGRES_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

MYSQL_OPTIONS = (
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_key",
    "ssl_key_password",
    "ssl_cipher",
    "ssl_check_hostname",
)
MYSQL_FILES = ("ssl_ca", "ssl_cert", "ssl_key")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

#: The other driver's name of an option, for a URL that uses it on the wrong database.
_COUNTERPARTS = {
    "ssl_ca": "sslrootcert",
    "ssl_cert": "sslcert",
    "ssl_key": "sslkey",
    "ssl_key_password": "sslpassword",
}
_COUNTERPARTS.update({pg: my for my, pg in list(_COUNTERPARTS.items())})


def _tls_options(parsed: URL) -> dict[str, str]:
    options = {}
    for name, value in parsed.query.items():
        if name.lower().startswith("ssl"):
            if not isinstance(value, str):
                raise InvalidDatabaseURL(f"Invalid database URL: {name}= is given more than once")
            options[name] = value
    return options


def _unknown(name: str, known: Collection[str], backend: str) -> InvalidDatabaseURL:
    counterpart = _COUNTERPARTS.get(name)
    hint = f"; did you mean {counterpart}=?" if counterpart in known else ""
    return InvalidDatabaseURL(
        f"Invalid database URL: {name}= is not a TLS option of {backend}{hint} "
        f"(those are: {', '.join(sorted(known))})"
    )


def complete_tls(parsed: URL) -> URL:
    """``parsed`` with its TLS options checked (names and values, no file opened)
    and completed: a PostgreSQL URL that names a certificate file and no
    ``sslmode`` gets ``sslmode=verify-full``."""
    options = _tls_options(parsed)
    backend = parsed.get_backend_name()
    if not options:
        return parsed
    if backend == "sqlite":
        raise InvalidDatabaseURL("Invalid database URL: SQLite is a file, it takes no TLS options")
    if backend == "postgresql":
        for name in options:
            if name not in POSTGRES_OPTIONS:
                raise _unknown(name, POSTGRES_OPTIONS, "PostgreSQL")
        mode = options.get("sslmode")
        if mode is not None and mode not in POSTGRES_MODES:
            raise InvalidDatabaseURL(
                f"Invalid database URL: sslmode={mode} is none of {', '.join(POSTGRES_MODES)}"
            )
        if mode is None and any(name in options for name in POSTGRES_FILES):
            parsed = parsed.update_query_dict({"sslmode": "verify-full"})
        return parsed
    for name in options:
        if name not in MYSQL_OPTIONS:
            raise _unknown(name, MYSQL_OPTIONS, "MariaDB/MySQL")
    _check_hostname(options)
    if "ssl_key" in options and "ssl_cert" not in options:
        raise InvalidDatabaseURL(
            "Invalid database URL: ssl_key= needs ssl_cert=, the certificate it goes with"
        )
    return parsed


def _check_hostname(options: Mapping[str, str]) -> bool:
    value = options.get("ssl_check_hostname", "true")
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise InvalidDatabaseURL(
            f"Invalid database URL: ssl_check_hostname={value} is neither true nor false"
        ) from None


def check_tls_files(parsed: URL) -> None:
    """Every file a TLS option of ``parsed`` names can be read."""
    options = _tls_options(parsed)
    for name in (*POSTGRES_FILES, *MYSQL_FILES):
        path = options.get(name)
        # sslrootcert=system: libpq's word for the system's authorities.
        if path is None or (name == "sslrootcert" and path == "system"):
            continue
        try:  # as the driver will: no ~ expanded
            with open(path, "rb"):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise InvalidDatabaseURL(
                f"Invalid database URL: the file {name}= names cannot be read ({reason})"
            ) from None
    if "ssl_capath" in options and not os.path.isdir(options["ssl_capath"]):
        raise InvalidDatabaseURL("Invalid database URL: ssl_capath= names no directory")


def tls_connect_args(parsed: URL) -> tuple[URL, dict[str, Any]]:
    """The URL to give SQLAlchemy and the driver's TLS arguments besides it.

    PostgreSQL's options stay in the URL, libpq reads them. MariaDB's leave
    it for an ``ssl.SSLContext`` built here: SQLAlchemy's reading of them
    would leave the server unverified whenever ``ssl_ca`` is missing.
    """
    check_tls_files(parsed)
    options = _tls_options(parsed)
    if parsed.get_backend_name() not in ("mysql", "mariadb") or not options:
        return parsed, {}
    context = _mysql_context(options)
    return parsed.difference_update_query(options), {"ssl": context}


def _mysql_context(options: Mapping[str, str]) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=options.get("ssl_ca"), capath=options.get("ssl_capath")
        )
    except (OSError, ssl.SSLError) as error:
        raise _unusable("ssl_ca=/ssl_capath= hold no certificate authority", error) from None
    context.check_hostname = _check_hostname(options)
    if "ssl_cert" in options:
        try:
            context.load_cert_chain(
                options["ssl_cert"], options.get("ssl_key"), options.get("ssl_key_password")
            )
        except (OSError, ssl.SSLError) as error:
            raise _unusable("ssl_cert=/ssl_key= hold no certificate and its key", error) from None
    if "ssl_cipher" in options:
        try:
            context.set_ciphers(options["ssl_cipher"])
        except ssl.SSLError as error:
            raise _unusable("ssl_cipher= names no cipher", error) from None
    return context


def _unusable(what: str, error: Exception) -> InvalidDatabaseURL:
    # An OSError's text names the file; only its reason is shown.
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None)
    if not reason and error.args and isinstance(error.args[0], str):
        reason = error.args[0]
    return InvalidDatabaseURL(f"Invalid database URL: {what} ({reason or type(error).__name__})")


def hide_secrets(text: str, url: URL | None) -> str:
    """``text`` (a driver's message) without the values of ``url``'s secret options."""
    if url is None:
        return text
    for name, value in url.query.items():
        if is_secret_option(name) and isinstance(value, str) and value:
            text = text.replace(value, "***")
    return text
