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

from podium.cloud.models import Instance as InstanceRow
from podium.cloud.objects import CloudObject, Instance
from podium.conductor import configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.exceptions import UnauthenticatedMessage
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
