"""Signed messages on memory:// and RabbitMQ: who may be refused, and what still passes."""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pika
import pytest
from rpc_helpers import delete_queues

from podium.context import RequestContext
from podium.exceptions import UnauthenticatedMessage
from podium.rpc import (
    Claim,
    DedupStore,
    KeyRing,
    MemoryBroker,
    MessageSigning,
    RPCClient,
    RPCServer,
    Sender,
    SigningKey,
    Target,
    Transport,
    current_sender,
    get_transport,
)
from podium.rpc import _codec as codec
from polling import wait_for

CTX = RequestContext(user_id="u1", project_id="p1")
COMPUTE = Sender("compute", "h1")
CONDUCTOR = Sender("conductor", "c1")


class Endpoint:
    def __init__(self) -> None:
        self.runs: queue.Queue[Any] = queue.Queue()

    def whoami(self, ctxt: Any) -> str | None:
        sender = current_sender()
        return None if sender is None else sender.name

    def record(self, ctxt: Any, value: Any) -> None:
        self.runs.put((value, current_sender()))


class Keys:
    """Keys made for one test: the trusted ones in a keys directory on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.compute = self.trusted(COMPUTE)
        self.conductor = self.trusted(CONDUCTOR)

    def trusted(self, sender: Sender, **kwargs: Any) -> SigningKey:
        key = SigningKey.generate(sender, **kwargs)
        (self.directory / f"{sender.name}.pub").write_bytes(key.public_pem())
        return key

    def signing(self, key: SigningKey | None, *, require: bool = True) -> MessageSigning:
        return MessageSigning(key, KeyRing(self.directory), require_signed=require)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


class Bus:
    """Transports on one bus (each with its signing), a raw publisher, the dead letters."""

    def __init__(self, kind: str, url: str, topic: str) -> None:
        self.kind = kind
        self.url = url
        self.topic = topic
        self.broker = MemoryBroker()
        self.transports: list[Transport] = []

    def transport(self, signing: MessageSigning | None) -> Transport:
        broker = self.broker if self.kind == "memory" else None
        made = get_transport(self.url, broker=broker, signing=signing)
        self.transports.append(made)
        return made

    def publish(self, body: bytes) -> None:
        """``body`` onto the topic's shared queue, as a peer on the broker could put it."""
        if self.kind == "memory":
            self.broker.bus("sig").publish(f"openstack/{self.topic}", body, must_route=False)
            return
        params = pika.URLParameters(self.url.replace("rabbit://", "amqp://", 1))
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            connection.channel().basic_publish("", self.topic, body)

    def dead_letters(self) -> list[str]:
        """The reasons of the requests set aside so far (taken off the bus)."""
        if self.kind == "memory":
            found = [letter.reason for letter in self.broker.dead_letters("sig")]
            self.broker.bus("sig").dead.clear()
            return found
        reasons = []
        params = pika.URLParameters(self.url.replace("rabbit://", "amqp://", 1))
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            channel = connection.channel()
            while True:
                method, props, _body = channel.basic_get(f"{self.topic}.dead", auto_ack=True)
                if method is None:
                    return reasons
                reasons.append(props.headers["x-podium-reason"])

    def close(self) -> None:
        for made in self.transports:
            made.cleanup()


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.rabbit)])
def bus(request: pytest.FixtureRequest, topic: str) -> Iterator[Bus]:
    if request.param == "memory":
        made = Bus("memory", "memory://sig", topic)
    else:
        made = Bus("rabbit", request.getfixturevalue("rabbit_url"), topic)
    try:
        yield made
    finally:
        made.close()
        if made.kind == "rabbit":
            delete_queues(made.url, [topic, f"{topic}.s", f"{topic}.dead"])


@contextlib.contextmanager
def serving(transport: Transport, topic: str, **kwargs: Any) -> Iterator[Endpoint]:
    endpoint = Endpoint()
    with RPCServer(transport, Target(topic=topic, server="s"), [endpoint], **kwargs):
        yield endpoint


def dead_letter(bus: Bus) -> str:
    found: list[str] = []

    def some() -> list[str]:
        found.extend(bus.dead_letters())
        return found

    return wait_for(some, "a request set aside")[0]


def test_a_signed_call_runs_and_the_endpoint_knows_who_signed_it(bus: Bus, keys: Keys) -> None:
    server = bus.transport(keys.signing(keys.conductor))
    client = bus.transport(keys.signing(keys.compute))
    with serving(server, bus.topic) as endpoint:
        assert RPCClient(client, Target(topic=bus.topic), timeout=10).call(CTX, "whoami") == (
            "compute.h1"
        )
        to_s = RPCClient(client, Target(topic=bus.topic, server="s"), timeout=10)
        assert to_s.call(CTX, "whoami") == "compute.h1"
        RPCClient(client, Target(topic=bus.topic)).cast(CTX, "record", value=1)
        assert endpoint.runs.get(timeout=10) == (1, COMPUTE)
        RPCClient(client, Target(topic=bus.topic, fanout=True)).cast(CTX, "record", value=2)
        assert endpoint.runs.get(timeout=10) == (2, COMPUTE)
    assert server.signing is not None
    assert server.signing.counts()["signed"] == 4


@pytest.mark.parametrize("kind", ["forged", "unknown", "stale", "ahead", "unsigned"])
def test_a_request_without_a_good_signature_is_refused_unrun(
    bus: Bus, keys: Keys, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    if kind == "forged":  # a key of its own, claiming to be compute.h1
        key: SigningKey | None = SigningKey.generate(COMPUTE)
        count, reason = "bad_signature", "does not match compute.h1's key"
    elif kind == "unknown":
        key = SigningKey.generate(Sender("compute", "h9"))
        count, reason = "unknown_key", "compute.h9, whose key is not trusted here"
    elif kind in ("stale", "ahead"):
        skew = (-1 if kind == "stale" else 1) * 120 * 10**9
        key = keys.trusted(Sender("compute", "h2"), clock=lambda: time.time_ns() + skew)
        count = "stale"
        reason = "sent 120 s ago" if kind == "stale" else "sent 120 s ahead"
    else:
        key, count, reason = None, "unsigned", "unsigned request"
    server = bus.transport(keys.signing(keys.conductor))
    sender = bus.transport(MessageSigning(key) if key is not None else None)
    with serving(server, bus.topic) as endpoint:
        with pytest.raises(UnauthenticatedMessage, match=reason):
            RPCClient(sender, Target(topic=bus.topic), timeout=10).call(CTX, "whoami")
        RPCClient(sender, Target(topic=bus.topic)).cast(CTX, "record", value="x")
        assert reason in dead_letter(bus)
        # Still serving, the signed ones.
        good = bus.transport(keys.signing(keys.compute))
        assert RPCClient(good, Target(topic=bus.topic), timeout=10).call(CTX, "whoami")
    assert endpoint.runs.empty()
    assert server.signing is not None
    counts = server.signing.counts()
    assert counts[count] == 2
    assert counts["signed"] == 1
    # Each refusal told once, by the server: the call's and the cast's.
    told = [r for r in caplog.records if reason in r.getMessage() and r.name.startswith("podium")]
    assert len(told) == 2, [r.getMessage() for r in told]


def test_unsigned_requests_pass_and_are_counted_when_signatures_are_not_required(
    bus: Bus, keys: Keys
) -> None:
    server = bus.transport(keys.signing(keys.conductor, require=False))
    unsigned = bus.transport(None)
    signed = bus.transport(keys.signing(keys.compute))
    with serving(server, bus.topic):
        assert RPCClient(unsigned, Target(topic=bus.topic), timeout=10).call(CTX, "whoami") is None
        assert RPCClient(signed, Target(topic=bus.topic), timeout=10).call(CTX, "whoami") == (
            "compute.h1"
        )
        forged = bus.transport(MessageSigning(SigningKey.generate(COMPUTE)))
        with pytest.raises(UnauthenticatedMessage, match="does not match"):
            RPCClient(forged, Target(topic=bus.topic), timeout=10).call(CTX, "whoami")
    assert server.signing is not None
    counts = server.signing.counts()
    assert (counts["unsigned_accepted"], counts["signed"], counts["bad_signature"]) == (1, 1, 1)


def signed_cast(key: SigningKey, destination: str, value: Any) -> bytes:
    """A cast as RPCClient sends it, sealed by ``key`` for ``destination`` (topic[.server])."""
    message: dict[str, Any] = {"method": "record", "args": {"value": value}, "version": "1.0"}
    codec.pack_context(message, CTX.to_dict())
    message[codec.UNIQUE_ID] = uuid.uuid4().hex
    message[codec.DESTINATION] = destination
    return codec.encode(message, key)


def test_a_copy_of_a_signed_request_is_not_run_again(bus: Bus, keys: Keys) -> None:
    server = bus.transport(keys.signing(keys.conductor))
    captured = signed_cast(keys.compute, bus.topic, "once")
    with serving(server, bus.topic) as endpoint:
        bus.publish(captured)
        assert endpoint.runs.get(timeout=10) == ("once", COMPUTE)
        bus.publish(captured)  # replayed by whoever read it on the broker
        assert server.signing is not None
        wait_for(lambda: server.signing and server.signing.counts()["replayed"], "the copy")
    assert endpoint.runs.empty()


def respelt(body: bytes) -> bytes:
    """``body`` with its signature written otherwise in base64: other text, the same bytes."""
    outer = orjson.loads(body)
    text = outer[codec.SIGNATURE_KEY]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # The last character before the padding carries bits nobody reads.
    last = alphabet[alphabet.index(text[-3]) ^ 1]
    outer[codec.SIGNATURE_KEY] = text[:-3] + last + text[-2:]
    assert outer[codec.SIGNATURE_KEY] != text
    return orjson.dumps(outer)


class Forgetful(DedupStore):
    """A de-dup store that remembers nothing: as if every id had been pushed out."""

    def claim(self, unique_id: str, owner: str) -> Claim:
        return Claim("new")

    def done(self, unique_id: str, owner: str, reply: dict[str, Any] | None) -> None:
        pass

    def release(self, unique_id: str, owner: str) -> None:
        pass


@pytest.mark.parametrize("copy", ["as captured", "respelt"])
def test_a_copy_the_de_dup_memory_forgot_is_refused_within_the_window(
    bus: Bus, keys: Keys, copy: str
) -> None:
    server = bus.transport(keys.signing(keys.conductor))
    captured = signed_cast(keys.compute, bus.topic, "first")
    with serving(server, bus.topic, dedup=Forgetful()) as endpoint:
        bus.publish(captured)
        assert endpoint.runs.get(timeout=10)[0] == "first"
        bus.publish(captured if copy == "as captured" else respelt(captured))
        assert "already run" in dead_letter(bus)
    assert endpoint.runs.empty()
    assert server.signing is not None
    assert server.signing.counts()["replayed"] == 1


def test_a_signed_request_moved_to_another_queue_is_refused(bus: Bus, keys: Keys) -> None:
    """Signed for compute.h2's queue (say), put on this server's: not for it."""
    server = bus.transport(keys.signing(keys.conductor))
    with serving(server, bus.topic) as endpoint:
        bus.publish(signed_cast(keys.compute, f"{bus.topic}.other", "moved"))
        assert f"signed for '{bus.topic}.other', not for {bus.topic}" in dead_letter(bus)
    assert endpoint.runs.empty()
    assert server.signing is not None
    assert server.signing.counts()["misrouted"] == 1


def test_a_signed_message_changed_on_the_way_is_refused(bus: Bus, keys: Keys) -> None:
    server = bus.transport(keys.signing(keys.conductor))
    outer = orjson.loads(signed_cast(keys.compute, bus.topic, "pay 1"))
    outer[codec.MESSAGE_KEY] = outer[codec.MESSAGE_KEY].replace("pay 1", "pay 9")
    with serving(server, bus.topic) as endpoint:
        bus.publish(orjson.dumps(outer))
        assert "does not match compute.h1's key" in dead_letter(bus)
    assert endpoint.runs.empty()


def test_the_signing_fields_cannot_be_smuggled_inside_the_message(bus: Bus, keys: Keys) -> None:
    """Only the envelope's fields are read: a seal written into oslo.message is dropped."""
    server = bus.transport(keys.signing(keys.conductor))
    message: dict[str, Any] = {"method": "record", "args": {"value": 1}}
    message[codec.SEAL] = ["compute.h1", 0, "c2lnbmF0dXJl", "{}"]
    message[codec.UNIQUE_ID] = uuid.uuid4().hex
    with serving(server, bus.topic) as endpoint:
        bus.publish(codec.encode(message))
        assert "unsigned request" in dead_letter(bus)
    assert endpoint.runs.empty()


def test_replies_are_signed_and_checked_by_callers_that_have_the_keys(
    bus: Bus, keys: Keys, tmp_path: Path
) -> None:
    signed_server = bus.transport(keys.signing(keys.conductor))
    client = bus.transport(keys.signing(keys.compute))
    with serving(signed_server, bus.topic):
        assert RPCClient(client, Target(topic=bus.topic), timeout=10).call(CTX, "whoami")
    # A server whose key the caller does not trust: its reply is refused.
    stranger = bus.transport(
        MessageSigning(
            SigningKey.generate(Sender("conductor", "c9")),
            KeyRing(keys.directory),
            require_signed=True,
        )
    )
    with (
        serving(stranger, bus.topic),
        pytest.raises(UnauthenticatedMessage, match=r"reply refused: .*conductor\.c9"),
    ):
        RPCClient(client, Target(topic=bus.topic), timeout=10).call(CTX, "whoami")
    assert client.signing is not None
    assert client.signing.counts()["bad_reply"] == 1


def test_with_signing_off_the_envelope_is_oslo_messagings() -> None:
    body = codec.encode({"method": "m", "args": {}})
    assert set(orjson.loads(body)) == {"oslo.version", "oslo.message"}
    key = SigningKey.generate(COMPUTE)
    sealed = orjson.loads(codec.encode({"method": "m", "args": {}}, key))
    assert set(sealed) == {
        "oslo.version",
        "oslo.message",
        "podium.sender",
        "podium.sent_at",
        "podium.signature",
    }
    assert sealed["oslo.message"] == orjson.loads(body)["oslo.message"]
