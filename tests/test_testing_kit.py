"""The testing kit and its pytest plugin, used as a project built on podium uses them."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from podium import testing
from podium.conductor import ConductorAPI
from podium.context import RequestContext
from podium.db import Database
from podium.db.current import get_database
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    default_registry,
    fields,
    remotable,
)
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport


def test_the_plugin_is_loaded_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("podium")
    assert plugin is not None and plugin.__name__ == "podium.testing.plugin"


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_podium_transport_is_on_a_broker_of_its_own(podium_transport: Transport) -> None:
    with RPCServer(podium_transport, Target(topic="kit"), [Echo()]):
        client = RPCClient(podium_transport, Target(topic="kit"), timeout=5)
        assert client.call({}, "echo", value=1) == 1
        # The process's own memory:// bus does not see it.
        with get_transport("memory://") as shared:
            assert not shared.driver.bus.exists("openstack/kit")  # type: ignore[attr-defined]


def test_podium_registry_is_empty_and_is_the_default_for_the_test(
    podium_registry: VersionedObjectRegistry,
) -> None:
    assert default_registry() is podium_registry
    assert podium_registry.obj_classes() == {}

    @VersionedObjectRegistry.register
    class Gadget(VersionedObject):
        fields = {"name": fields.StringField()}

    assert "Gadget" in podium_registry


def test_the_registry_of_the_previous_test_is_gone() -> None:
    assert "Gadget" not in default_registry()


def test_podium_conductor_runs_remotable_methods_against_its_database(
    podium_registry: VersionedObjectRegistry,  # first: the conductor serves this registry
    podium_conductor: ConductorAPI,
    podium_database: Database,
) -> None:
    @VersionedObjectRegistry.register
    class KitProbe(VersionedObject):
        """Says which database it ran against: a worker has none, the conductor its own."""

        fields = {"name": fields.StringField(), "ran_on": fields.StringField(nullable=True)}

        @remotable
        def locate(self) -> str:
            self.ran_on = get_database().url.render_as_string(hide_password=True)
            return "located"

    probe = KitProbe(RequestContext(user_id="u", project_id="p"), name="p1")
    assert KitProbe.indirection_api is podium_conductor
    assert probe.locate() == "located"
    # Set on the conductor, sent back as a change, applied here.
    assert probe.ran_on == podium_database.url.render_as_string(hide_password=True)
    assert probe.obj_what_changed() == {"name", "ran_on"}


def test_podium_conductor_leaves_no_indirection_behind() -> None:
    assert VersionedObject.indirection_api is None


@pytest.mark.rabbit
def test_podium_rabbit_url_is_a_vhost_of_the_session(podium_rabbit_url: str) -> None:
    assert "/podium-test-" in podium_rabbit_url
    with (
        get_transport(podium_rabbit_url) as transport,
        RPCServer(transport, Target(topic="kit"), [Echo()], max_workers=1),
    ):
        client = RPCClient(transport, Target(topic="kit"), timeout=10)
        assert client.call({}, "echo", value="over rabbit") == "over rabbit"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again once the block ends


@pytest.mark.parametrize(("ci", "required"), [("true", True), ("", False)])
def test_a_missing_service_is_required_only_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, required: bool
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(testing.ServiceMissing, match="Nothing is not reachable") as info:
        testing.require_service("Nothing", "127.0.0.1", _closed_port())
    assert info.value.required is required
    assert ("CI=true" in str(info.value)) is required
