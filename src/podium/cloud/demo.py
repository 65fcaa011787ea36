"""``podium demo``: start the whole cloud in this process, drive it through its REST API, stop.

The cloud is the all-in-one (conductor, scheduler, three fake computes, the
API on a free port, the ``memory://`` bus, SQLite); the demo is an HTTP client
of it, like any user: every step below is a request, and every state change
it shows was made by a service through the bus.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import httpx


def _say(step: str, detail: str = "") -> None:
    click.echo(click.style(f"==> {step}", bold=True) + (f"  {detail}" if detail else ""))


def _wait(client: httpx.Client, ids: list[str], status: str, timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = client.get("/servers", params={"all_tenants": "true", "limit": 1000}).json()
        mine = [s for s in listed["servers"] if s["id"] in ids]
        if len(mine) == len(ids) and all(
            s["status"] in (status, "ERROR") and s["task_state"] is None for s in mine
        ):
            return mine
        if time.monotonic() > deadline:
            raise click.ClickException(f"servers did not reach {status} within {timeout:.0f} s")
        time.sleep(0.05)


@click.command()
@click.option(
    "--database-url",
    help="where the conductor keeps its rows [default: a temporary SQLite file]",
)
@click.option("--servers", default=6, show_default=True, type=click.IntRange(1, 200))
def command(database_url: str | None, servers: int) -> None:
    """Run the whole cloud in this process and walk servers through their life over REST."""
    # Here, not at the top: `podium --help` imports this module for the line above.
    import httpx

    from podium.cloud.allinone import AllInOne
    from podium.cloud.config import CloudConfig

    token = secrets.token_urlsafe(16)
    config = CloudConfig(
        api_listen="127.0.0.1:0",
        api_tokens=f"{token}=demo:demo:admin",
        report_interval=1.0,
        rpc_timeout=30.0,
    )
    with tempfile.TemporaryDirectory(prefix="podium-demo-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'podium.sqlite'}"
        with AllInOne(config, url) as cloud:
            assert cloud.api is not None
            _say(
                "cloud",
                f"conductor, scheduler, {len(cloud.computes)} computes, API at {cloud.api.url}",
            )
            with httpx.Client(
                base_url=cloud.api.url, headers={"X-Auth-Token": token}, timeout=30
            ) as client:
                _tour(client, servers)
        _say("stopped", "every service stopped; the rows stay in the database")


def _tour(client: httpx.Client, count: int) -> None:
    flavors = client.get("/flavors").json()["flavors"]
    _say("flavors", ", ".join(f"{f['name']} (id {f['id']})" for f in flavors))
    began = time.monotonic()
    ids = []
    for n in range(count):
        response = client.post("/servers", json={"server": {"name": f"vm-{n}", "flavorRef": "1"}})
        response.raise_for_status()
        ids.append(response.json()["server"]["id"])
    _say("create", f"POST /servers x{count}: 202 at once; the builds go on by cast")
    for server in sorted(_wait(client, ids, "ACTIVE"), key=lambda s: s["name"]):
        click.echo(f"    {server['name']:6} {server['status']:7} on {server['host']}")
    _say(
        "active",
        f"{count} servers built in {time.monotonic() - began:.2f} s "
        "(API -> conductor -> scheduler -> compute)",
    )
    client.post(f"/servers/{ids[0]}/action", json={"pause": None}).raise_for_status()
    client.post(f"/servers/{ids[-1]}/action", json={"os-stop": None}).raise_for_status()
    _wait(client, [ids[0]], "PAUSED")
    _wait(client, [ids[-1]], "SHUTOFF")
    _say("actions", f"{ids[0][:8]} PAUSED, {ids[-1][:8]} SHUTOFF (each a cast to its host)")
    for service in client.get("/os-services").json()["services"]:
        click.echo(f"    {service['binary']:16} {service['host']:10} {service['state']}")
    for hypervisor in client.get("/os-hypervisors").json()["hypervisors"]:
        click.echo(
            f"    {hypervisor['host']:10} vcpus {hypervisor['vcpus_used']}/{hypervisor['vcpus']}"
            f"  ram {hypervisor['memory_mb_used']}/{hypervisor['memory_mb']} MB"
        )
    for server_id in ids:
        client.delete(f"/servers/{server_id}").raise_for_status()
    deadline = time.monotonic() + 60
    while client.get("/servers").json()["servers"]:
        if time.monotonic() > deadline:
            raise click.ClickException("servers were not deleted within 60 s")
        time.sleep(0.05)
    deleted = client.get("/servers", params={"read_deleted": "only", "limit": 1000}).json()
    _say(
        "delete",
        f"{len(deleted['servers'])} servers soft-deleted: gone from the list, "
        "their rows kept for audit",
    )
