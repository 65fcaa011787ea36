"""``podium demo``: the whole control plane in one process (memory:// + SQLite).

It runs a conductor and plays a worker that holds no database handle of its
own: every object method below is an RPC to the conductor over the embedded
bus, encoded exactly as it would be on RabbitMQ.
"""

from __future__ import annotations

import uuid

import click

from podium.cloud.objects import CloudObject, Instance, InstanceList
from podium.conductor import ConductorService, configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.db.archive import archive_deleted_rows
from podium.db.migration import sync
from podium.rpc import get_transport


def _say(step: str, detail: str = "") -> None:
    click.echo(click.style(f"==> {step}", bold=True) + (f"  {detail}" if detail else ""))


@click.command()
@click.option(
    "--database-url",
    default="sqlite:///podium.sqlite",
    show_default=True,
    help="where the conductor keeps its rows",
)
@click.option("--instances", default=3, show_default=True, type=click.IntRange(1, 1000))
def command(database_url: str, instances: int) -> None:
    """Run a conductor and a worker in one process and walk instances through their life."""
    database = Database(database_url)
    _say("database", f"{database.safe_url} at schema {sync(database)}")
    ctx = RequestContext(user_id="demo", project_id="demo-project")
    with (
        get_transport(f"memory://demo-{uuid.uuid4().hex[:8]}") as transport,
        ConductorService(transport, database, host="conductor-1"),
    ):
        api = configure_worker(transport, base=CloudObject, timeout=10)
        assert api is not None
        _say("conductor", "serving topic 'conductor'; worker objects now go through it")
        try:
            created = []
            for n in range(instances):
                inst = Instance(
                    ctx,
                    uuid=str(uuid.uuid4()),
                    hostname=f"vm-{n}",
                    memory_mb=512,
                    vcpus=1,
                    vm_state="building",
                    task_state="scheduling",
                )
                inst.create()
                created.append(inst)
                click.echo(f"    created  {inst.uuid}  id={inst.id}  {inst.hostname}")
            _say("spawn", "task_state scheduling -> spawning -> None, each save a compare-and-swap")
            for inst in created:
                inst.task_state = "spawning"
                inst.host = inst.node = "compute-1"
                inst.save(expected_task_state="scheduling")
                inst.vm_state, inst.task_state = "active", None
                inst.save(expected_task_state="spawning")
            for inst in InstanceList.get_by_host(ctx, "compute-1"):
                click.echo(f"    {inst.hostname:8} {inst.vm_state:8} host={inst.host}")
            _say("delete", f"{created[0].hostname} is soft-deleted: the row stays for audit")
            created[0].destroy()
            live = InstanceList.get_all(ctx)
            every = InstanceList.get_all(ctx.elevated(read_deleted="yes"))
            click.echo(f"    live instances: {len(live)}, with deleted: {len(every)}")
            _say("wire", "what Instance looks like to a worker one release behind (1.0)")
            primitive = created[1].obj_to_primitive(target_version="1.0")
            click.echo(
                f"    fields at 1.0: {len(primitive['podium_object.data'])} "
                f"(1.1 has {len(created[1].obj_to_primitive()['podium_object.data'])})"
            )
            _say("conductor", f"served {api.ping(ctx)['served']} object calls")
        finally:
            CloudObject.indirection_api = None
    moved = archive_deleted_rows(database)
    _say("archive", ", ".join(f"{t}: {n}" for t, n in moved.items() if n) or "nothing to move")
    database.dispose()
