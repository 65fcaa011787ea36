"""Signed podium services beside oslo.messaging ones on one RabbitMQ.

oslo.messaging reads the envelope's ``oslo.message`` and ignores the signing
fields beside it: a podium service that signs still talks to oslo peers, and
one that checks signatures without requiring them (an upgrade) serves them.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest
from test_rpc_oslo_interop import (  # the interop suite's fixtures, shared
    CTX,
    Endpoint,
    events,
    oslo_server,
    oslo_transport,
    reply_mode,
)

from podium.exceptions import UnauthenticatedMessage
from podium.rpc import (
    KeyRing,
    MessageSigning,
    RPCClient,
    RPCServer,
    Sender,
    SigningKey,
    Target,
    Transport,
    get_transport,
)

pytestmark = [pytest.mark.rabbit, pytest.mark.interop]

__all__ = ["events", "oslo_server", "oslo_transport", "reply_mode"]  # fixtures in use


def signed_transport(url: str, keys_dir: Path, sender: Sender, require: bool) -> Transport:
    key = SigningKey.generate(sender)
    (keys_dir / f"{sender.name}.pub").write_bytes(key.public_pem())
    return get_transport(
        url, signing=MessageSigning(key, KeyRing(keys_dir), require_signed=require)
    )


@pytest.fixture
def signed_client(rabbit_url: str, reply_mode: str, tmp_path: Path) -> Iterator[Transport]:
    made = signed_transport(
        f"{rabbit_url}?reply={reply_mode}", tmp_path, Sender("compute", "h1"), require=False
    )
    yield made
    made.cleanup()


@pytest.fixture(params=[False, True], ids=["accepting-unsigned", "requiring-signed"])
def signed_server(
    request: pytest.FixtureRequest,
    rabbit_url: str,
    tmp_path: Path,
    topic: str,
    events: queue.Queue[Any],
) -> Iterator[RPCServer]:
    made = signed_transport(rabbit_url, tmp_path, Sender("conductor", "c1"), request.param)
    try:
        with RPCServer(
            made, Target(topic=topic, server="b"), [Endpoint("podium", events)], max_workers=4
        ) as server:
            yield server
    finally:
        made.cleanup()


def test_a_signing_podium_client_calls_and_casts_to_oslo(
    oslo_server: Any, signed_client: Transport, topic: str, events: queue.Queue[Any]
) -> None:
    client = RPCClient(signed_client, Target(topic=topic, server="a"), timeout=20)
    assert client.call(CTX, "echo", value={"k": [1, "two"]}) == {"k": [1, "two"]}
    RPCClient(signed_client, Target(topic=topic)).cast(CTX, "record", value=5)
    assert events.get(timeout=20) == ("oslo", 5)
    assert signed_client.signing is not None
    assert signed_client.signing.counts()["bad_reply"] == 0  # oslo's replies: unsigned, accepted


def test_an_oslo_client_is_served_unless_signatures_are_required(
    oslo_transport: Any, signed_server: RPCServer, topic: str
) -> None:
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=topic, server="b"), timeout=20
    )
    signing = signed_server.transport.signing
    assert signing is not None
    if signing.require_signed:
        with pytest.raises(UnauthenticatedMessage, match="unsigned request"):
            client.call(CTX.to_dict(), "echo", value=1)
        assert signing.counts()["unsigned"] == 1
    else:
        # The reply is signed; oslo reads it all the same.
        assert client.call(CTX.to_dict(), "echo", value=[1, {"a": None}]) == [1, {"a": None}]
        assert signing.counts()["unsigned_accepted"] == 1
