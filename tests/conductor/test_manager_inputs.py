"""The conductor's object endpoints given what no well-behaved worker sends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from podium.cloud.objects import Instance
from podium.conductor import ConductorManager, ConductorService
from podium.context import RequestContext
from podium.db import Database
from podium.exceptions import IncompatibleObjectVersion, ObjectFormatError
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCClient, Target, Transport


@pytest.fixture
def manager(database: Database) -> ConductorManager:
    return ConductorManager(database)


@pytest.fixture
def instance(ctx: RequestContext) -> Instance:
    return Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm", node="n1")


@pytest.mark.parametrize(
    "objinst",
    [
        {"podium_object.name": "Instance"},
        "Instance",
        None,
        [1, 2],
        7,
    ],
    ids=["dict", "str", "none", "list", "int"],
)
def test_objinst_must_be_an_object(
    manager: ConductorManager, ctx: RequestContext, objinst: Any
) -> None:
    with pytest.raises(ObjectFormatError, match="needs an object"):
        manager.object_backport_versions(ctx, objinst, {"Instance": "1.0"})


@pytest.mark.parametrize(
    "versions",
    [
        None,
        "1.0",
        ["Instance", "1.0"],
        {"Instance": 1.0},
        {"Instance": None},
        {"Instance": ["1.0"]},
        {1: "1.0"},
        {"Instance": "one.zero"},
        {"Instance": "1." + "9" * 5000},
    ],
    ids=[
        "none",
        "str",
        "list",
        "float-version",
        "null-version",
        "list-version",
        "int-name",
        "malformed-version",
        "5000-digit-version",
    ],
)
def test_object_versions_must_map_names_to_versions(
    manager: ConductorManager, ctx: RequestContext, instance: Instance, versions: Any
) -> None:
    with pytest.raises(ObjectFormatError):
        manager.object_backport_versions(ctx, instance, versions)


def test_a_well_formed_request_is_backported(
    manager: ConductorManager, ctx: RequestContext, instance: Instance
) -> None:
    primitive = manager.object_backport_versions(ctx, instance, {"Instance": "1.0"})
    assert primitive["podium_object.version"] == "1.0"
    assert "node" not in primitive["podium_object.data"]
    with pytest.raises(IncompatibleObjectVersion):
        manager.object_backport_versions(ctx, instance, {"Instance": "9.0"})


def test_the_caller_gets_the_refusal_as_itself(
    transport: Transport, conductor: ConductorService, ctx: RequestContext
) -> None:
    client = RPCClient(
        transport,
        Target(topic="conductor", version="1.0"),
        timeout=10,
        serializer=VersionedObjectSerializer(),
    )
    with pytest.raises(ObjectFormatError, match="needs an object"):
        client.call(ctx, "object_backport_versions", objinst="x", object_versions={})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(5, {}), ([], []), ([], {1: "x"})],
    ids=["args-int", "kwargs-list", "kwargs-int-key"],
)
def test_object_action_refuses_ill_shaped_arguments(
    manager: ConductorManager, ctx: RequestContext, instance: Instance, args: Any, kwargs: Any
) -> None:
    with pytest.raises(ObjectFormatError):
        manager.object_action(ctx, instance, "refresh", args, kwargs)


@pytest.mark.parametrize(
    ("objname", "args", "kwargs"),
    [(["Instance"], [], {}), ("Instance", 5, {}), ("Instance", [], [])],
    ids=["objname-list", "args-int", "kwargs-list"],
)
def test_object_class_action_refuses_ill_shaped_arguments(
    manager: ConductorManager, ctx: RequestContext, objname: Any, args: Any, kwargs: Any
) -> None:
    with pytest.raises(ObjectFormatError):
        manager.object_class_action_versions(
            ctx, objname, "get_by_uuid", {"Instance": "1.1"}, args, kwargs
        )
