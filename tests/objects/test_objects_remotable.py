"""Points 7 and 8: remotable methods, the indirection hook, the serializer."""

from __future__ import annotations

from typing import Any

import pytest

from podium.context import RequestContext
from podium.exceptions import (
    IncompatibleObjectVersion,
    MalformedContext,
    MethodNotRemotable,
    ObjectFieldError,
    ObjectFormatError,
    OrphanedObjectError,
)
from podium.objects import (
    IndirectionAPI,
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    apply_updates,
    fields,
    is_remotable,
    local_method,
    obj_tree_get_versions,
    remotable,
    remotable_classmethod,
    run_locally,
)
from podium.objects.fixture import FakeIndirectionAPI, compute_updates

REG = VersionedObjectRegistry()
STORE: dict[str, dict[str, Any]] = {}


@REG.register
class Tag(VersionedObject):
    fields = {"name": fields.StringField()}


@REG.register
class Server(VersionedObject):
    VERSION = "1.1"
    fields = {
        "uuid": fields.UUIDField(),
        "name": fields.StringField(),
        "state": fields.StringField(nullable=True),
        "saves": fields.IntegerField(default=0),
        "tag": fields.ObjectField("Tag", nullable=True),
    }
    obj_relationships = {"tag": [("1.0", "1.0")]}

    @remotable
    def save(self, reason: str = "") -> str:
        self.saves = (self.saves if self.obj_attr_is_set("saves") else 0) + 1
        self.state = f"saved:{reason}"
        STORE[self.uuid] = {"name": self.name, "state": self.state}
        self.obj_reset_changes(["saves"])
        return f"ok {reason}"

    @remotable
    def rename_and_save(self, name: str) -> None:
        self.name = name
        self.save(reason="rename")

    @remotable_classmethod
    def get_by_uuid(cls, context: Any, uuid: str) -> Server:
        row = STORE[uuid]
        obj = cls(context, uuid=uuid, name=row["name"], state=row["state"])
        obj.obj_reset_changes()
        return obj

    @classmethod
    @remotable
    def count(cls, context: Any, prefix: str = "") -> int:
        return sum(1 for row in STORE.values() if row["name"].startswith(prefix))

    def not_remote(self) -> str:
        return "local"


UUID1 = "11111111-1111-1111-1111-111111111111"


@pytest.fixture(autouse=True)
def _clean() -> Any:
    STORE.clear()
    STORE[UUID1] = {"name": "one", "state": None}
    yield
    VersionedObject.indirection_api = None
    if "indirection_api" in Server.__dict__:
        del Server.indirection_api


class Recorder:
    """Answers like a conductor would, and records exactly how it was called."""

    def __init__(self, updates: dict[str, Any] | None = None, result: Any = None) -> None:
        self.updates = updates or {"obj_what_changed": []}
        self.result = result
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def object_action(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        self.calls.append(("object_action", args, kwargs))
        return self.updates, self.result

    def object_class_action_versions(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("object_class_action_versions", args, kwargs))
        return self.result

    def object_backport_versions(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("object_backport_versions", args, kwargs))
        return self.result


def make_server(**extra: Any) -> Server:
    server = Server(RequestContext(), uuid=UUID1, name="one", **extra)
    server.obj_reset_changes(recursive=True)
    return server


def clean_tag(name: str) -> Tag:
    tag = Tag(name=name)
    tag.obj_reset_changes()
    return tag


# -- running locally ---------------------------------------------------------------


def test_without_indirection_api_methods_run_locally() -> None:
    server = make_server()
    assert server.save("x") == "ok x"
    assert STORE[UUID1]["state"] == "saved:x"
    ctx = RequestContext()
    fetched = Server.get_by_uuid(ctx, UUID1)
    assert fetched.state == "saved:x"
    assert fetched._context is ctx
    assert Server.count(ctx) == 1
    assert Server.count(context=ctx, prefix="z") == 0


def test_no_context_is_an_orphaned_object_error() -> None:
    with pytest.raises(OrphanedObjectError, match=r"Server\.save\(\)"):
        Server(uuid=UUID1, name="n").save()
    with pytest.raises(OrphanedObjectError, match="context"):
        Server.get_by_uuid()
    Server.indirection_api = Recorder()
    with pytest.raises(OrphanedObjectError):
        Server.get_by_uuid(None, UUID1)


def test_wrappers_are_marked_for_dispatchers() -> None:
    assert Server.save.remotable is True  # type: ignore[attr-defined]
    assert Server.save.original_fn.__name__ == "save"  # type: ignore[attr-defined]
    assert Server.get_by_uuid.remotable is True  # type: ignore[attr-defined]
    assert is_remotable(Server.__dict__["get_by_uuid"])
    assert is_remotable(Server.__dict__["count"])
    assert not is_remotable(Server.not_remote)
    assert Server.save.__name__ == "save" and Server.save.__doc__ is None


# -- going through the indirection API ---------------------------------------------


def test_instance_method_goes_to_object_action_and_applies_updates() -> None:
    server = make_server(state="before")
    recorder = Recorder(
        updates={
            "state": "after",
            "saves": 3,
            "tag": clean_tag("t").obj_to_primitive(),
            "unknown": 1,
            "obj_what_changed": ["state", "unknown"],
        },
        result="remote result",
    )
    Server.indirection_api = recorder
    assert server.save("why", extra=None) == "remote result"  # type: ignore[call-arg]
    [(method, args, kwargs)] = recorder.calls
    assert method == "object_action"
    assert args == (server._context,)
    assert kwargs == {
        "objinst": server,
        "objmethod": "save",
        "args": ("why",),
        "kwargs": {"extra": None},
    }
    assert server.state == "after"
    assert server.saves == 3
    assert isinstance(server.tag, Tag) and server.tag.name == "t"
    assert server.obj_what_changed() == {"state"}
    assert UUID1 not in STORE or STORE[UUID1]["state"] is None, "nothing ran locally"


def test_updates_may_carry_objects() -> None:
    server = make_server()
    tag = clean_tag("obj")
    Server.indirection_api = Recorder(updates={"tag": tag, "obj_what_changed": []})
    server.save()
    assert server.tag is tag
    assert server.obj_what_changed() == set()


def test_class_method_goes_to_object_class_action_versions() -> None:
    remote = Server(uuid=UUID1, name="remote")
    recorder = Recorder(result=remote)
    Server.indirection_api = recorder
    ctx = RequestContext()
    assert Server.get_by_uuid(ctx, UUID1) is remote
    assert remote._context is ctx
    [(method, args, kwargs)] = recorder.calls
    assert method == "object_class_action_versions"
    assert args == (ctx,)
    assert kwargs == {
        "objname": "Server",
        "objmethod": "get_by_uuid",
        "object_versions": {"Server": "1.1", "Tag": "1.0"},
        "args": (UUID1,),
        "kwargs": {},
    }
    recorder.result = 7
    assert Server.count(context=ctx, prefix="o") == 7
    assert recorder.calls[-1][2]["args"] == () and recorder.calls[-1][2]["kwargs"] == {
        "prefix": "o"
    }


def test_indirection_api_on_a_base_class_and_on_one_instance() -> None:
    recorder = Recorder(result="base")
    VersionedObject.indirection_api = recorder
    try:
        assert make_server().save() == "base"
        local = make_server()
        local.indirection_api = None
        assert local.save("here") == "ok here"
    finally:
        VersionedObject.indirection_api = None
    assert len(recorder.calls) == 1


def test_bad_updates_are_podium_errors() -> None:
    server = make_server()
    with pytest.raises(ObjectFormatError):
        apply_updates(server, ["state"])  # type: ignore[arg-type]
    with pytest.raises(ObjectFieldError, match=r"Server\.saves"):
        apply_updates(server, {"saves": "many"})
    with pytest.raises(ObjectFormatError, match="obj_what_changed"):
        apply_updates(server, {"obj_what_changed": 3})


# -- the dispatcher's helper ---------------------------------------------------------


def test_local_method_runs_the_real_code_even_with_an_indirection_api() -> None:
    recorder = Recorder(result="remote")
    Server.indirection_api = recorder
    server = make_server()
    assert local_method(server, "save")("d") == "ok d"
    # Nested remotable calls inside the real code stay local too.
    local_method(server, "rename_and_save")("two")
    assert STORE[UUID1] == {"name": "two", "state": "saved:rename"}
    fetched = local_method(Server, "get_by_uuid")(RequestContext(), UUID1)
    assert fetched.name == "two"
    assert local_method(Server, "count")(RequestContext()) == 1
    assert recorder.calls == []
    assert server.save() == "remote", "outside the helper the API is used again"


def test_run_locally_block() -> None:
    Server.indirection_api = Recorder(result="remote")
    with run_locally():
        assert make_server().save("x") == "ok x"
    assert make_server().save("x") == "remote"


@pytest.mark.parametrize(
    ("target", "name", "match"),
    [
        ("instance", "not_remote", "not a remotable method"),
        ("instance", "obj_to_primitive", "not a remotable method"),
        ("instance", "nope", "does not exist"),
        ("instance", "__class__", "not a remotable method"),
        ("instance", "_obj_from_primitive", "not a remotable method"),
        ("instance", "get_by_uuid", "wrong target"),
        ("class", "save", "wrong target"),
        ("class", 12, "not a remotable method"),
    ],
)
def test_local_method_refuses_what_is_not_remotable(target: str, name: Any, match: str) -> None:
    obj: Any = make_server() if target == "instance" else Server
    with pytest.raises(MethodNotRemotable, match=match):
        local_method(obj, name)


# -- the in-process conductor double ------------------------------------------------


def test_fake_indirection_api_round_trips_through_json() -> None:
    api = FakeIndirectionAPI(registry=REG, client_registry=REG)
    assert isinstance(api, IndirectionAPI)
    Server.indirection_api = api
    server = make_server(tag=Tag(name="t"))
    server.name = "renamed"
    assert server.save("rpc") == "ok rpc"
    assert server.state == "saved:rpc"
    assert server.saves == 1
    assert server.obj_what_changed() == {"name", "state"}
    assert STORE[UUID1]["name"] == "renamed"
    fetched = Server.get_by_uuid(RequestContext(), UUID1)
    assert type(fetched) is Server and fetched.state == "saved:rpc"
    assert api.calls == [("object_action", "save"), ("object_class_action_versions", "get_by_uuid")]


def test_compute_updates() -> None:
    before = make_server(state="a")
    after = before.obj_clone()
    after.state = "b"
    after.tag = Tag(name="x")
    updates = compute_updates(before, after)
    assert updates["state"] == "b"
    # A nested object as itself: the serializer sends it, as the conductor's reply does.
    assert updates["tag"] is after.tag
    assert "name" not in updates
    assert updates["obj_what_changed"] == ["state", "tag"]


# -- old client, new conductor ----------------------------------------------------------


def old_and_new() -> tuple[VersionedObjectRegistry, VersionedObjectRegistry, type, type]:
    old, new = VersionedObjectRegistry(), VersionedObjectRegistry()
    old.register(Tag)
    new.register(Tag)

    @old.register
    class Box(VersionedObject):
        VERSION = "1.0"
        fields = {"size": fields.IntegerField()}

        @remotable_classmethod
        def make(cls, context: Any, size: int) -> Box:
            return cls(context, size=size)

    OldBox = Box

    @new.register  # type: ignore[no-redef]
    class Box(VersionedObject):
        VERSION = "1.1"
        fields = {"size": fields.IntegerField(), "colour": fields.StringField(default="red")}

        def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
            if target_version == "1.0":
                primitive.pop("colour", None)

        @remotable_classmethod
        def make(cls, context: Any, size: int) -> Box:
            return cls(context, size=size, colour="blue")

    return old, new, OldBox, Box


def test_class_action_result_comes_back_at_the_callers_versions() -> None:
    old, new, OldBox, _NewBox = old_and_new()
    OldBox.indirection_api = FakeIndirectionAPI(registry=new, client_registry=old)
    box = OldBox.make(RequestContext(), 3)
    assert type(box) is OldBox and box.size == 3 and box.VERSION == "1.0"


def test_serializer_asks_for_a_backport_of_an_unknown_version() -> None:
    old, new, OldBox, NewBox = old_and_new()
    api = FakeIndirectionAPI(registry=new, client_registry=old)
    serializer = VersionedObjectSerializer(registry=old, indirection_api=api)
    ctx = RequestContext()
    primitive = NewBox(size=5, colour="green").obj_to_primitive()
    result = serializer.deserialize_entity(ctx, {"boxes": [primitive], "n": 1})
    [box] = result["boxes"]
    assert type(box) is OldBox and box.size == 5 and box._context is ctx
    assert result["n"] == 1
    assert api.calls == [("object_backport_versions", "Box")]
    # Without an indirection API, the error reaches the caller.
    with pytest.raises(IncompatibleObjectVersion):
        VersionedObjectSerializer(registry=old).deserialize_entity(ctx, primitive)


def test_serializer_backport_reply_may_be_an_object() -> None:
    old, _new, OldBox, NewBox = old_and_new()
    ready = OldBox(size=1)
    recorder = Recorder(result=ready)
    serializer = VersionedObjectSerializer(registry=old, indirection_api=recorder)
    assert serializer.deserialize_entity(None, NewBox(size=1).obj_to_primitive()) is ready
    [(_, _args, kwargs)] = recorder.calls
    assert kwargs["object_versions"] == obj_tree_get_versions("Box", old) == {"Box": "1.0"}
    assert kwargs["objinst"]["podium_object.version"] == "1.1"


def test_serializer_accepts_a_patch_level() -> None:
    serializer = VersionedObjectSerializer(registry=REG)
    primitive = Tag(name="z").obj_to_primitive()
    primitive["podium_object.version"] = "1.0.3"
    tag = serializer.deserialize_entity(None, primitive)
    assert isinstance(tag, Tag) and tag.name == "z"
    assert primitive["podium_object.version"] == "1.0.3", "the input is not modified"


def test_serializer_walks_containers() -> None:
    serializer = VersionedObjectSerializer(registry=REG)
    tag = Tag(name="a")
    entity = {"list": [tag, 1], "tuple": (tag, "x"), "set": {1}, "nested": {"t": tag}, "n": None}
    wire = serializer.serialize_entity(None, entity)
    assert wire["list"][0] == tag.obj_to_primitive()
    assert wire["tuple"] == (tag.obj_to_primitive(), "x")
    assert wire["set"] == [1]
    back = serializer.deserialize_entity(None, wire)
    assert isinstance(back["list"][0], Tag) and back["list"][1] == 1
    assert isinstance(back["tuple"], tuple) and isinstance(back["tuple"][0], Tag)
    assert isinstance(back["nested"]["t"], Tag) and back["n"] is None
    assert serializer.serialize_entity(None, "plain") == "plain"


def test_serializer_with_a_version_manifest() -> None:
    _old, _new, _OldBox, NewBox = old_and_new()
    serializer = VersionedObjectSerializer()
    wire = serializer.serialize_entity(None, [NewBox(size=1, colour="x")], {"Box": "1.0"})
    assert wire[0]["podium_object.version"] == "1.0"
    assert "colour" not in wire[0]["podium_object.data"]


def test_serializer_context_round_trip_and_bad_context() -> None:
    serializer = VersionedObjectSerializer()
    ctx = RequestContext(user_id="u", project_id="p", roles=["r"], read_deleted="yes")
    back = serializer.deserialize_context(serializer.serialize_context(ctx))
    assert (back.user_id, back.project_id, back.roles, back.read_deleted, back.request_id) == (
        "u",
        "p",
        ["r"],
        "yes",
        ctx.request_id,
    )
    assert serializer.serialize_context(None) == {}
    # The error the RPC dispatcher answers with, whichever serializer a server runs.
    with pytest.raises(MalformedContext):
        serializer.deserialize_context({"read_deleted": "sometimes"})
    with pytest.raises(MalformedContext):
        serializer.deserialize_context(["not", "a", "dict"])
    with pytest.raises(ObjectFormatError):
        serializer.serialize_context(object())


def test_serializer_uses_the_base_class_api_by_default() -> None:
    recorder = Recorder()
    serializer = VersionedObjectSerializer()
    assert serializer.indirection_api is None
    VersionedObject.indirection_api = recorder
    try:
        assert serializer.indirection_api is recorder
    finally:
        VersionedObject.indirection_api = None


def test_indirection_api_set_restores_the_class() -> None:
    from podium.objects.fixture import indirection_api_set

    recorder = Recorder(result="via fixture")
    with indirection_api_set(recorder, Server) as api:
        assert api is recorder
        assert make_server().save() == "via fixture"
    assert "indirection_api" not in Server.__dict__
    assert make_server().save("local") == "ok local"
    with indirection_api_set(recorder):
        assert VersionedObject.indirection_api is recorder
        with indirection_api_set(None, Server):
            assert make_server().save("x") == "ok x"
        assert "indirection_api" not in Server.__dict__
    assert VersionedObject.indirection_api is None
