"""``podium server|flavor|service|hypervisor``: the cloud's client commands.

``hypervisor`` lists the compute nodes (``GET /os-hypervisors``, as
``openstack hypervisor list``): ``podium compute`` is already the command that
runs a compute host.

Imported by ``podium <group> --help``: click and light podium modules only at
the top; httpx and rich are imported by the functions that use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from podium.cloud.client.errors import ClientError
from podium.cloud.client.http import ApiClient, NotFoundError
from podium.cloud.client.settings import API_URL_ENV, TOKEN_ENV

__all__ = ["flavor", "hypervisor", "server", "service"]

F = TypeVar("F", bound=Callable[..., Any])

#: The flavor ``server create`` uses without ``--flavor``.
DEFAULT_FLAVOR = "m1.tiny"
#: Seconds ``--wait`` waits at most without ``--timeout``.
DEFAULT_WAIT = 300.0
#: Servers one list request asks for (the API's largest page).
_PAGE = 1000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_STATUSES = ("BUILD", "ACTIVE", "PAUSED", "SHUTOFF", "REBOOT", "ERROR", "DELETED")


# -- options shared by every command -------------------------------------------


def _api_options(function: F) -> F:
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


def _json_option(function: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="print JSON (for scripts) instead of a table"
    )(function)


def _wait_options(function: F) -> F:
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


def _connect(api_url: str | None, token: str | None) -> ApiClient:
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


# -- reading the API's answers -------------------------------------------------


def _member(body: Any, key: str, kind: type[Any], api: ApiClient) -> Any:
    """``body[key]``, which must be a ``kind`` (a list holding only objects, for lists)."""
    value: Any = body.get(key) if isinstance(body, dict) else None
    ok = isinstance(value, kind) and (
        kind is not list or all(isinstance(item, dict) for item in value)
    )
    if not ok:
        raise ClientError(f"the API at {api.where} answered without {key!r}: is it podium's?")
    return value


def _list_servers(api: ApiClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every server the query finds, page after page."""
    found: list[dict[str, Any]] = []
    markers: set[str] = set()
    marker: str | None = None
    while True:
        page_params = {**params, "limit": _PAGE, **({"marker": marker} if marker else {})}
        page = _member(api.get("/servers", page_params), "servers", list, api)
        found.extend(page)
        marker = page[-1].get("id") if len(page) >= _PAGE else None
        # A page that ends where an earlier one did would page for ever.
        if not isinstance(marker, str) or marker in markers:
            return found
        markers.add(marker)


def _find_server(api: ApiClient, ref: str) -> dict[str, Any]:
    """The server whose id (tried first) or name is ``ref``."""
    if _UUID.match(ref):
        try:
            return dict(_member(api.get(f"/servers/{ref}"), "server", dict, api))
        except NotFoundError:
            pass  # a name may look like a uuid too
    if not ref.strip() or len(ref) > 255 or not ref.isprintable():
        raise ClientError(f"no server {ref!r}: no such id, and no name can be that")
    servers = _list_servers(api, {"name": ref})
    if not servers:
        raise ClientError(f"no server {ref!r}: none has that id or name")
    if len(servers) > 1:
        ids = ", ".join(str(server.get("id")) for server in servers[:5])
        raise ClientError(
            f"{len(servers)} servers are named {ref!r} ({ids}{', ...' if len(servers) > 5 else ''})"
            ": give an id"
        )
    return servers[0]


def _label(server: dict[str, Any]) -> str:
    name = server.get("name")
    return f"{name} ({server.get('id')})" if name else str(server.get("id"))


def _find_flavor(api: ApiClient, ref: str) -> dict[str, Any]:
    flavors = _member(api.get("/flavors"), "flavors", list, api)
    for key in ("id", "name"):
        matches = [flavor for flavor in flavors if flavor.get(key) == ref]
        if len(matches) == 1:
            return dict(matches[0])
    known = ", ".join(f"{f.get('name')} ({f.get('id')})" for f in flavors) or "none"
    raise ClientError(f"no flavor {ref!r}: the flavors are {known}")


# -- server --------------------------------------------------------------------


def _server_fields(server: dict[str, Any]) -> list[tuple[str, Any]]:
    flavor = server.get("flavor")
    fault = server.get("fault")
    metadata = server.get("metadata")
    fields: list[tuple[str, Any]] = [
        ("id", server.get("id")),
        ("name", server.get("name")),
        ("status", server.get("status")),
        ("task_state", server.get("task_state")),
        ("vm_state", server.get("vm_state")),
        ("power_state", server.get("power_state")),
        (
            "flavor",
            f"{flavor.get('name')} (id {flavor.get('id')}, {flavor.get('vcpus')} vCPU, "
            f"{flavor.get('ram')} MiB, {flavor.get('disk')} GiB)"
            if isinstance(flavor, dict)
            else None,
        ),
        ("image", server.get("image")),
        ("host", server.get("host")),
        ("project", server.get("tenant_id")),
        ("user", server.get("user_id")),
        (
            "metadata",
            ", ".join(f"{k}={v}" for k, v in sorted(metadata.items()))
            if isinstance(metadata, dict)
            else None,
        ),
        ("created", server.get("created")),
        ("updated", server.get("updated")),
        ("launched_at", server.get("launched_at")),
    ]
    if isinstance(fault, dict):
        fields.append(("fault", f"{fault.get('code')}: {fault.get('message')}"))
    return fields


def _show_server(server: dict[str, Any], as_json: bool) -> None:
    from podium.cloud.client.output import print_fields, print_json

    if as_json:
        print_json(server)
    else:
        print_fields(_server_fields(server))


@click.group()
def server() -> None:
    """Create, list, show, act on and delete servers (the API's /servers)."""


@server.command("create")
@click.argument("name")
@click.option(
    "--flavor",
    default=DEFAULT_FLAVOR,
    show_default=True,
    help="flavor name or id (`podium flavor list`)",
)
@click.option("--image", help="image reference recorded on the server")
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="metadata item (repeatable)",
)
@_wait_options
@_json_option
@_api_options
def server_create(
    name: str,
    flavor: str,
    image: str | None,
    properties: tuple[str, ...],
    wait: bool,
    timeout: float,
    as_json: bool,
    api_url: str | None,
    token: str | None,
) -> None:
    """Create the server NAME; the build goes on after the answer (see --wait)."""
    from podium.cloud.client.wait import Target, wait_for_server

    metadata: dict[str, str] = {}
    for item in properties:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"--property {item!r}: expected KEY=VALUE")
        metadata[key] = value
    with _connect(api_url, token) as api:
        chosen = _find_flavor(api, flavor)
        spec: dict[str, Any] = {"name": name, "flavorRef": chosen["id"]}
        if image is not None:
            spec["imageRef"] = image
        if metadata:
            spec["metadata"] = metadata
        created = _member(api.post("/servers", {"server": spec}), "server", dict, api)
        if wait:
            settled = wait_for_server(
                api,
                str(created.get("id")),
                name,
                Target("ACTIVE", "its build"),
                timeout=timeout,
                stderr=as_json,
            )
            created = settled or created
    _show_server(created, as_json)


@server.command("list")
@click.option("--all-projects", is_flag=True, help="every project's servers (admins)")
@click.option("--status", type=click.Choice(_STATUSES, case_sensitive=False), help="only these")
@click.option("--name", help="only the servers with exactly this name")
@_json_option
@_api_options
def server_list(
    all_projects: bool,
    status: str | None,
    name: str | None,
    as_json: bool,
    api_url: str | None,
    token: str | None,
) -> None:
    """List servers (this project's; --all-projects for every project's)."""
    from podium.cloud.client.output import print_json, print_table

    params: dict[str, Any] = {}
    if all_projects:
        params["all_tenants"] = "true"
    if status is not None:
        params["status"] = status.upper()
    if name is not None:
        params["name"] = name
    with _connect(api_url, token) as api:
        servers = _list_servers(api, params)
    if as_json:
        print_json(servers)
        return
    # Which host runs a server is shown to admins only; the column with it.
    hosts = any(server.get("host") for server in servers)
    columns = ["ID", "Name", "Status", "Task State", "Flavor", *(["Host"] if hosts else [])]
    print_table(
        columns,
        (
            [
                server.get("id"),
                server.get("name"),
                server.get("status"),
                server.get("task_state"),
                (server.get("flavor") or {}).get("name"),
                *([server.get("host")] if hosts else []),
            ]
            for server in servers
        ),
        empty="no servers",
    )


@server.command("show")
@click.argument("server_ref", metavar="ID|NAME")
@_json_option
@_api_options
def server_show(server_ref: str, as_json: bool, api_url: str | None, token: str | None) -> None:
    """Show one server, its fault too when it is in ERROR."""
    with _connect(api_url, token) as api:
        found = _find_server(api, server_ref)
    _show_server(found, as_json)


@server.command("delete")
@click.argument("server_ref", metavar="ID|NAME")
@_wait_options
@_api_options
def server_delete(
    server_ref: str, wait: bool, timeout: float, api_url: str | None, token: str | None
) -> None:
    """Delete a server; its host finishes the delete after the answer (see --wait)."""
    from podium.cloud.client.wait import DELETED, Target, wait_for_server

    with _connect(api_url, token) as api:
        found = _find_server(api, server_ref)
        server_id = str(found.get("id"))
        api.delete(f"/servers/{server_id}")
        if wait:
            wait_for_server(
                api,
                server_id,
                str(found.get("name") or server_id),
                Target(DELETED, "its delete"),
                timeout=timeout,
            )
        else:
            click.echo(f"deleting server {_label(found)}")


def _action_command(
    name: str, body: Callable[[bool], dict[str, Any]], target: str, doc: str
) -> click.Command:
    @_wait_options
    @_api_options
    def command(
        server_ref: str,
        wait: bool,
        timeout: float,
        api_url: str | None,
        token: str | None,
        hard: bool = False,
    ) -> None:
        from podium.cloud.client.wait import Target, wait_for_server

        with _connect(api_url, token) as api:
            found = _find_server(api, server_ref)
            server_id = str(found.get("id"))
            api.post(f"/servers/{server_id}/action", body(hard))
            if wait:
                wait_for_server(
                    api,
                    server_id,
                    str(found.get("name") or server_id),
                    Target(target, f"its {name}"),
                    timeout=timeout,
                )
            else:
                click.echo(f"{name}: asked for server {_label(found)}")

    command.__doc__ = doc
    command = click.argument("server_ref", metavar="ID|NAME")(command)
    if name == "reboot":
        command = click.option("--hard", is_flag=True, help="power-cycle instead of a restart")(
            command
        )
    return server.command(name)(command)


_action_command("pause", lambda hard: {"pause": None}, "PAUSED", "Pause a server (ACTIVE).")
_action_command("unpause", lambda hard: {"unpause": None}, "ACTIVE", "Unpause a PAUSED server.")
_action_command("stop", lambda hard: {"os-stop": None}, "SHUTOFF", "Power a server off.")
_action_command("start", lambda hard: {"os-start": None}, "ACTIVE", "Power a SHUTOFF server on.")
_action_command(
    "reboot",
    lambda hard: {"reboot": {"type": "HARD" if hard else "SOFT"}},
    "ACTIVE",
    "Reboot a server (soft: an ACTIVE one; --hard: also SHUTOFF or ERROR).",
)


# -- flavor --------------------------------------------------------------------


@click.group()
def flavor() -> None:
    """The sizes a server can have (the API's /flavors)."""


@flavor.command("list")
@_json_option
@_api_options
def flavor_list(as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the flavors (admins see the private ones too)."""
    from podium.cloud.client.output import print_json, print_table

    with _connect(api_url, token) as api:
        flavors = _member(api.get("/flavors"), "flavors", list, api)
    if as_json:
        print_json(flavors)
        return
    print_table(
        ["ID", "Name", "vCPUs", "RAM (MiB)", "Disk (GiB)", "Public"],
        (
            [
                f.get("id"),
                f.get("name"),
                f.get("vcpus"),
                f.get("ram"),
                f.get("disk"),
                f.get("is_public"),
            ]
            for f in flavors
        ),
        empty="no flavors",
    )


# -- service -------------------------------------------------------------------


@click.group()
def service() -> None:
    """The cloud's services and whether they are up (admins; the API's /os-services)."""


_SERVICE_COLUMNS = [
    "ID",
    "Binary",
    "Host",
    "Status",
    "State",
    "Disabled Reason",
    "Version",
    "Last Seen Up",
]


def _service_row(item: dict[str, Any]) -> list[Any]:
    state = item.get("state")
    return [
        item.get("id"),
        item.get("binary"),
        item.get("host"),
        item.get("status"),
        f"{state} (forced)" if item.get("forced_down") else state,
        item.get("disabled_reason"),
        item.get("version"),
        item.get("last_seen_up"),
    ]


@service.command("list")
@click.option("--binary", help="only this kind of service (podium-compute, ...)")
@_json_option
@_api_options
def service_list(binary: str | None, as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the services: enabled or disabled, up or down."""
    from podium.cloud.client.output import print_json, print_table

    with _connect(api_url, token) as api:
        services = _member(
            api.get("/os-services", {"binary": binary} if binary else None), "services", list, api
        )
    if as_json:
        print_json(services)
        return
    print_table(_SERVICE_COLUMNS, map(_service_row, services), empty="no services")


def _update_service(
    service_id: int, body: dict[str, Any], as_json: bool, api_url: str | None, token: str | None
) -> None:
    from podium.cloud.client.output import print_json, print_table

    with _connect(api_url, token) as api:
        try:
            answer = api.put(f"/os-services/{service_id}", body)
        except NotFoundError:
            raise ClientError(f"no service {service_id} (see `podium service list`)") from None
        updated = _member(answer, "service", dict, api)
    if as_json:
        print_json(updated)
    else:
        print_table(_SERVICE_COLUMNS, [_service_row(updated)])


@service.command("enable")
@click.argument("service_id", metavar="ID", type=click.IntRange(min=1))
@_json_option
@_api_options
def service_enable(service_id: int, as_json: bool, api_url: str | None, token: str | None) -> None:
    """Let the scheduler place new servers on this service's host again."""
    _update_service(service_id, {"status": "enabled"}, as_json, api_url, token)


@service.command("disable")
@click.argument("service_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", help="why, shown by `podium service list`")
@_json_option
@_api_options
def service_disable(
    service_id: int, reason: str | None, as_json: bool, api_url: str | None, token: str | None
) -> None:
    """Keep new servers off this service's host; the servers there keep running."""
    body: dict[str, Any] = {"status": "disabled"}
    if reason is not None:
        body["disabled_reason"] = reason
    _update_service(service_id, body, as_json, api_url, token)


@service.command("force-down")
@click.argument("service_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--clear", is_flag=True, help="let its heartbeats say again whether it is up")
@_json_option
@_api_options
def service_force_down(
    service_id: int, clear: bool, as_json: bool, api_url: str | None, token: str | None
) -> None:
    """Mark a service down now, whatever its heartbeats say.

    For a service that is gone (its host retired, or replaced during an
    upgrade): the scheduler skips its host at once, and `upgrade_levels =
    auto` stops waiting for it to be upgraded.
    """
    _update_service(service_id, {"forced_down": not clear}, as_json, api_url, token)


# -- hypervisor ----------------------------------------------------------------


@click.group()
def hypervisor() -> None:
    """The compute nodes and what is used on them (admins; the API's /os-hypervisors)."""


@hypervisor.command("list")
@_json_option
@_api_options
def hypervisor_list(as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the compute nodes: their state and their vCPUs, memory and disk in use."""
    from podium.cloud.client.output import print_json, print_table

    with _connect(api_url, token) as api:
        nodes = _member(api.get("/os-hypervisors"), "hypervisors", list, api)
    if as_json:
        print_json(nodes)
        return

    def used(node: dict[str, Any], key: str, total: str) -> str:
        return f"{node.get(key)}/{node.get(total)}"

    print_table(
        ["ID", "Hostname", "Host", "State", "Status", "vCPUs", "RAM (MiB)", "Disk (GiB)"],
        (
            [
                node.get("id"),
                node.get("hypervisor_hostname"),
                node.get("host"),
                node.get("state"),
                node.get("status"),
                used(node, "vcpus_used", "vcpus"),
                used(node, "memory_mb_used", "memory_mb"),
                used(node, "local_gb_used", "local_gb"),
            ]
            for node in nodes
        ),
        empty="no compute nodes",
    )
