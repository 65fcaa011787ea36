"""A worker started before its conductor waits for it, within a bound."""

from __future__ import annotations

import threading
import time

import pytest

from podium.conductor import ConductorService
from podium.conductor.api import ConductorAPI
from podium.context import RequestContext
from podium.db import Database
from podium.exceptions import ConductorError
from podium.rpc import Transport


def test_a_worker_waits_for_a_conductor_that_starts_later(
    transport: Transport, database: Database, ctx: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    conductor = ConductorService(transport, database, host="late-conductor", workers=2)
    starter = threading.Timer(0.6, conductor.start)
    starter.start()
    try:
        began = time.monotonic()
        with caplog.at_level("INFO", logger="podium.conductor.api"):
            answer = ConductorAPI(transport, timeout=10).wait_until_ready(ctx, timeout=30)
        assert answer["host"] == "late-conductor"
        assert 0.5 < time.monotonic() - began < 30
        waiting = [r for r in caplog.records if "waiting up to 30 s" in r.getMessage()]
        assert len(waiting) == 1  # said once, not once per try
    finally:
        starter.join()
        conductor.stop()
        conductor.wait()


def test_no_conductor_within_the_bound_is_one_clear_error(
    transport: Transport, ctx: RequestContext
) -> None:
    with pytest.raises(
        ConductorError, match=r"no conductor answered on topic 'conductor' within 0.5 s"
    ):
        ConductorAPI(transport, timeout=10).wait_until_ready(ctx, timeout=0.5)
