"""Conductor and worker as separate processes, on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from conductor_process import ConductorProcess, conductor_argv

if TYPE_CHECKING:
    from tests.conftest import Servers

from podium.cloud.objects import CloudObject, Instance
from podium.conductor import ConductorAPI, configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.db.migration import sync
from podium.exceptions import PodiumError
from podium.objects.fixture import indirection_api_set
from podium.rpc import get_transport

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

WORKER = Path(__file__).with_name("worker_process.py")


@pytest.fixture
def database_url(servers: Servers) -> str:
    url = servers.new_url("postgresql")
    database = Database(url)
    sync(database)
    database.dispose()
    return url


@pytest.fixture
def topic() -> str:
    return f"conductor-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def conductors(rabbit_url: str, database_url: str, topic: str) -> Iterator[list[ConductorProcess]]:
    started: list[ConductorProcess] = []
    yield started
    for conductor in started:
        conductor.stop(signal.SIGKILL)


def test_worker_without_db_access_works_through_a_conductor_process(
    rabbit_url: str, database_url: str, topic: str, conductors: list[ConductorProcess]
) -> None:
    conductors.append(ConductorProcess(rabbit_url, database_url, topic, "c1"))
    out = subprocess.run(
        [sys.executable, str(WORKER), rabbit_url, database_url, topic],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)

    assert report["fetched_vm_state"] == "active"
    assert report["local_changes_after_save"] == []
    assert report["deleted_visible"] is False
    assert report["live"] == sorted(report["created"][:3])
    assert "podium-compute" in report["db_error"] and "worker_process.py" in report["db_error"]

    rows = _query(
        database_url, "SELECT uuid, vm_state, task_state, deleted FROM instances ORDER BY id"
    )
    expected = [(u, "active", None, 0) for u in report["created"][:3]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows[:3]] == expected
    assert [r[0] for r in rows[3:]] == report["created"][3:]
    assert all(r[3] != 0 and r[1] is None for r in rows[3:])  # soft-deleted, rows kept
    assert len(rows) == 5


def test_sigterm_stops_a_conductor_cleanly_and_says_so(
    rabbit_url: str, database_url: str, topic: str, conductors: list[ConductorProcess]
) -> None:
    conductor = ConductorProcess(rabbit_url, database_url, topic, "c-term", log_level="INFO")
    conductors.append(conductor)
    err = conductor.stop(signal.SIGTERM)
    assert conductor.process.returncode == 0, err
    assert "conductor c-term stopping on SIGTERM" in err
    assert err.rstrip().endswith("conductor c-term stopped")


def test_a_conductor_refuses_an_unmigrated_database(
    rabbit_url: str, servers: Servers, topic: str
) -> None:
    """Started "fine", it would fail every request; it says what to run instead."""
    empty = servers.new_url("postgresql")
    out = subprocess.run(
        conductor_argv(rabbit_url, empty, "c-empty"),
        env=dict(os.environ, PODIUM_CONDUCTOR_TOPIC=topic),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "is behind: podium at none (empty), this code needs podium_0001" in out.stderr
    assert "run `podium db sync`" in out.stderr
    assert "Traceback" not in out.stderr and "ready" not in out.stdout


def test_a_conductor_serves_a_schema_newer_than_its_own_and_says_so(
    rabbit_url: str, database_url: str, topic: str, conductors: list[ConductorProcess]
) -> None:
    _query(
        database_url,
        "UPDATE alembic_version SET version_num = 'podium_0099' "
        "WHERE version_num = 'podium_0001' RETURNING 1",
    )
    conductor = ConductorProcess(rabbit_url, database_url, topic, "c-old", log_level="INFO")
    conductors.append(conductor)
    err = conductor.stop(signal.SIGTERM)
    assert "at schema podium podium_0099, " in err
    assert (
        "database branch podium at podium_0099 is newer than this conductor's podium_0001: "
        "serving it" in err
    )


def test_two_conductors_share_the_load_and_survive_losing_one(
    rabbit_url: str, database_url: str, topic: str, conductors: list[ConductorProcess]
) -> None:
    first = ConductorProcess(rabbit_url, database_url, topic, "c1")
    second = ConductorProcess(rabbit_url, database_url, topic, "c2")
    conductors += [first, second]
    ctx = RequestContext(user_id="load")
    with get_transport(rabbit_url) as transport, indirection_api_set(None, CloudObject):
        api = configure_worker(transport, base=CloudObject, topic=topic, timeout=15)
        assert isinstance(api, ConductorAPI)
        outcomes = _load_while_killing(api, first, ctx)
        served_by_survivor = api.ping(ctx, server="c2")["served"]
    completed = [o for o in outcomes if o == "ok"]
    failed = [o for o in outcomes if o != "ok"]
    assert len(outcomes) == 8 * 40
    # Every call either completed or failed with a podium error that names it.
    assert all(o.startswith(("MessagingTimeout", "TransportError")) for o in failed), failed
    assert len(completed) >= len(outcomes) - 8  # at most the calls in flight on c1
    assert served_by_survivor > 0
    assert _query(database_url, "SELECT count(*) FROM instances")[0][0] >= len(completed)


def _query(database_url: str, sql: str) -> list[sa.Row[Any]]:
    database = Database(database_url)
    try:
        with database.connection() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        database.dispose()


def _load_while_killing(
    api: ConductorAPI, victim: ConductorProcess, ctx: RequestContext
) -> list[str]:
    outcomes: list[str] = []
    lock = threading.Lock()
    started = threading.Barrier(9)
    halfway = threading.Event()

    def caller() -> None:
        started.wait()
        for n in range(40):
            if n == 10:
                halfway.set()
            try:
                Instance(ctx, uuid=str(uuid.uuid4()), hostname=f"load-{n}").create()
                outcome = "ok"
            except PodiumError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait()
    # Both conductors answer before one dies.
    assert api.ping(ctx, server=victim.host)["host"] == victim.host
    halfway.wait(timeout=30)
    victim.stop(signal.SIGKILL)
    for t in threads:
        t.join(timeout=120)
    return outcomes
