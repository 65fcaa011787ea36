"""The conductor on memory:// and SQLite: the remote call, step by step."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from podium.cloud.exceptions import UnexpectedTaskStateError
from podium.cloud.objects import CloudObject, Instance, InstanceList
from podium.conductor import ConductorAPI, ConductorManager, configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.db.current import set_default_database
from podium.exceptions import (
    DuplicateEntry,
    MethodNotRemotable,
    NotFound,
    ObjectActionError,
    UnsupportedObjectError,
)
from podium.objects import VersionedObjectSerializer
from podium.objects.fixture import indirection_api_set
from podium.rpc import RPCClient, Target, Transport


def _rows(database: Database) -> list[sa.Row[tuple[str, str | None, int]]]:
    with database.connection() as conn:
        return list(
            conn.execute(sa.text("SELECT uuid, task_state, deleted FROM instances ORDER BY id"))
        )


class CountingAPI:
    """Wraps the real ConductorAPI to prove calls really went over the bus."""

    def __init__(self, inner: ConductorAPI) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def object_action(self, context, objinst, objmethod, args, kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(f"action:{objmethod}")
        return self.inner.object_action(context, objinst, objmethod, args, kwargs)

    def object_class_action_versions(
        self, context, objname, objmethod, object_versions, args, kwargs
    ):  # type: ignore[no-untyped-def]
        self.calls.append(f"class:{objname}.{objmethod}")
        return self.inner.object_class_action_versions(
            context, objname, objmethod, object_versions, args, kwargs
        )

    def object_backport_versions(self, context, objinst, object_versions):  # type: ignore[no-untyped-def]
        self.calls.append("backport")
        return self.inner.object_backport_versions(context, objinst, object_versions)


def test_create_read_update_destroy_through_the_conductor(
    worker: ConductorAPI, database: Database, ctx: RequestContext
) -> None:
    counting = CountingAPI(worker)
    CloudObject.indirection_api = counting
    inst = Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm1", memory_mb=512)
    inst.create()
    assert inst.id > 0 and inst.created_at is not None
    assert inst.obj_what_changed() == set()

    inst.task_state = "spawning"
    inst.save()
    assert inst.obj_what_changed() == set()
    assert inst.updated_at is not None

    again = Instance.get_by_uuid(ctx, inst.uuid)
    assert isinstance(again, Instance) and again.task_state == "spawning"
    assert again._context is ctx
    listed = InstanceList.get_all(ctx)
    assert [i.uuid for i in listed] == [inst.uuid]

    inst.destroy()
    assert inst.deleted is True and inst.deleted_at is not None
    with pytest.raises(NotFound):
        Instance.get_by_uuid(ctx, inst.uuid)

    assert counting.calls == [
        "action:create",
        "action:save",
        "class:Instance.get_by_uuid",
        "class:InstanceList.get_all",
        "action:destroy",
        "class:Instance.get_by_uuid",
    ]
    assert _rows(database) == [(inst.uuid, "spawning", 1)]


def test_save_with_expected_task_state_is_a_compare_and_swap(
    worker: ConductorAPI, ctx: RequestContext
) -> None:
    inst = Instance(ctx, uuid=str(uuid.uuid4()), task_state="spawning")
    inst.create()
    inst.task_state = "deleting"
    with pytest.raises(UnexpectedTaskStateError):
        inst.save(expected_task_state="rebooting")
    inst.save(expected_task_state=["spawning"])
    assert Instance.get_by_uuid(ctx, inst.uuid).task_state == "deleting"


def test_remote_object_errors_come_back_as_themselves(
    worker: ConductorAPI, ctx: RequestContext
) -> None:
    inst = Instance(ctx, uuid=str(uuid.uuid4()))
    inst.create()
    with pytest.raises(ObjectActionError, match="already created"):
        inst.create()


@pytest.mark.parametrize("method", ["_column_values", "obj_reset_changes", "__init__", "nope"])
def test_non_remotable_methods_are_refused(
    worker: ConductorAPI,
    ctx: RequestContext,
    method: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inst = Instance(ctx, uuid=str(uuid.uuid4()))
    with caplog.at_level(logging.WARNING, logger="podium.conductor.manager"):
        with pytest.raises(MethodNotRemotable):
            worker.object_action(ctx, inst, method, (), {})
        with pytest.raises(MethodNotRemotable):
            worker.object_class_action_versions(
                ctx, "Instance", method, {"Instance": "1.1"}, (), {}
            )
    assert sum("refused object call" in r.getMessage() for r in caplog.records) == 2


def test_instance_method_asked_as_class_method_is_refused(
    worker: ConductorAPI, ctx: RequestContext
) -> None:
    with pytest.raises(MethodNotRemotable):
        worker.object_class_action_versions(ctx, "Instance", "save", {"Instance": "1.1"}, (), {})


def test_unregistered_class_is_never_built(
    worker: ConductorAPI, transport: Transport, ctx: RequestContext
) -> None:
    client = RPCClient(
        transport,
        Target(topic="conductor", version="1.0"),
        timeout=10,
        serializer=VersionedObjectSerializer(),
    )
    bogus = {
        "podium_object.name": "Exploit",
        "podium_object.namespace": "podium",
        "podium_object.version": "1.0",
        "podium_object.data": {},
    }
    with pytest.raises(UnsupportedObjectError, match="Exploit"):
        client.call(ctx, "object_action", objinst=bogus, objmethod="save", args=[], kwargs={})
    # The conductor still serves.
    assert InstanceList.get_all(ctx).objects == []


def test_use_local_runs_in_process_without_rpc(
    transport: Transport, database: Database, ctx: RequestContext
) -> None:
    with indirection_api_set(None, CloudObject):  # use_local sets CloudObject's own None
        assert (
            configure_worker(transport, use_local=True, base=CloudObject, database=database) is None
        )
        try:
            inst = Instance(ctx, uuid=str(uuid.uuid4()))
            inst.create()
            assert Instance.get_by_uuid(ctx, inst.uuid).id == inst.id
        finally:
            set_default_database(None)
    assert _rows(database) == [(inst.uuid, None, 0)]


def test_replayed_requests_succeed_conflicting_ones_do_not(
    database: Database, ctx: RequestContext
) -> None:
    """A create or destroy run again by hand succeeds; a won compare-and-swap does not."""
    manager = ConductorManager(database)
    unsaved = Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm", task_state="scheduling")
    first, replay = unsaved.obj_clone(), unsaved.obj_clone()
    manager.object_action(ctx, first, "create", [], {})
    updates, _ = manager.object_action(ctx, replay, "create", [], {})
    assert updates["id"] == first.id
    with pytest.raises(DuplicateEntry):
        clash = Instance(ctx, uuid=unsaved.uuid, hostname="someone-else")
        manager.object_action(ctx, clash, "create", [], {})

    first.task_state = "spawning"
    replay = first.obj_clone()
    manager.object_action(ctx, first, "save", [], {"expected_task_state": "scheduling"})
    # A compare-and-swap is won once: run again outside the bus (no request id,
    # so no inbox to answer it) it is refused, though the row holds its values.
    # Over the bus the inbox answers a redelivered save (tests/conductor/test_inbox.py).
    with pytest.raises(UnexpectedTaskStateError):
        manager.object_action(ctx, replay, "save", [], {"expected_task_state": "scheduling"})
    with pytest.raises(UnexpectedTaskStateError):
        late = first.obj_clone()
        late.task_state = "deleting"
        manager.object_action(ctx, late, "save", [], {"expected_task_state": "scheduling"})

    replay = first.obj_clone()
    manager.object_action(ctx, first, "destroy", [], {})
    manager.object_action(ctx, replay, "destroy", [], {})
    assert replay.deleted is True
    with pytest.raises(NotFound):
        never = Instance(ctx, uuid=str(uuid.uuid4()))
        manager.object_action(ctx, never, "destroy", [], {})
    assert _rows(database) == [(unsaved.uuid, "spawning", 1)]


def test_conductor_command_reports_start_up_errors_without_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from podium.cli import main

    result = CliRunner().invoke(
        main,
        [
            "conductor",
            "--transport-url",
            "kafka://user:s3cret@nowhere",
            "--database-url",
            f"sqlite:///{tmp_path / 'c.sqlite'}",
        ],
    )
    assert result.exit_code == 1
    assert (
        "Error: --transport-url kafka://user:***@nowhere: unknown transport 'kafka'"
        in result.output
    )
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_a_save_replies_only_the_fields_it_changed(database: Database, ctx: RequestContext) -> None:
    """A nested object the save reloads as it was (the flavor) is not sent back."""
    from podium.cloud.objects import Flavor

    manager = ConductorManager(database)
    flavor = Flavor(ctx, flavorid="f-same", name="same", vcpus=1, memory_mb=64, disk_gb=1)
    instance = Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm", flavor=flavor)
    manager.object_action(ctx, instance, "create", [], {})
    instance.obj_reset_changes()
    instance.task_state = "spawning"
    updates, result = manager.object_action(ctx, instance.obj_clone(), "save", [], {})
    assert result is None
    assert sorted(updates) == ["obj_what_changed", "updated_at"]
    # A nested object that comes back otherwise than sent (the stored snapshot
    # keeps no id) is sent back.
    instance.flavor = Flavor(
        ctx, id=7, flavorid="f-other", name="other", vcpus=2, memory_mb=64, disk_gb=1
    )
    updates, _ = manager.object_action(ctx, instance.obj_clone(), "save", [], {})
    assert updates["flavor"].flavorid == "f-other"
    assert not updates["flavor"].obj_attr_is_set("id")
