"""``connect_timeout``: the first reach for the broker is bounded, and quiet until it fails."""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from podium.exceptions import TransportError
from podium.rpc import get_transport


def test_an_in_process_bus_has_nothing_to_reach() -> None:
    with get_transport(f"memory://{uuid.uuid4().hex}") as transport:
        transport.connect(0.01)


def test_an_unreachable_broker_fails_within_the_timeout_in_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with get_transport("rabbit://guest:S3cret@127.0.0.1:1/") as transport:
        began = time.monotonic()
        with pytest.raises(TransportError) as raised:
            transport.connect(1.0)
        took = time.monotonic() - began
    assert 0.9 <= took < 2.5
    message = str(raised.value)
    assert "127.0.0.1:1/" in message and "Connection refused" in message
    assert "connect_timeout" in message and "S3cret" not in message
    # Tried several times, said nothing until it gave up (pika's own chatter
    # is silenced by the services' logging set-up).
    said = [r for r in caplog.records if r.name.startswith("podium") and r.levelno >= logging.INFO]
    assert said == []


@pytest.mark.rabbit
def test_a_reachable_broker_is_reached_and_the_connection_kept(rabbit_url: str) -> None:
    with get_transport(rabbit_url) as transport:
        began = time.monotonic()
        transport.connect(5.0)
        assert time.monotonic() - began < 5.0
        assert len(transport.driver.pool._idle) == 1  # type: ignore[attr-defined]


@pytest.mark.rabbit
def test_wrong_credentials_fail_at_once(rabbit_url: str) -> None:
    parts = urlsplit(rabbit_url)
    wrong = urlunsplit(
        parts._replace(
            netloc=f"guest:wrong-{uuid.uuid4().hex[:6]}@{parts.hostname}:{parts.port or 5672}"
        )
    )
    with get_transport(wrong) as transport:
        began = time.monotonic()
        with pytest.raises(TransportError) as raised:
            transport.connect(30.0)
        assert time.monotonic() - began < 10.0
    assert "wrong-" not in str(raised.value)
