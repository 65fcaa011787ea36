"""A worker service with no database access, run as its own process by the tests.

    python worker_process.py TRANSPORT_URL DATABASE_URL TOPIC

It blocks DB access, points the reference objects at the conductor, does a
fixed piece of work through the conductor and prints a JSON report.
"""

from __future__ import annotations

import json
import sys
import uuid

from podium.cloud.objects import CloudObject, Instance, InstanceList
from podium.conductor import configure_worker
from podium.context import RequestContext
from podium.db import Database, block_db_access
from podium.exceptions import DBNotAllowed, NotFound
from podium.rpc import get_transport


def main(transport_url: str, database_url: str, topic: str) -> dict[str, object]:
    block_db_access("podium-compute")
    ctx = RequestContext(user_id="worker", project_id="p1")
    report: dict[str, object] = {}
    with get_transport(transport_url) as transport:
        configure_worker(transport, base=CloudObject, topic=topic, timeout=20)
        created = []
        for n in range(5):
            inst = Instance(ctx, uuid=str(uuid.uuid4()), hostname=f"vm-{n}", memory_mb=256 * n)
            inst.create()
            created.append(inst)
        for inst in created[:3]:
            inst.task_state = "spawning"
            inst.vm_state = "building"
            inst.save()
            inst.task_state = None
            inst.vm_state = "active"
            inst.save(expected_task_state="spawning")
        for inst in created[3:]:
            inst.destroy()
        fetched = Instance.get_by_uuid(ctx, created[0].uuid)
        live = InstanceList.get_all(ctx)
        try:
            Instance.get_by_uuid(ctx, created[4].uuid)
            report["deleted_visible"] = True
        except NotFound:
            report["deleted_visible"] = False
        report["created"] = [i.uuid for i in created]
        report["fetched_vm_state"] = fetched.vm_state
        report["live"] = sorted(i.uuid for i in live)
        report["local_changes_after_save"] = sorted(created[0].obj_what_changed())
        try:
            with Database(database_url).session():
                pass
            report["db_error"] = None
        except DBNotAllowed as exc:
            report["db_error"] = str(exc)
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
