"""The benchmarks still run: the floor suite's stacks each save a few times.

bench/ is not run by the test suite (its suites take minutes), so a change to
what it builds on (a driver's contract, the conductor's command line, how a
server process is started and stopped) would break it unseen. Here the
floor's server, a ``podium conductor`` process and the oslo conductor each
serve a few remote saves, on the real broker and PostgreSQL, and the rows
show them; so does the floor's server in its exactly-once form, whose inbox
records show it recorded each request.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from podium.cloud.objects import CloudObject
from podium.context import RequestContext
from podium.objects.fixture import indirection_api_set

BENCH = Path(__file__).resolve().parent.parent / "bench"
CTX = RequestContext(user_id="bench", project_id="bench")


@pytest.fixture
def bench(
    monkeypatch: pytest.MonkeyPatch, rabbit_url: str, postgres_url: str
) -> Iterator[tuple[ModuleType, ModuleType, ModuleType]]:
    """bench's modules, pointed at the test session's broker and PostgreSQL."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _common
    import bench_conductor
    import bench_floor

    for module in (bench_conductor, bench_floor):
        monkeypatch.setattr(module, "RABBIT_URL", rabbit_url)
    monkeypatch.setattr(_common, "POSTGRES_URL", postgres_url)
    yield _common, bench_conductor, bench_floor


def _task_states(database_url: str, uuids: list[str]) -> list[str]:
    from podium.cloud.models import Instance

    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            table = Instance.__table__
            rows = connection.execute(
                sa.select(table.c.uuid, table.c.task_state).where(table.c.uuid.in_(uuids))
            )
            states = dict(rows.all())
    finally:
        engine.dispose()
    return [states[u] for u in uuids]


# The oslo conductor's client side imports oslo.service, which imports eventlet.
@pytest.mark.interop
@pytest.mark.filterwarnings("ignore:\\s*Eventlet is deprecated")
def test_the_floor_podium_and_oslo_stacks_each_serve_remote_saves(
    bench: tuple[ModuleType, ModuleType, ModuleType],
) -> None:
    common, bench_conductor, bench_floor = bench
    # The floor's recorded body; the last of each stack's own saves.
    expected = {"floor": "floor", "floor+inbox": "floor", "podium": "t2", "oslo": "t2"}
    # podium's stack points CloudObject at its conductor: put back what was there.
    with indirection_api_set(None, CloudObject), common.bench_database() as database_url:
        for name, make in (
            ("floor", bench_floor.floor_stack),
            ("floor+inbox", partial(bench_floor.floor_stack, exactly_once=True)),
            ("podium", bench_conductor.podium_stack),
            ("oslo", bench_conductor.oslo_stack),
        ):
            uuids = bench_conductor.make_rows(database_url, CTX, 2)
            stack = make(database_url, CTX, uuids)
            try:
                rate, latencies = common.run_callers(stack.savers, 3)
            finally:
                stack.close()
            assert rate > 0 and len(latencies) == 6, name
            assert _task_states(database_url, uuids) == [expected[name]] * 2, name
        # The exactly-once floor recorded each of its six requests, with its reply.
        assert _floor_records(database_url) == 6


def _floor_records(database_url: str) -> int:
    from podium.db.models import ConductorInbox

    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            inbox = ConductorInbox.__table__
            return connection.scalar(
                sa.select(sa.func.count()).where(
                    inbox.c.method == "Instance.save", inbox.c.reply.is_not(None)
                )
            )
    finally:
        engine.dispose()
