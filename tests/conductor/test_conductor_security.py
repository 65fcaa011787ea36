"""A conductor that requires signatures and enforces the cloud's policy: what a forged, unknown,
replayed or unauthorized request leaves in the database (nothing), on memory:// and RabbitMQ,
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa

from conductor_process import ConductorProcess
from podium.cloud.app import APP as CLOUD_APP
from podium.cloud.models import Instance as InstanceRow
from podium.cloud.objects import (
    CloudObject,
    ComputeNode,
    ComputeNodeList,
    Flavor,
    Instance,
    InstanceFault,
    InstanceList,
    Service,
)
from podium.cloud.rpcapi import ComputeTaskAPI, sent_now
from podium.conductor import configure_worker
from podium.conductor.policy import policy_of
from podium.context import RequestContext
from podium.db import Database
from podium.exceptions import PolicyNotAuthorized, UnauthenticatedMessage
from podium.objects.fixture import indirection_api_set
from podium.rpc import (
    KeyRing,
    MemoryBroker,
    MessageSigning,
    Sender,
    SigningKey,
    Transport,
    get_transport,
)
from podium.testing import in_process_conductor
from polling import wait_for

CTX = RequestContext(user_id="u1", project_id="p-victim", is_admin=True)
COMPUTE = Sender("compute", "h1")
API = Sender("api", "a1")


class Bus:
    def __init__(self, url: str, keys_dir: Path) -> None:
        self.url = url
        self.keys_dir = keys_dir
        self.broker = MemoryBroker() if url.startswith("memory") else None
        self.made: list[Transport] = []

    def key(self, sender: Sender, trusted: bool = True) -> SigningKey:
        key = SigningKey.generate(sender)
        if trusted:
            (self.keys_dir / f"{sender.name}.pub").write_bytes(key.public_pem())
        return key

    def transport(self, key: SigningKey | None, require: bool = True) -> Transport:
        signing = MessageSigning(key, KeyRing(self.keys_dir), require_signed=require)
        made = get_transport(self.url, broker=self.broker, signing=signing)
        made.allowed_remote_exmods.append("podium.cloud.exceptions")
        self.made.append(made)
        return made

    def publish_to_conductor(self, body: bytes) -> None:
        if self.broker is not None:
            self.broker.bus("conductor").publish("openstack/conductor", body, must_route=False)
            return
        params = pika.URLParameters(self.url.replace("rabbit://", "amqp://", 1))
        connection = pika.BlockingConnection(params)
        try:
            connection.channel().basic_publish("", "conductor", body)
        finally:
            connection.close()


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.rabbit)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bus]:
    url = (
        "memory://conductor" if request.param == "memory" else request.getfixturevalue("rabbit_url")
    )
    made = Bus(url, tmp_path)
    yield made
    for transport in made.made:
        transport.cleanup()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, servers: Any) -> Iterator[Database]:
    made = Database(servers.migrated_url(request.param, "signing"))
    yield made
    made.dispose()


def task_state(database: Database, instance_uuid: str) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(
            sa.select(InstanceRow.task_state).where(InstanceRow.uuid == instance_uuid)
        ).scalar_one()


def recording(transport: Transport, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies ``transport`` sends from now on, as the broker (or a spy on it) sees them."""
    bodies: list[bytes] = []
    encode = transport.driver.encode

    def recorded(message: dict[str, Any], what: str = "message") -> bytes:
        body = encode(message, what)
        bodies.append(body)
        return body

    monkeypatch.setattr(transport.driver, "encode", recorded)
    return bodies


def test_refused_requests_leave_the_database_as_it_was(
    bus: Bus, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    conductor = bus.transport(bus.key(Sender("conductor", "c1")))
    compute = bus.transport(bus.key(COMPUTE))
    api = bus.transport(bus.key(API))
    # The cloud's objects go through CloudObject's indirection API, restored after.
    with (
        in_process_conductor(conductor, database, host="c1"),
        indirection_api_set(None, CloudObject),
    ):
        configure_worker(api, base=CloudObject, timeout=10)
        instance = Instance(CTX, uuid=str(uuid.uuid4()), hostname="vm", host="h1")
        instance.task_state = "scheduling"
        instance.create()
        before = task_state(database, instance.uuid)

        # Signed by a key of its own in compute.h1's name; by a host nobody trusts;
        # unsigned: each save is refused before the conductor runs it.
        for attacker in (
            bus.transport(SigningKey.generate(COMPUTE)),
            bus.transport(bus.key(Sender("compute", "h9"), trusted=False)),
            bus.transport(None),
        ):
            configure_worker(attacker, base=CloudObject, timeout=10)
            instance.task_state = "deleting"
            with pytest.raises(UnauthenticatedMessage, match="refused"):
                instance.save()
            assert task_state(database, instance.uuid) == before
        assert conductor.signing is not None
        counts = conductor.signing.counts()
        assert (counts["bad_signature"], counts["unknown_key"], counts["unsigned"]) == (1, 1, 1)

        # A save captured on the broker and sent again after a later one: never applied twice.
        configure_worker(compute, base=CloudObject, timeout=10)
        sent = recording(compute, monkeypatch)
        instance = Instance.get_by_uuid(CTX, instance.uuid)
        instance.task_state = "spawning"
        instance.save()
        captured = sent[-1]
        instance.task_state = None
        instance.save()
        bus.publish_to_conductor(captured)
        wait_for(lambda: conductor.signing and conductor.signing.counts()["replayed"], "the copy")
        assert task_state(database, instance.uuid) is None


# -- the policy: what a signed sender may do with what it asks ------------------------

VICTIM = RequestContext(user_id="u-victim", project_id="p-victim")
ATTACKER = RequestContext(user_id="u-attacker", project_id="p-attacker")
SELF_MADE_ADMIN = RequestContext(
    user_id="u-attacker", project_id="p-victim", roles=["admin"], is_admin=True
)
CLOUD_TABLES = ("instances", "instance_faults", "compute_nodes", "services", "flavors")


def cloud_rows(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the cloud's tables, to show a refused request changed none."""
    metadata = sa.MetaData()
    with database.engine.connect() as connection:
        dumped = {}
        for name in CLOUD_TABLES:
            table = sa.Table(name, metadata, autoload_with=connection)
            rows = connection.execute(sa.select(table).order_by(table.c.id)).all()
            dumped[name] = [tuple(row) for row in rows]
        return dumped


class Cloud:
    """A conductor enforcing the cloud's policy, and a signed transport per sender."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.senders: dict[str, Transport] = {}

    def act_as(self, service: str, host: str) -> Transport:
        """This process's cloud objects go to the conductor signed as ``service.host``."""
        name = f"{service}.{host}"
        if name not in self.senders:
            self.senders[name] = self.bus.transport(self.bus.key(Sender(service, host)))
        configure_worker(self.senders[name], base=CloudObject, timeout=10)
        return self.senders[name]


@pytest.fixture
def cloud(bus: Bus, database: Database) -> Iterator[tuple[Cloud, dict[str, Instance]]]:
    """Instances on h1 and h2 of project p-victim, both hosts reporting, made by the api."""
    conductor = bus.transport(bus.key(Sender("conductor", "c1")))
    with (
        in_process_conductor(conductor, database, host="c1"),
        indirection_api_set(None, CloudObject),
    ):
        made = Cloud(bus)
        made.act_as("api", "a1")
        instances = {}
        for host in ("h1", "h2"):
            instance = Instance(VICTIM, uuid=str(uuid.uuid4()), hostname=f"vm-{host}")
            instance.project_id = VICTIM.project_id
            instance.host = host
            instance.task_state = "scheduling"
            instance.create()
            instances[host] = instance
        for host in ("h1", "h2"):
            made.act_as("compute", host)
            ComputeNode.report(VICTIM, host, 8, 8192, 100)
            Service.report(VICTIM, host, "podium-compute", "compute", 2, sent_now())
        made.act_as("api", "a1")
        name = f"flavor-{uuid.uuid4()}"
        Flavor(CTX, flavorid=name, name=name, vcpus=1, memory_mb=512, disk_gb=1).create()
        yield made, instances


def test_a_compute_acts_only_on_its_own_host(
    cloud: tuple[Cloud, dict[str, Instance]], database: Database
) -> None:
    bus, instances = cloud
    bus.act_as("compute", "h1")
    theirs = instances["h2"].uuid
    # Its own instance it reads and saves, as a build does.
    mine = Instance.get_by_uuid(VICTIM, instances["h1"].uuid)
    mine.task_state = "spawning"
    mine.save(expected_task_state="scheduling")
    before = cloud_rows(database)

    refused: list[tuple[str, Any]] = [
        ("read another host's instance", lambda: Instance.get_by_uuid(VICTIM, theirs)),
        ("list another host's instances", lambda: InstanceList.get_by_host(VICTIM, "h2")),
        ("report another host's resources", lambda: ComputeNode.report(VICTIM, "h2", 1, 1, 1)),
        ("recount another host", lambda: ComputeNode.reconcile_usage(VICTIM, "h2")),
        ("claim an instance for itself", lambda: ComputeNode.claim(VICTIM, "h1", theirs, {})),
        ("take another's instance off it", lambda: ComputeNode.release(VICTIM, "h2", theirs)),
        (
            "beat another host's heart",
            lambda: Service.report(VICTIM, "h2", "podium-compute", "compute", 2, sent_now()),
        ),
        (
            "pose as the scheduler's service",
            lambda: Service.report(VICTIM, "h1", "podium-scheduler", "scheduler", 2, sent_now()),
        ),
        (
            "record a fault on another host's instance",
            lambda: InstanceFault(VICTIM, instance_uuid=theirs, code=500, message="x").create(),
        ),
        ("list every instance", lambda: InstanceList.get_all(VICTIM)),
        ("create an instance", lambda: Instance(VICTIM, hostname="x", host="h1").create()),
    ]
    for what, attempt in refused:
        with pytest.raises(PolicyNotAuthorized, match=r"compute\.h1 may not call"):
            attempt()
            pytest.fail(f"a compute could {what}")

    # An instance object that says it is on h1, but is h2's in the database.
    forged = Instance(VICTIM, uuid=theirs, host="h1")
    forged.obj_reset_changes()
    forged.task_state = "deleting"
    with pytest.raises(PolicyNotAuthorized):
        forged.save()
    forged = Instance(VICTIM, uuid=theirs)
    forged.obj_reset_changes()
    with pytest.raises(PolicyNotAuthorized):
        forged.destroy()
    # Its own instance it may not give away to another host.
    mine.host = "h2"
    with pytest.raises(PolicyNotAuthorized):
        mine.save()
    assert cloud_rows(database) == before


def test_a_compute_cannot_make_itself_admin(
    cloud: tuple[Cloud, dict[str, Instance]], database: Database
) -> None:
    bus, instances = cloud
    bus.act_as("compute", "h1")
    before = cloud_rows(database)
    theirs = Instance(SELF_MADE_ADMIN, uuid=instances["h2"].uuid)
    theirs.obj_reset_changes()
    theirs.vm_state = "deleted"
    for attempt in (
        lambda: Flavor(
            SELF_MADE_ADMIN, flavorid="f-x", name="x", vcpus=1, memory_mb=1, disk_gb=1
        ).create(),
        lambda: InstanceList.get_all(SELF_MADE_ADMIN),
        lambda: ComputeNodeList.get_all(SELF_MADE_ADMIN),
        lambda: Instance.get_by_uuid(SELF_MADE_ADMIN, instances["h2"].uuid),
        theirs.save,
    ):
        with pytest.raises(PolicyNotAuthorized):
            attempt()
    assert cloud_rows(database) == before


def test_the_api_acts_for_its_context_project_and_an_admin_across(
    cloud: tuple[Cloud, dict[str, Instance]], database: Database
) -> None:
    bus, instances = cloud
    bus.act_as("api", "a1")
    victims = instances["h1"].uuid
    before = cloud_rows(database)
    with pytest.raises(PolicyNotAuthorized):
        Instance.get_by_uuid(ATTACKER, victims)
    stolen = Instance(ATTACKER, uuid=victims, project_id="p-attacker")
    stolen.display_name = "mine now"
    with pytest.raises(PolicyNotAuthorized):
        stolen.save()
    with pytest.raises(PolicyNotAuthorized):
        InstanceList.get_all(ATTACKER, filters={"project_id": "p-victim"})
    with pytest.raises(PolicyNotAuthorized):
        InstanceList.get_all(ATTACKER)  # every project's
    # Its own project's instance may not be handed to another project either.
    own = Instance.get_by_uuid(VICTIM, victims)
    own.project_id = "p-attacker"
    with pytest.raises(PolicyNotAuthorized):
        own.save()
    assert cloud_rows(database) == before

    assert [i.uuid for i in InstanceList.get_all(VICTIM, filters={"project_id": "p-victim"})]
    assert InstanceList.get_all(CTX)  # an admin's request: every project
    assert {node.host for node in ComputeNodeList.get_all(CTX)} >= {"h1", "h2"}


def test_the_scheduler_crosses_hosts(cloud: tuple[Cloud, dict[str, Instance]]) -> None:
    bus, instances = cloud
    bus.act_as("scheduler", "s1")
    assert {node.host for node in ComputeNodeList.get_all(VICTIM)} >= {"h1", "h2"}
    assert Instance.get_by_uuid(VICTIM, instances["h2"].uuid).host == "h2"
    assert ComputeNode.release(VICTIM, "h2", instances["h2"].uuid) is True


def test_every_refusal_is_an_audit_line_naming_sender_action_and_target(
    cloud: tuple[Cloud, dict[str, Instance]], caplog: pytest.LogCaptureFixture
) -> None:
    bus, instances = cloud
    bus.act_as("compute", "h1")
    with caplog.at_level("WARNING", logger="podium.audit"), pytest.raises(PolicyNotAuthorized):
        Instance.get_by_uuid(SELF_MADE_ADMIN, instances["h2"].uuid)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "podium.audit"]
    assert "refused Instance:get_by_uuid for compute.h1" in line
    assert "admin True" in line and "'host': 'h2'" in line


def test_unsigned_requests_pass_the_policy_when_signatures_are_optional(
    bus: Bus, database: Database
) -> None:
    """The upgrade path: services not yet given keys still work (and are counted)."""
    conductor = bus.transport(bus.key(Sender("conductor", "c1")), require=False)
    with (
        in_process_conductor(conductor, database, host="c1"),
        indirection_api_set(None, CloudObject),
    ):
        configure_worker(bus.transport(None, require=False), base=CloudObject, timeout=10)
        made = Instance(SELF_MADE_ADMIN, hostname="vm", host="h9")
        made.create()
        assert InstanceList.get_all(SELF_MADE_ADMIN, filters={"uuid": made.uuid})[0].host == "h9"
    assert conductor.signing is not None
    assert conductor.signing.counts()["unsigned_accepted"] == 2


def test_an_operator_overrides_a_rule_by_name(bus: Bus, database: Database, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('"InstanceList:get_all" = "rule:cross_host or service:compute"\n')
    conductor = bus.transport(bus.key(Sender("conductor", "c1")))
    policy = policy_of([CLOUD_APP], policy_file)
    with (
        in_process_conductor(conductor, database, host="c1", policy=policy),
        indirection_api_set(None, CloudObject),
    ):
        configure_worker(bus.transport(bus.key(COMPUTE)), base=CloudObject, timeout=10)
        assert isinstance(InstanceList.get_all(VICTIM), InstanceList)
        with pytest.raises(PolicyNotAuthorized):
            InstanceList.get_by_host(VICTIM, "h2")  # still the default


def test_a_compute_beats_only_its_own_guests_hearts(
    cloud: tuple[Cloud, dict[str, Instance]],
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The conductor's own endpoints are checked too (rule ``compute_task:guest_heartbeat``)."""
    bus, instances = cloud
    tasks = ComputeTaskAPI(bus.act_as("compute", "h1"))

    def guest_status(host: str) -> Any:
        with database.engine.connect() as connection:
            return connection.execute(
                sa.select(InstanceRow.guest_status).where(InstanceRow.uuid == instances[host].uuid)
            ).scalar_one()

    with caplog.at_level("WARNING", logger="podium.audit"):
        tasks.guest_heartbeat(VICTIM, instances["h2"].uuid, "CRASHED", sent_now())
        tasks.guest_heartbeat(VICTIM, instances["h1"].uuid, "RUNNING", sent_now())
        wait_for(lambda: guest_status("h1") == "RUNNING", "h1's own guest's heartbeat stored")
        wait_for(
            lambda: any("compute_task:guest_heartbeat" in r.getMessage() for r in caplog.records),
            "the refusal of h2's",
        )
    assert guest_status("h2") is None


@pytest.mark.rabbit
@pytest.mark.postgres
def test_a_conductor_process_refuses_a_compute_acting_on_another_host(
    rabbit_url: str, servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`podium conductor` with its key and require_signed: the policy comes with the cloud app."""
    topic = f"conductor-{uuid.uuid4().hex[:8]}"
    database_url = servers.migrated_url("postgresql", "signing")
    database = Database(database_url)
    bus = Bus(rabbit_url, tmp_path)
    private = tmp_path / "private"
    private.mkdir()
    key_file = private / "conductor.c-policy.key"
    key_file.write_bytes(bus.key(Sender("conductor", "c-policy")).private_pem())
    key_file.chmod(0o600)
    for name, value in (
        ("PODIUM_KEY_FILE", str(key_file)),
        ("PODIUM_KEYS_DIR", str(tmp_path)),
        ("PODIUM_REQUIRE_SIGNED", "true"),
    ):
        monkeypatch.setenv(name, value)
    conductor = ConductorProcess(rabbit_url, database_url, topic, "c-policy")
    try:
        with indirection_api_set(None, CloudObject):
            configure_worker(bus.transport(bus.key(API)), base=CloudObject, topic=topic)
            theirs = Instance(CTX, uuid=str(uuid.uuid4()), hostname="vm", host="h2")
            theirs.task_state = "scheduling"
            theirs.create()
            configure_worker(bus.transport(bus.key(COMPUTE)), base=CloudObject, topic=topic)
            before = cloud_rows(database)
            theirs.task_state = "deleting"
            with pytest.raises(
                PolicyNotAuthorized, match=r"compute\.h1 may not call Instance\.save"
            ):
                theirs.save()
            assert cloud_rows(database) == before
    finally:
        log = conductor.stop()
        for transport in bus.made:
            transport.cleanup()
        database.dispose()
    assert "refused Instance:save for compute.h1" in log, log
