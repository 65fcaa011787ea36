"""Pieces of podium.rpc that need no transport: target, URL, codec, versions, public API."""

from __future__ import annotations

import json
import logging

import orjson
import pytest
from oslo_messaging._drivers import common as oslo_common

import podium.rpc
from podium.exceptions import (
    IncompatibleObjectVersion,
    InvalidTarget,
    InvalidTransportURL,
    MalformedMessage,
    NotFound,
    RemoteError,
    TransportError,
    UnsupportedVersion,
)
from podium.rpc import RPCClient, RPCServer, Target, TransportURL, get_transport
from podium.rpc import _codec as codec


def test_public_api_is_curated() -> None:
    assert podium.rpc.__all__ == sorted(podium.rpc.__all__)
    assert set(podium.rpc.__all__) == {
        "Authorize",
        "Claim",
        "DeadLetter",
        "DedupStore",
        "KeyRing",
        "MemoryBroker",
        "MemoryDedupStore",
        "MessageSigning",
        "NoOpSerializer",
        "RPCClient",
        "RPCDispatcher",
        "RPCServer",
        "RedisDedupStore",
        "Sender",
        "Serializer",
        "SigningKey",
        "Target",
        "Transport",
        "TransportURL",
        "current_message_id",
        "current_sender",
        "get_transport",
    }
    # (pytest adds "@py_builtins" and "@pytest_ar" to the modules it rewrites.)
    public = {name for name in vars(podium.rpc) if name.isidentifier() and name[0] != "_"}
    assert public == set(podium.rpc.__all__)


def test_a_broker_of_its_own_isolates_a_transport_and_is_only_for_memory() -> None:
    from podium.exceptions import InvalidTransportURL, NoConsumer
    from podium.rpc import MemoryBroker, RPCServer

    class Echo:
        def echo(self, ctxt: object, value: object) -> object:
            return value

    own = MemoryBroker()
    with (
        get_transport("memory://", broker=own) as isolated,
        get_transport("memory://") as shared,
        RPCServer(isolated, Target(topic="iso"), [Echo()]),
    ):
        assert RPCClient(isolated, Target(topic="iso"), timeout=5).call({}, "echo", value=1) == 1
        with pytest.raises(NoConsumer):
            RPCClient(shared, Target(topic="iso"), timeout=5).call({}, "echo", value=1)
    with pytest.raises(InvalidTransportURL, match="broker= is for memory://"):
        get_transport("rabbit://guest:guest@127.0.0.1:5672/", broker=own)


def test_target_validates_and_copies() -> None:
    target = Target(topic="compute", version="1.2")
    moved = target(server="host-3")
    assert (moved.topic, moved.server, moved.version) == ("compute", "host-3", "1.2")
    assert target.server is None
    with pytest.raises(InvalidTarget):
        Target(topic="x", version="one")
    with pytest.raises(InvalidTarget):
        Target(topic="")


def test_transport_url_with_failover_hosts() -> None:
    url = TransportURL.parse("rabbit://u1:p%40ss@h1:5673,u2:p2@h2/vh?heartbeat=10")
    assert url.scheme == "rabbit"
    assert [(h.hostname, h.port, h.username, h.password) for h in url.hosts] == [
        ("h1", 5673, "u1", "p@ss"),
        ("h2", None, "u2", "p2"),
    ]
    assert url.virtual_host == "vh"
    assert url.query == {"heartbeat": "10"}


def test_bad_transport_urls() -> None:
    with pytest.raises(InvalidTransportURL):
        get_transport("nonsense")
    with pytest.raises(InvalidTransportURL):
        get_transport("kafka://host/")
    with pytest.raises(InvalidTransportURL):
        TransportURL.parse("rabbit://h:notaport/")


def test_envelope_matches_oslo_messaging() -> None:
    message = {"method": "m", "args": {"x": [1, "ü"]}, "_context_user": "u", "_unique_id": "1"}
    body = codec.encode(message)
    outer = json.loads(body)
    assert outer.keys() == {"oslo.version", "oslo.message"}
    assert outer["oslo.version"] == "2.0"
    assert oslo_common.deserialize_msg(outer) == message
    assert codec.decode(json.dumps(oslo_common.serialize_msg(message))) == message


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "envelope version"),
        (b'{"oslo.version": "2.0", "oslo.message": "{nope"}', "not JSON"),
        (b'{"oslo.version": "2.0", "oslo.message": 5}', "not a string"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        codec.decode(body)


def test_oversized_body_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        codec.decode(b"{}" + b" " * 100, max_bytes=50)


def test_context_is_flattened_like_oslo() -> None:
    message: dict[str, object] = {"method": "m"}
    codec.pack_context(message, {"user_id": "u", "roles": ["a"]})
    assert message == {"method": "m", "_context_user_id": "u", "_context_roles": ["a"]}
    assert codec.unpack_context(message) == {"user_id": "u", "roles": ["a"]}
    assert message == {"method": "m"}


@pytest.mark.parametrize(
    ("imp", "wanted", "ok"),
    [
        ("1.3", "1.0", True),
        ("1.3", "1.3", True),
        ("1.3", "1.4", False),
        ("1.3", "2.0", False),
        ("2.0", "1.9", False),
        ("1.3.2", "1.3.1", True),
        ("1.3.0", "1.3.1", False),
        (None, "9.9", True),
        ("1.0", None, False),
    ],
)
def test_version_compatibility(imp: str | None, wanted: str | None, ok: bool) -> None:
    assert codec.version_is_compatible(imp, wanted) is ok


def test_remote_exception_format_is_oslos() -> None:
    try:
        raise NotFound("gone")
    except NotFound as exc:
        ours = orjson.loads(codec.serialize_remote_exception(exc))
        theirs = json.loads(
            oslo_common.serialize_remote_exception((type(exc), exc, exc.__traceback__))
        )
    assert ours == theirs


def test_exception_with_its_own_constructor_rebuilds() -> None:
    exc = IncompatibleObjectVersion("Instance", "1.9", "1.3")
    rebuilt = codec.deserialize_remote_exception(
        codec.serialize_remote_exception(exc), ["podium.exceptions"]
    )
    assert type(rebuilt) is IncompatibleObjectVersion
    assert (rebuilt.objname, rebuilt.objver, rebuilt.supported) == ("Instance", "1.9", "1.3")


def test_exception_outside_allow_list_or_unbuildable_is_remote_error() -> None:
    data = orjson.dumps(
        {"class": "Boom", "module": "os", "message": "m", "tb": ["t1\n"], "args": []}
    ).decode()
    err = codec.deserialize_remote_exception(data, ["podium.exceptions"])
    assert isinstance(err, RemoteError) and err.exc_type == "Boom" and err.traceback == "t1\n"
    # Allowed module, but the class is not an exception: never instantiate it.
    data = orjson.dumps({"class": "path", "module": "os", "message": "m"}).decode()
    assert isinstance(codec.deserialize_remote_exception(data, ["os"]), RemoteError)
    assert isinstance(codec.deserialize_remote_exception("not json", []), RemoteError)


def test_version_cap(memory_transport: podium.rpc.Transport) -> None:
    client = RPCClient(memory_transport, Target(topic="t", version="1.5"), version_cap="1.4")
    assert client.can_send_version("1.4")
    assert not client.can_send_version()
    assert not client.can_send_version("2.0")
    with pytest.raises(UnsupportedVersion, match=r"cap 1\.4"):
        client.call({}, "m")
    assert client.prepare(version="1.2").can_send_version()
    assert RPCClient(memory_transport, Target(topic="t")).can_send_version("7.0")


def test_malformed_memory_message_does_not_stop_the_server(
    memory_transport: podium.rpc.Transport,
) -> None:
    from podium.rpc import RPCServer
    from podium.rpc._memory import MemoryDriver

    class Echo:
        def echo(self, ctxt: object, value: object) -> object:
            return value

    with RPCServer(memory_transport, Target(topic="g", server="a"), [Echo()]):
        driver = memory_transport.driver
        assert isinstance(driver, MemoryDriver)
        driver.bus.publish("openstack/g", b"\x00garbage", must_route=False)
        driver.bus.publish("openstack/g", codec.encode({"no": "method"}), must_route=False)
        assert RPCClient(memory_transport, Target(topic="g")).call({}, "echo", value=3) == 3


def test_the_example_in_the_docs_runs() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "rpc.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})


def test_transport_url_errors_and_logs_never_show_passwords() -> None:
    from podium.exceptions import InvalidTransportURL
    from podium.rpc import TransportURL, get_transport

    url = "rabbit://u1:s3cret@h1:5672,u2:t0psecret@h2:5672/vh"
    assert TransportURL.masked(url) == "rabbit://u1:***@h1:5672,u2:***@h2:5672/vh"
    for bad in ("kafka://u:s3cret@h", "rabbit://u:s3cret@h:notaport/"):
        with pytest.raises(InvalidTransportURL) as failure:
            get_transport(bad)
        # The first is named masked; the second is not quoted at all (tests/test_url_secrets.py).
        assert "s3cret" not in str(failure.value)


def test_an_unreachable_broker_is_named_with_its_reason_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pika's connection errors print as ''; a server's workers all fail at once."""
    transport = get_transport("rabbit://guest:guest@127.0.0.1:1/?connect_retries=2")
    try:
        server = RPCServer(transport, Target(topic="t", server="a"), [object()], max_workers=4)
        with caplog.at_level(logging.DEBUG, logger="podium.rpc"):
            with pytest.raises(TransportError) as raised:
                server.start()
            with pytest.raises(TransportError) as raised_on_caller:
                RPCClient(transport, Target(topic="t"), retry=0).call({}, "echo")
    finally:
        transport.cleanup()
    assert str(raised.value).endswith(  # connect_retries=2
        "RabbitMQ at 127.0.0.1:1/: Connection refused; 3 attempts (gave up: retry=2)"
    )
    assert str(raised_on_caller.value).endswith(
        "RabbitMQ at 127.0.0.1:1/: Connection refused; 1 attempt (gave up: retry=0)"
    )
    reports = [r for r in caplog.records if "not consuming from RabbitMQ" in r.getMessage()]
    assert len(reports) == 4 * 2  # every worker, every retry
    warned = [r for r in reports if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert "127.0.0.1:1/ (Connection refused); retrying" in warned[0].getMessage()


def test_backoff_doubles_from_the_first_delay_up_to_the_cap_with_jitter() -> None:
    from podium.rpc._backoff import FIRST_DELAY, backoff_delay

    for attempt in range(1, 8):
        nominal = FIRST_DELAY * 2 ** (attempt - 1)
        delays = [backoff_delay(attempt, max_delay=5.0) for _ in range(200)]
        assert all(min(5.0, 0.8 * nominal) <= d <= min(5.0, 1.2 * nominal) for d in delays)
        if nominal * 1.2 < 5.0:
            assert len(set(delays)) > 1  # spread, not in step
    assert backoff_delay(1000, max_delay=5.0) == 5.0
