"""Helpers shared by the benchmark suites."""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pika

POSTGRES_URL = os.environ.get(
    "PODIUM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def delete_queues(url: str, names: list[str]) -> None:
    """Remove the durable queues a benchmark declared (missing ones are fine)."""
    params = pika.URLParameters(url.replace("rabbit://", "amqp://", 1))
    with contextlib.closing(pika.BlockingConnection(params)) as conn:
        for name in names:
            channel = conn.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                channel.queue_delete(name)
            if channel.is_open:
                channel.close()


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """The URL of a fresh, migrated schema on the benchmark's PostgreSQL, dropped after."""
    import sqlalchemy as sa

    from podium.db import Database
    from podium.db.migration import sync

    schema = f"podium_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    text_url = url.render_as_string(hide_password=False)
    try:
        database = Database(text_url)
        sync(database)
        database.dispose()
        yield text_url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_callers(calls: list[Callable[[int], object]], per_caller: int) -> tuple[float, list[float]]:
    """Run each callable ``per_caller`` times in a thread of its own, all started together.

    Returns calls per second over the whole run and every call's latency in seconds.
    """
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(calls) + 1)

    def run(call: Callable[[int], object]) -> None:
        mine = []
        barrier.wait()
        for i in range(per_caller):
            t0 = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(calls) * per_caller / (time.perf_counter() - start), latencies


def interleaved(
    cases: dict[str, list[Callable[[int], object]]], per_caller: int, rounds: int = 5
) -> dict[str, tuple[float, list[float]]]:
    """``run_callers`` for several stacks at once, in alternating rounds.

    On a 2-core machine the broker and the database share the CPUs with the
    stacks under test, and their pace drifts during a run; measuring the stacks
    one after the other would hand that drift to whichever came first or last.
    Each round runs every case for ``per_caller / rounds`` calls per caller, the
    order rotating. Returns per case: calls/s over its rounds, and latencies.
    """
    spent = dict.fromkeys(cases, 0.0)
    done = dict.fromkeys(cases, 0)
    latencies: dict[str, list[float]] = {label: [] for label in cases}
    order = list(cases)
    for index in range(rounds):
        share = per_caller // rounds + (1 if index < per_caller % rounds else 0)
        shift = index % len(order)
        for label in order[shift:] + order[:shift]:
            calls = cases[label]
            rate, measured = run_callers(calls, share)
            spent[label] += len(calls) * share / rate
            done[label] += len(calls) * share
            latencies[label].extend(measured)
    return {label: (done[label] / spent[label], latencies[label]) for label in cases}


def percentiles_ms(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000
