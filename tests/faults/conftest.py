"""The faults suite's own RabbitMQ node, which its tests stop, kill and freeze.

The machine's broker (127.0.0.1:5672) is shared with everyone else's tests:
nothing here touches it. ``rabbit_node`` starts a second node from the
installed RabbitMQ, on free ports, with its data, logs, Erlang cookie and
(empty) plugin list under a temporary directory, and stops it at the end of
the session. Under ``CI=true`` a machine without RabbitMQ fails these tests
instead of skipping them, like ``require_service`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import trustme
from faults_node import RabbitNode, TlsFiles, find_server_script, reap_orphaned_nodes


def _absent(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the faults suite must run)", pytrace=False)
    pytest.skip(f"{reason}; install RabbitMQ to run the faults suite")


@pytest.fixture(scope="session")
def tls_authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, TlsFiles]:
    """A certificate authority of the session's own, and the node's certificate from it."""
    ca = trustme.CA()
    where = tmp_path_factory.mktemp("tls")
    node_cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(where / "ca.pem", where / "node.pem", where / "node.key")
    ca.cert_pem.write_to_path(str(files.ca))
    node_cert.cert_chain_pems[0].write_to_path(str(files.cert))
    node_cert.private_key_pem.write_to_path(str(files.key))
    for path in (files.cert, files.key):
        path.chmod(0o644)  # read by the node, which may run as another user
    return ca, files


@pytest.fixture(scope="session")
def rabbit_node(
    tmp_path_factory: pytest.TempPathFactory, tls_authority: tuple[trustme.CA, TlsFiles]
) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for the session; its URL is ``rabbit_node.url``, and it
    takes AMQP over TLS on ``rabbit_node.tls_port`` (certificates of ``tls_authority``)."""
    script = find_server_script()
    if script is None:
        _absent("rabbitmq-server is not installed")
        raise AssertionError("unreachable")
    if not script.with_name("rabbitmqctl").exists():
        _absent(f"rabbitmqctl is missing beside {script}")
    reap_orphaned_nodes()
    node = RabbitNode(tmp_path_factory.mktemp("rabbit-node"), script, tls=tls_authority[1])
    try:
        took = node.start()
        print(f"\nFAULTS private RabbitMQ node {node.name} on port {node.port}: up in {took:.1f}s")
        yield node
    finally:
        node.close()
        if node.startups:
            print(
                f"\nFAULTS private RabbitMQ node: {len(node.startups)} starts, first "
                f"{node.startups[0]:.1f}s, slowest {max(node.startups):.1f}s"
            )


@pytest.fixture
def broker(rabbit_node: RabbitNode) -> Iterator[RabbitNode]:
    """The private node, running and thawed when a test starts, thawed when it ends."""
    rabbit_node.ensure_running()
    try:
        yield rabbit_node
    finally:
        rabbit_node.thaw()


@pytest.fixture
def topic() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"
