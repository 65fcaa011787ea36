"""Where the API is and which token to show it: flags, environment, configuration file.

In order, each later source winning for the keys it sets:

1. the ``[client]`` table of the configuration file (``--config`` / ``PODIUM_CONFIG``);
2. ``PODIUM_API_URL`` / ``PODIUM_TOKEN``, then ``--api-url`` / ``--token``.

When none of them names an API, the client file of a local all-in-one
(``<data dir>/client.toml``) is used if it exists. It is never mixed with an
API named elsewhere: its admin token would be sent to another server.

Checked by hand, not with pydantic: a client command must start fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from podium.cloud.client.errors import ClientError
from podium.config import ConfigError, read_config_file

__all__ = [
    "API_URL_ENV",
    "DEFAULT_TIMEOUT",
    "TOKEN_ENV",
    "ClientSettings",
    "check_api_url",
    "resolve_settings",
]

API_URL_ENV = "PODIUM_API_URL"
TOKEN_ENV = "PODIUM_TOKEN"
#: Seconds one HTTP request may take (``timeout`` in ``[client]``).
DEFAULT_TIMEOUT = 30.0

_KEYS = ("api_url", "timeout", "token")


@dataclass(frozen=True)
class ClientSettings:
    api_url: str
    token: str = ""
    timeout: float = DEFAULT_TIMEOUT
    #: Where the API URL came from, for messages ("PODIUM_API_URL", "/path/client.toml").
    source: str = ""
    #: Where the token came from.
    token_source: str = ""


def check_api_url(value: object, where: str) -> str:
    """``value`` if an ``http(s)://host[:port][/prefix]`` URL; else ClientError naming ``where``."""
    if not isinstance(value, str):
        raise ClientError(f"{where}: api_url must be a string, not {_type_name(value)}")
    text = value.strip()
    shape = "http://HOST[:PORT] or https://HOST[:PORT]"
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError for a port out of range or not a number
    except ValueError:
        raise ClientError(f"{where}: the API URL {text!r} is not a valid URL ({shape})") from None
    if parts.scheme not in ("http", "https"):
        hint = (
            f"it has no scheme ({shape})"
            if not parts.scheme or "://" not in text
            else f"the scheme must be http or https, not {parts.scheme!r}"
        )
        raise ClientError(f"{where}: the API URL {text!r} is not usable: {hint}")
    if not parts.hostname:
        raise ClientError(f"{where}: the API URL {text!r} names no host ({shape})")
    if port == 0:
        raise ClientError(f"{where}: the API URL {text!r} has port 0")
    if parts.query or parts.fragment or parts.username is not None:
        raise ClientError(
            f"{where}: the API URL {text!r} must have no user, query or fragment ({shape})"
        )
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        raise ClientError(f"{where}: the API URL holds blanks or control characters")
    return text.rstrip("/")


def _check_token(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ClientError(f"{where}: token must be a string, not {_type_name(value)}")
    token = value.strip()
    # It travels in a header: printable ASCII without blanks, or the request
    # fails deep inside the HTTP library with a message about encodings.
    if not token or not all(33 <= ord(ch) <= 126 for ch in token):
        raise ClientError(f"{where}: the token must be printable ASCII with no blanks")
    return token


def _check_timeout(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClientError(f"{where}: timeout must be a number of seconds, not {_type_name(value)}")
    if not math.isfinite(value) or value <= 0:
        raise ClientError(f"{where}: timeout must be a positive number of seconds, not {value}")
    return float(value)


def _type_name(value: object) -> str:
    # TOML's names for the types a value of the file may have.
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _client_table(path: Path) -> dict[str, Any]:
    """The ``[client]`` table of ``path`` (empty without one), its keys checked."""
    try:
        document = read_config_file(path)
    except ConfigError as error:
        raise ClientError(str(error)) from None
    table = document.get("client", {})
    if not isinstance(table, dict):
        raise ClientError(f"configuration file {path}: client must be a table ([client])")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ClientError(
            f"configuration file {path}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(key) for key in unknown)} in [client] "
            f"(known: {', '.join(_KEYS)})"
        )
    return table


def _from_table(table: Mapping[str, Any], path: Path) -> dict[str, tuple[Any, str]]:
    where = f"configuration file {path}, [client]"
    found: dict[str, tuple[Any, str]] = {}
    if "api_url" in table:
        found["api_url"] = (check_api_url(table["api_url"], where), str(path))
    if "token" in table:
        found["token"] = (_check_token(table["token"], where), str(path))
    if "timeout" in table:
        found["timeout"] = (_check_timeout(table["timeout"], where), str(path))
    return found


def resolve_settings(
    *,
    config_file: Path | None,
    api_url: tuple[str, str] | None,
    token: tuple[str, str] | None,
    local_client_file: Path | None,
) -> ClientSettings:
    """The settings from every source; ``api_url``/``token`` are (value, where it came from).

    ``local_client_file`` is the running all-in-one's client file, used only
    when nothing else names an API (None: do not look for one).
    """
    values: dict[str, tuple[Any, str]] = {}
    if config_file is not None:
        values.update(_from_table(_client_table(config_file), config_file))
    if api_url is not None:
        values["api_url"] = (check_api_url(api_url[0], api_url[1]), api_url[1])
    if token is not None:
        values["token"] = (_check_token(token[0], token[1]), token[1])
    if "api_url" not in values:
        if local_client_file is None or not local_client_file.is_file():
            raise ClientError(
                f"no API to talk to: start `podium all-in-one` (it writes its address "
                f"for the client), or set {API_URL_ENV} and {TOKEN_ENV}"
            )
        local = _from_table(_client_table(local_client_file), local_client_file)
        if "api_url" not in local:
            raise ClientError(f"configuration file {local_client_file}: [client] has no api_url")
        values = {**local, **values}
    url, url_source = values["api_url"]
    if "token" not in values:
        raise ClientError(
            f"no token for the API at {url}: set {TOKEN_ENV}, pass --token, "
            "or set token in the [client] table of the configuration file"
        )
    timeout = values.get("timeout", (DEFAULT_TIMEOUT, ""))[0]
    token_value, token_source = values["token"]
    return ClientSettings(
        api_url=url,
        token=token_value,
        timeout=timeout,
        source=url_source,
        token_source=token_source,
    )
