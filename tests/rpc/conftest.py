"""Transports for the RPC suite: every conformance test runs on memory:// and rabbit://."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest
from rpc_helpers import SERVERS, delete_queues

from podium.rpc import Transport, get_transport

# oslo.messaging pulls in eventlet, whose import-time deprecation warning is not
# covered by the project's filters (it is no DeprecationWarning); import it once
# here, quietly, so the interop tests and the codec comparisons can use it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import oslo_messaging  # noqa: F401
    from oslo_messaging._drivers import impl_rabbit  # noqa: F401


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(
    params=[
        "memory",
        pytest.param("rabbit", marks=pytest.mark.rabbit),
        pytest.param("rabbit-reply-queue", marks=pytest.mark.rabbit),
    ]
)
def transport(request: pytest.FixtureRequest, topic: str) -> Iterator[Transport]:
    if request.param == "memory":
        url = f"memory://{uuid.uuid4().hex}"
    else:
        url = request.getfixturevalue("rabbit_url")
    t = get_transport(url + ("?reply=queue" if request.param == "rabbit-reply-queue" else ""))
    try:
        yield t
    finally:
        t.cleanup()
        if request.param != "memory":
            delete_queues(url, [topic, *(f"{topic}.{s}" for s in SERVERS)])


@pytest.fixture
def memory_transport() -> Iterator[Transport]:
    t = get_transport(f"memory://{uuid.uuid4().hex}")
    yield t
    t.cleanup()
