"""The benchmarks still run: the floor suite's stacks each save a few times.

bench/ is not run by the test suite (its suites take minutes), so a change to
what it builds on (a driver's contract, the conductor's command line, how a
server process is started and stopped) would break it unseen. Here the
floor's server, a ``podium conductor`` process and the oslo conductor each
serve a few remote saves, on the real broker and PostgreSQL, and the rows
show them; so does the floor's server in its exactly-once form, whose inbox
records show it recorded each request. The helpers that turn the suites'
rounds into ratios are checked on made-up rates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def test_a_stalled_round_does_not_move_the_median_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    # Rates per round, as interleaved() records them: "b" always half of "a",
    # but one round of "a" stalled to a tenth of its pace.
    a = _common.Interleaved(0.0, [], [100.0, 100.0, 10.0, 100.0, 100.0])
    b = _common.Interleaved(0.0, [], [50.0, 50.0, 50.0, 50.0, 50.0])
    assert _common.ratio_in_rounds(b, a) == (0.5, 0.5, 5.0)

    def over_all_rounds(rates: list[float]) -> float:  # the same calls in each round
        return len(rates) / sum(1 / rate for rate in rates)

    # The ratio of the totals: the one stall turned "b" from half "a" into more.
    assert over_all_rounds(b.round_rates) / over_all_rounds(a.round_rates) == pytest.approx(1.4)


def test_interleaved_measures_every_case_in_every_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    calls: dict[str, int] = {"a": 0, "b": 0}

    def caller(name: str) -> Callable[[int], None]:
        def call(_i: int) -> None:
            calls[name] += 1

        return call

    measured = _common.interleaved({n: [caller(n), caller(n)] for n in calls}, 12, rounds=4)
    assert calls == {"a": 24, "b": 24}  # 2 callers x 12, spread over the rounds
    for each in measured.values():
        assert len(each.round_rates) == 4 and all(rate > 0 for rate in each.round_rates)
        assert len(each.latencies) == 24 and each.rate > 0
