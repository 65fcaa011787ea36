"""AMQP over TLS (rabbits://) on the suite's own RabbitMQ node, with certificates of a
certificate authority the session made: the node verifies clients, clients verify the node."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import trustme
from faults_node import RabbitNode, TlsFiles

from podium.exceptions import MessagingError, TransportError
from podium.rpc import RPCClient, RPCServer, Target, TransportURL, get_transport
from podium.rpc._rabbit import tls_context

pytestmark = pytest.mark.faults


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.fixture
def client_files(tls_authority: tuple[trustme.CA, TlsFiles], tmp_path: Path) -> dict[str, str]:
    """A client certificate and key of the session's authority, and that authority."""
    ca, files = tls_authority
    issued = ca.issue_cert("podium-test-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return {"ca_certs": str(files.ca), "certfile": str(cert), "keyfile": str(key)}


def tls_url(node: RabbitNode, options: dict[str, str], host: str = "127.0.0.1") -> str:
    return f"rabbits://guest:guest@{host}:{node.tls_port}/?{urlencode(options)}"


@contextlib.contextmanager
def served(url: str, topic: str) -> Iterator[RPCClient]:
    with (
        get_transport(url) as transport,
        RPCServer(transport, Target(topic=topic), [Echo()], max_workers=1),
    ):
        yield RPCClient(transport, Target(topic=topic), timeout=20)


def test_calls_travel_over_tls_with_both_sides_verified(
    broker: RabbitNode, client_files: dict[str, str], topic: str
) -> None:
    with served(tls_url(broker, client_files), topic) as client:
        assert client.call({}, "echo", value="sealed") == "sealed"
    # The TLS port takes nothing else: plain AMQP there gets no broker.
    plain_url = f"rabbit://guest:guest@127.0.0.1:{broker.tls_port}/"
    with get_transport(plain_url) as plain, pytest.raises(TransportError, match="cannot connect"):
        plain.connect(timeout=3)


def test_a_node_certificate_of_another_authority_is_refused_at_once(
    broker: RabbitNode, client_files: dict[str, str], tmp_path: Path
) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    options = {**client_files, "ca_certs": str(stranger)}
    with get_transport(tls_url(broker, options)) as transport:
        began = time.monotonic()
        with pytest.raises(
            TransportError, match="the broker's certificate does not verify: self-signed"
        ) as info:
            transport.connect(timeout=30)
    # Not retried until the connect timeout: another try cannot make it valid.
    assert time.monotonic() - began < 15
    assert "guest:guest" not in str(info.value)


def test_a_client_without_a_certificate_is_refused_by_the_node(
    broker: RabbitNode, client_files: dict[str, str]
) -> None:
    options = {"ca_certs": client_files["ca_certs"]}
    with get_transport(tls_url(broker, options)) as transport:
        began = time.monotonic()
        with pytest.raises(
            TransportError,
            match=r"refused this client's certificate \(or its absence\): \w+CERTIFICATE_REQUIRED",
        ):
            transport.connect(timeout=30)
    assert time.monotonic() - began < 15


def test_the_broker_certificate_is_checked_against_its_host_name() -> None:
    context = tls_context(TransportURL.parse("rabbits://guest:guest@broker.example:5671/"))
    assert context is not None
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "rabbit://h/?ca_certs=/tmp/ca.pem",
            "ca_certs set on a rabbit:// URL: TLS needs rabbits://",
        ),
        ("rabbits://h/?keyfile=/tmp/k.pem", "keyfile= needs certfile="),
        ("rabbits://h/?ca_certs=/nonexistent/ca.pem", "rabbits:// TLS settings"),
        ("rabbits://h/?certfile=/nonexistent/c.pem", "rabbits:// TLS settings"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_when_the_transport_is_made(
    url: str, message: str
) -> None:
    with pytest.raises(MessagingError, match=message):
        get_transport(url)
