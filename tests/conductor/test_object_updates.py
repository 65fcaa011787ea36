"""One diff for every indirection API: the real conductor and the test double answer a
remote call with the same ``updates``."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from podium.conductor import ConductorAPI
from podium.context import RequestContext
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    remotable,
)
from podium.objects.fixture import (
    FakeIndirectionAPI,
    indirection_api_set,
    isolated_default_registry,
)
from podium.objects.indirection import object_action_updates

CTX = RequestContext(user_id="u", project_id="p")


def _classes(registry: VersionedObjectRegistry) -> tuple[type[Any], type[Any]]:
    @registry.register
    class Part(VersionedObject):
        fields = {"label": fields.StringField(), "size": fields.IntegerField(default=0)}

    @registry.register
    class Gadget(VersionedObject):
        fields = {
            "name": fields.StringField(),
            "part": fields.ObjectField("Part", nullable=True),
            "seen": fields.IntegerField(default=0),
        }

        @remotable
        def reload(self) -> str:
            # As a reload from the database does: the nested object built anew,
            # equal to the one sent; one scalar really changed.
            self.part = Part(self._context, label=self.part.label, size=self.part.size)
            self.seen = self.seen + 1
            self.obj_reset_changes(recursive=True)
            return "reloaded"

        @remotable
        def resize(self, size: int) -> None:
            self.part = Part(self._context, label=self.part.label, size=size)

    return Part, Gadget


def test_an_unchanged_nested_object_is_not_an_update_and_a_changed_one_is() -> None:
    with isolated_default_registry() as registry:
        part_cls, gadget_cls = _classes(registry)
        before = gadget_cls(CTX, name="g", part=part_cls(CTX, label="a", size=1), seen=0)
        after = before.obj_clone()
        after.part = part_cls(CTX, label="a", size=1)
        after.seen = 1
        updates = object_action_updates(before, after)
        assert set(updates) == {"seen", "obj_what_changed"}
        after.part = part_cls(CTX, label="a", size=2)
        assert set(object_action_updates(before, after)) == {"part", "seen", "obj_what_changed"}


@pytest.mark.parametrize("via", ["fake", "conductor"])
def test_the_fake_and_the_real_conductor_send_back_the_same_changes(
    via: str, request: pytest.FixtureRequest
) -> None:
    registry = request.getfixturevalue("podium_registry")
    part_cls, gadget_cls = _classes(registry)
    with contextlib.ExitStack() as stack:
        if via == "conductor":
            assert isinstance(request.getfixturevalue("podium_conductor"), ConductorAPI)
        else:
            stack.enter_context(indirection_api_set(FakeIndirectionAPI()))
        gadget = gadget_cls(CTX, name="g", part=part_cls(CTX, label="a", size=1), seen=0)
        gadget.obj_reset_changes(recursive=True)
        sent_part = gadget.part
        assert gadget.reload() == "reloaded"
        # Only the scalar came back: the caller keeps its own nested object.
        assert gadget.seen == 1 and gadget.part is sent_part
        assert not gadget.obj_what_changed()
        gadget.resize(5)
        assert gadget.part is not sent_part and gadget.part.size == 5
        assert gadget.obj_what_changed() == {"part"}
