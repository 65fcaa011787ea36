"""Helpers shared by the benchmark suites."""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

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


def warm_up(calls: list[Callable[[int], object]]) -> None:
    """Run every caller before measuring: connections, pools and code paths warm.

    All of them at once, not one: a stack's client may open a connection per
    concurrent caller (podium's grows a pool of them), 50-100 ms each, and the
    first round with 16 callers would count those openings in its p99.
    """
    run_callers(calls[:1], 30)
    run_callers(calls, 3)


def callers_ready() -> None:
    """Freeze the callers' process heap once every stack is built, as a service does.

    The callers stand for services, and podium's services freeze what their
    start-up built (:func:`podium.service.freeze_heap`). Left unfrozen, a
    full collection walks every stack's imports (oslo's, eventlet's) and stops
    all callers at once for 40-70 ms: the p99 with 16 callers then measured
    this process's garbage collector more than any stack.
    """
    from podium.service import freeze_heap

    freeze_heap()


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


class Interleaved(NamedTuple):
    """One case of :func:`interleaved`: calls/s over all its rounds, every call's
    latency in seconds, and its calls/s in each round."""

    rate: float
    latencies: list[float]
    round_rates: list[float]


def interleaved(
    cases: dict[str, list[Callable[[int], object]]],
    per_caller: int,
    rounds: int = 5,
    cpu: dict[str, CPUAccount] | None = None,
) -> dict[str, Interleaved]:
    """``run_callers`` for several stacks at once, in alternating rounds.

    On a 2-core machine the broker and the database share the CPUs with the
    stacks under test, and their pace drifts during a run; measuring the stacks
    one after the other would hand that drift to whichever came first or last.
    Each round runs every case for ``per_caller / rounds`` calls per caller, the
    order rotating. ``cpu``: per case, the account that counts what its rounds
    cost.
    """
    spent = dict.fromkeys(cases, 0.0)
    done = dict.fromkeys(cases, 0)
    latencies: dict[str, list[float]] = {label: [] for label in cases}
    round_rates: dict[str, list[float]] = {label: [] for label in cases}
    order = list(cases)
    for index in range(rounds):
        share = per_caller // rounds + (1 if index < per_caller % rounds else 0)
        shift = index % len(order)
        for label in order[shift:] + order[:shift]:
            calls = cases[label]
            account = (cpu or {}).get(label)
            with account or contextlib.nullcontext():
                rate, measured = run_callers(calls, share)
            spent[label] += len(calls) * share / rate
            done[label] += len(calls) * share
            latencies[label].extend(measured)
            round_rates[label].append(rate)
    return {
        label: Interleaved(done[label] / spent[label], latencies[label], round_rates[label])
        for label in cases
    }


def ratio_in_rounds(case: Interleaved, base: Interleaved) -> tuple[float, float, float]:
    """``case``'s calls/s over ``base``'s, round by round: (median, lowest, highest).

    Both ran in the same rounds, one just after the other. A stall of the
    machine (a checkpoint's flush, a neighbour's burst) lands on the one round
    and the one stack it hit; over a run's totals it would move the ratio, the
    median of the rounds' ratios it leaves alone. The spread shows how steady
    the machine was.
    """
    ratios = [
        mine / theirs for mine, theirs in zip(case.round_rates, base.round_rates, strict=True)
    ]
    return statistics.median(ratios), min(ratios), max(ratios)


def ratio_text(case: Interleaved, base: Interleaved) -> str:
    """:func:`ratio_in_rounds` as the suites print it: ``0.52x (0.41-0.60)``."""
    middle, low, high = ratio_in_rounds(case, base)
    return f"{middle:.2f}x ({low:.2f}-{high:.2f})"


def percentiles_ms(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


# -- CPU per call, from /proc ----------------------------------------------------


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads, live or ended);
    None once it is gone.

    Read from the process's CPU clock (nanoseconds; Linux lets any process read
    another's): /proc/PID/stat counts in ticks of 10 ms, too coarse for a
    round of a few hundred calls.
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)  # the kernel's CPUCLOCK_SCHED of pid
    except OSError:
        return None


def pids_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (``beam.smp``: the broker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == name:
                    found.append(int(entry))
    return found


class PostgresProcesses:
    """The PostgreSQL server processes that work for one client: the backends of the
    connections named ``application_name``, and the server's own background
    processes (the WAL writer, the checkpointer...), which every commit wakes."""

    def __init__(self) -> None:
        import psycopg

        params = libpq_params(POSTGRES_URL)
        params["application_name"] = "podium-bench-cpu"
        self._connection = psycopg.connect(**params, autocommit=True)

    def pids(self, application_name: str) -> list[int]:
        rows = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " OR backend_type <> 'client backend'",
            (application_name,),
        ).fetchall()
        return [int(pid) for (pid,) in rows]

    def close(self) -> None:
        self._connection.close()


def libpq_params(url: str) -> dict[str, Any]:
    """psycopg.connect() keywords for an SQLAlchemy PostgreSQL URL (its query options kept)."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username,
        "dbname": parsed.database,
        **parsed.query,
    }
    if parsed.password is not None:
        params["password"] = parsed.password
    return {key: value for key, value in params.items() if value is not None}


class CPUAccount:
    """The CPU that named roles (client, server, broker, database) spend while a stack runs.

    ``roles`` maps a role to a function listing its processes' pids, asked
    afresh at each start and stop (a pool may open connections, a database
    backend each, in between). Use it as a context manager around the stack's
    calls; :meth:`per_call_ms` divides by the calls made inside.
    """

    def __init__(self, roles: dict[str, Callable[[], list[int]]]) -> None:
        self.roles = roles
        self.spent = dict.fromkeys(roles, 0.0)
        self._start: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        sample = {}
        for role, pids in self.roles.items():
            seconds = {pid: process_cpu_seconds(pid) for pid in pids()}
            sample[role] = {pid: spent for pid, spent in seconds.items() if spent is not None}
        return sample

    def __enter__(self) -> CPUAccount:
        self._start = self._sample()
        return self

    def __exit__(self, *_exc: object) -> None:
        end = self._sample()
        for role, seconds in end.items():
            before = self._start.get(role, {})
            # A process born meanwhile (a new backend) counts from zero.
            self.spent[role] += sum(spent - before.get(pid, 0.0) for pid, spent in seconds.items())

    def per_call_ms(self, calls: int) -> dict[str, float]:
        return {role: spent * 1000 / calls for role, spent in self.spent.items()}


def make_keys(keys_dir: str, senders: list[Any]) -> None:
    """A private key ``<sender>.key`` for each :class:`~podium.rpc.Sender`, public halves in
    ``keys_dir/pub`` (what ``podium keys create`` writes)."""
    from podium.rpc import SigningKey

    os.makedirs(os.path.join(keys_dir, "pub"), exist_ok=True)
    for sender in senders:
        key = SigningKey.generate(sender)
        private = os.path.join(keys_dir, f"{sender.name}.key")
        with open(os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(key.private_pem())
        with open(os.path.join(keys_dir, "pub", f"{sender.name}.pub"), "wb") as file:
            file.write(key.public_pem())


def bench_signing(keys_dir: str, sender: Any) -> Any:
    """``sender``'s signing (its key made by :func:`make_keys`), requiring signatures from
    the keys in ``keys_dir/pub``."""
    from podium.rpc import KeyRing, MessageSigning, SigningKey

    key = SigningKey.load(os.path.join(keys_dir, f"{sender.name}.key"), sender)
    return MessageSigning(key, KeyRing(os.path.join(keys_dir, "pub")), require_signed=True)
