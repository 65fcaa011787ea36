"""``podium flavor``, and for admins ``podium service`` and ``podium hypervisor``.

``hypervisor`` lists the compute nodes (``GET /os-hypervisors``, as
``openstack hypervisor list``): ``podium compute`` is already the command that
runs a compute host.
"""

from __future__ import annotations

from typing import Any

import click

from podium.cloud.client.errors import ClientError
from podium.cloud.client.http import NotFoundError
from podium.cloud.client.options import api_options, connect, json_option, member

# -- flavor --------------------------------------------------------------------


@click.group()
def flavor() -> None:
    """The sizes a server can have (the API's /flavors)."""


@flavor.command("list")
@json_option
@api_options
def flavor_list(as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the flavors (admins see the private ones too)."""
    from podium.cloud.client.output import print_json, print_table

    with connect(api_url, token) as api:
        flavors = member(api.get("/flavors"), "flavors", list, api)
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
@json_option
@api_options
def service_list(binary: str | None, as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the services: enabled or disabled, up or down."""
    from podium.cloud.client.output import print_json, print_table

    with connect(api_url, token) as api:
        services = member(
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

    with connect(api_url, token) as api:
        try:
            answer = api.put(f"/os-services/{service_id}", body)
        except NotFoundError:
            raise ClientError(f"no service {service_id} (see `podium service list`)") from None
        updated = member(answer, "service", dict, api)
    if as_json:
        print_json(updated)
    else:
        print_table(_SERVICE_COLUMNS, [_service_row(updated)])


@service.command("enable")
@click.argument("service_id", metavar="ID", type=click.IntRange(min=1))
@json_option
@api_options
def service_enable(service_id: int, as_json: bool, api_url: str | None, token: str | None) -> None:
    """Let the scheduler place new servers on this service's host again."""
    _update_service(service_id, {"status": "enabled"}, as_json, api_url, token)


@service.command("disable")
@click.argument("service_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", help="why, shown by `podium service list`")
@json_option
@api_options
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
@json_option
@api_options
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
@json_option
@api_options
def hypervisor_list(as_json: bool, api_url: str | None, token: str | None) -> None:
    """List the compute nodes: their state and their vCPUs, memory and disk in use."""
    from podium.cloud.client.output import print_json, print_table

    with connect(api_url, token) as api:
        nodes = member(api.get("/os-hypervisors"), "hypervisors", list, api)
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
