"""What every client command shares: its options, and the API client they make."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from podium.cloud.client.errors import ClientError
from podium.cloud.client.http import ApiClient
from podium.cloud.client.settings import API_URL_ENV, TOKEN_ENV

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds ``--wait`` waits at most without ``--timeout``.
DEFAULT_WAIT = 300.0


def api_options(function: F) -> F:
    function = click.option(
        "--token",
        envvar=TOKEN_ENV,
        metavar="TOKEN",
        help=f"API token [{TOKEN_ENV}; default: token in [client] of the configuration file]",
    )(function)
    function = click.option(
        "--api-url",
        envvar=API_URL_ENV,
        metavar="URL",
        help=f"http(s)://HOST:PORT of the API [{API_URL_ENV}; default: api_url in [client], "
        "else the local all-in-one's]",
    )(function)
    return function


def json_option(function: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="print JSON (for scripts) instead of a table"
    )(function)


def wait_options(function: F) -> F:
    function = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_WAIT,
        show_default=True,
        metavar="SECONDS",
        help="with --wait: give up (exit 1) after this long",
    )(function)
    function = click.option(
        "--wait", is_flag=True, help="show the server's progress until it settles"
    )(function)
    return function


def connect(api_url: str | None, token: str | None) -> ApiClient:
    """An ApiClient from the flags, the environment and the configuration files."""
    from click.core import ParameterSource

    from podium.cli import cli_options
    from podium.cloud.client.settings import resolve_settings
    from podium.cloud.datadir import CLIENT_CONFIG_NAME, default_data_dir
    from podium.config import config_file

    context = click.get_current_context()

    def sourced(name: str, value: str | None, flag: str, env: str) -> tuple[str, str] | None:
        if value is None:
            return None
        from_env = context.get_parameter_source(name) == ParameterSource.ENVIRONMENT
        return value, env if from_env else flag

    settings = resolve_settings(
        config_file=config_file(cli_options().config),
        api_url=sourced("api_url", api_url, "--api-url", API_URL_ENV),
        token=sourced("token", token, "--token", TOKEN_ENV),
        local_client_file=default_data_dir() / CLIENT_CONFIG_NAME,
    )
    return ApiClient(settings)


def member(body: Any, key: str, kind: type[Any], api: ApiClient) -> Any:
    """``body[key]``, which must be a ``kind`` (a list holding only objects, for lists)."""
    value: Any = body.get(key) if isinstance(body, dict) else None
    ok = isinstance(value, kind) and (
        kind is not list or all(isinstance(item, dict) for item in value)
    )
    if not ok:
        raise ClientError(f"the API at {api.where} answered without {key!r}: is it podium's?")
    return value
