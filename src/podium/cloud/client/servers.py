"""``podium server``: create, list, show, act on and delete servers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from podium.cloud.client.errors import ClientError
from podium.cloud.client.http import ApiClient, NotFoundError
from podium.cloud.client.options import api_options, connect, json_option, member, wait_options

#: The flavor ``server create`` uses without ``--flavor``.
DEFAULT_FLAVOR = "m1.tiny"
#: Servers one list request asks for (the API's largest page).
_PAGE = 1000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_STATUSES = ("BUILD", "ACTIVE", "PAUSED", "SHUTOFF", "REBOOT", "ERROR", "DELETED")


def _list_servers(api: ApiClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every server the query finds, page after page."""
    found: list[dict[str, Any]] = []
    markers: set[str] = set()
    marker: str | None = None
    while True:
        page_params = {**params, "limit": _PAGE, **({"marker": marker} if marker else {})}
        page = member(api.get("/servers", page_params), "servers", list, api)
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
            return dict(member(api.get(f"/servers/{ref}"), "server", dict, api))
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
    flavors = member(api.get("/flavors"), "flavors", list, api)
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
@wait_options
@json_option
@api_options
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
    with connect(api_url, token) as api:
        chosen = _find_flavor(api, flavor)
        spec: dict[str, Any] = {"name": name, "flavorRef": chosen["id"]}
        if image is not None:
            spec["imageRef"] = image
        if metadata:
            spec["metadata"] = metadata
        created = member(api.post("/servers", {"server": spec}), "server", dict, api)
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
@json_option
@api_options
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
    with connect(api_url, token) as api:
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
@json_option
@api_options
def server_show(server_ref: str, as_json: bool, api_url: str | None, token: str | None) -> None:
    """Show one server, its fault too when it is in ERROR."""
    with connect(api_url, token) as api:
        found = _find_server(api, server_ref)
    _show_server(found, as_json)


@server.command("delete")
@click.argument("server_ref", metavar="ID|NAME")
@wait_options
@api_options
def server_delete(
    server_ref: str, wait: bool, timeout: float, api_url: str | None, token: str | None
) -> None:
    """Delete a server; its host finishes the delete after the answer (see --wait)."""
    from podium.cloud.client.wait import DELETED, Target, wait_for_server

    with connect(api_url, token) as api:
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
    @wait_options
    @api_options
    def command(
        server_ref: str,
        wait: bool,
        timeout: float,
        api_url: str | None,
        token: str | None,
        hard: bool = False,
    ) -> None:
        from podium.cloud.client.wait import Target, wait_for_server

        with connect(api_url, token) as api:
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
