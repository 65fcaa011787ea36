"""How many compute hosts one conductor serves: heartbeats, resources and instance saves.

A load generator simulates N compute hosts, many per process (the hosts of a
process share its rabbit:// connection, as the threads of one service do):
each host reports its service heartbeat (``Service.report``) and its
resources (``ComputeNode.report``) every 10 s, and saves a state change of
its instance (``instance.save()``) at a set rate, all as real RPC calls to
``podium conductor`` processes on PostgreSQL. The first round of heartbeats
creates the hosts' rows and is not measured; then, for a window, each call's
time is taken from the moment it was due (so a generator that fell behind
counts against the figure too).

A level passes when every heartbeat and resource report was stored within
1 s of being due, the p99 of the saves is under 20 ms and no call failed.
Levels go up until one fails, with 1 conductor process, then 2. Beside each:
the conductors' CPU (100% = one core) and RSS, and how busy the machine's
CPUs were.

    python bench/run.py scale
    PODIUM_BENCH_QUICK=1 python bench/run.py scale          # 1,000 hosts only, short windows
    PODIUM_BENCH_SCALE_HOSTS=500,1000,2000 python bench/run.py scale

Knobs: PODIUM_BENCH_SCALE_HOSTS (levels), PODIUM_BENCH_SCALE_CONDUCTORS
(``1,2``), PODIUM_BENCH_CONDUCTOR_WORKERS (each conductor's ``--workers``, 4),
PODIUM_BENCH_SCALE_SAVES (instance saves per second per host, 0.1),
PODIUM_BENCH_SCALE_WINDOW (measured seconds per level), PODIUM_BENCH_SCALE_PROCESSES
(load generator processes).
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from _common import (
    CPUAccount,
    bench_database,
    delete_queues,
    percentiles_ms,
    pids_named,
    process_cpu_seconds,
)
from bench_conductor import CONDUCTOR_WORKERS, RABBIT_URL, spawn_server, stop_server

SPAWN = multiprocessing.get_context("spawn")
QUICK = os.environ.get("PODIUM_BENCH_QUICK", "") not in ("", "0")
LEVELS = [
    int(n)
    for n in os.environ.get(
        "PODIUM_BENCH_SCALE_HOSTS", "1000" if QUICK else "500,1000,1500,2000,2500,3000"
    ).split(",")
]
CONDUCTORS = [int(n) for n in os.environ.get("PODIUM_BENCH_SCALE_CONDUCTORS", "1,2").split(",")]
SAVES_PER_HOST = float(os.environ.get("PODIUM_BENCH_SCALE_SAVES", "0.1"))
WINDOW = float(os.environ.get("PODIUM_BENCH_SCALE_WINDOW", "10" if QUICK else "30"))
PROCESSES = int(os.environ.get("PODIUM_BENCH_SCALE_PROCESSES", "2"))
HEARTBEAT = 10.0  # seconds between two reports of a host, as report_interval
#: Calls a generator process has in flight at most: enough that no call waits
#: for a free thread at the rates measured here.
GENERATOR_THREADS = 32
HEARTBEAT_LIMIT = 1.0
SAVE_P99_LIMIT_MS = 20.0


@dataclass
class Calls:
    """What one kind of call measured: latencies from due to done, and failures."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, other: Calls) -> None:
        self.latencies.extend(other.latencies)
        self.failures.extend(other.failures)


def generator(
    rabbit_url: str,
    topic: str,
    hosts: list[str],
    instance_uuids: list[str],
    saves_per_host: float,
    seed: int,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Simulate ``hosts`` (host i owns instance i) from ``go``'s start time on."""
    from podium.cloud.objects import CloudObject, ComputeNode, Instance, Service
    from podium.cloud.rpcapi import sent_now
    from podium.cloud.service import SERVICE_VERSION
    from podium.conductor import configure_worker
    from podium.context import get_admin_context
    from podium.rpc import get_transport

    transport = get_transport(rabbit_url)
    configure_worker(transport, base=CloudObject, topic=topic, timeout=30)
    ctx = get_admin_context()
    instances = [Instance.get_by_uuid(ctx, u) for u in instance_uuids]
    ready.set()
    start, warm_until, end = go.get()
    kinds = ("heartbeat", "resources", "save")
    measured = {kind: Calls() for kind in kinds}
    lock = threading.Lock()

    def heartbeat(index: int) -> None:
        Service.report(ctx, hosts[index], "podium-compute", "compute", SERVICE_VERSION, sent_now())

    def resources(index: int) -> None:
        ComputeNode.report(ctx, hosts[index], 16, 32768, 500)

    def save(index: int) -> None:
        instance = instances[index]
        instance.task_state = "b" if instance.task_state == "a" else "a"
        instance.save()

    calls = {"heartbeat": heartbeat, "resources": resources, "save": save}

    def run(kind: str, index: int, due: float) -> None:
        failure = None
        try:
            calls[kind](index)
        except Exception as error:  # counted, and the host goes on, as a compute's loop does
            failure = f"{kind} {hosts[index]}: {type(error).__name__}: {error}"
        done = time.time()
        if due >= warm_until:
            with lock:
                if failure is None:
                    measured[kind].latencies.append(done - due)
                else:
                    measured[kind].failures.append(failure)

    rng = random.Random(seed)
    due: list[tuple[float, int, str, int]] = []
    order = 0
    for index in range(len(hosts)):
        # Hosts started at random moments: their reports spread over the interval.
        phase = start + rng.uniform(0, HEARTBEAT)
        due.append((phase, order, "heartbeat", index))
        order += 1
        if saves_per_host > 0:
            due.append((start + rng.uniform(0, 1 / saves_per_host), order, "save", index))
            order += 1
    heapq.heapify(due)
    with ThreadPoolExecutor(GENERATOR_THREADS) as pool:
        while due:
            when, _, kind, index = heapq.heappop(due)
            if when >= end:
                break
            pause = when - time.time()
            if pause > 0:
                time.sleep(pause)
            pool.submit(run, kind, index, when)
            if kind == "heartbeat":
                # The resources go right after the heartbeat, as the compute's loop sends them.
                pool.submit(run, "resources", index, when)
            period = HEARTBEAT if kind == "heartbeat" else 1 / saves_per_host
            heapq.heappush(due, (when + period, order, kind, index))
            order += 1
    transport.close()
    results.put({kind: (calls.latencies, calls.failures) for kind, calls in measured.items()})


def _make_instances(database_url: str, count: int) -> list[str]:
    """``count`` instance rows (task_state "a"), inserted in one statement."""
    from podium.cloud.models import Instance
    from podium.db import Database
    from podium.db.models import table_of

    uuids = [str(uuid.uuid4()) for _ in range(count)]
    database = Database(database_url)
    try:
        with database.connection() as connection:
            connection.execute(
                table_of(Instance).insert(),
                [{"uuid": u, "hostname": u[:8], "task_state": "a"} for u in uuids],
            )
    finally:
        database.dispose()
    return uuids


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _busy_cpu_seconds() -> tuple[float, float]:
    """All CPUs' busy and total seconds since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


@dataclass
class Level:
    hosts: int
    conductors: int
    calls: dict[str, Calls]
    window: float
    conductor_cpu: float  # percent of one core, all conductors
    conductor_rss: float  # MiB, all conductors
    machine_busy: float  # percent of all CPUs
    others: dict[str, float]  # percent of one core: load generators, broker, PostgreSQL

    def rate(self, kind: str) -> float:
        return len(self.calls[kind].latencies) / self.window

    def passed(self) -> bool:
        heartbeats = self.calls["heartbeat"].latencies + self.calls["resources"].latencies
        saves = self.calls["save"].latencies
        return (
            not any(c.failures for c in self.calls.values())
            and bool(heartbeats)
            and max(heartbeats) <= HEARTBEAT_LIMIT
            and (not saves or percentiles_ms(saves)[1] < SAVE_P99_LIMIT_MS)
        )


def run_level(database_url: str, hosts: int, conductors: int) -> Level:
    topic = f"bench-scale-{uuid.uuid4().hex[:6]}"
    names = [f"c{conductors}-n{hosts}-host-{i}" for i in range(hosts)]
    uuids = _make_instances(database_url, hosts)
    procs: list[subprocess.Popen[str]] = []
    generators: list[Any] = []
    with ExitStack() as cleanup:
        for number in range(conductors):
            proc = spawn_server(
                [
                    sys.executable,
                    "-m",
                    "podium",
                    "conductor",
                    "--transport-url",
                    RABBIT_URL,
                    "--database-url",
                    database_url,
                    "--host",
                    f"scale-c{number}",
                    "--workers",
                    str(CONDUCTOR_WORKERS),
                ],
                "podium-conductor ready",
                {"PODIUM_CONDUCTOR_TOPIC": topic, "PODIUM_LOG_LEVEL": "WARNING"},
            )
            procs.append(proc)
            cleanup.callback(stop_server, proc)
        cleanup.callback(
            delete_queues, RABBIT_URL, [topic, *(f"{topic}.scale-c{n}" for n in range(conductors))]
        )
        results = SPAWN.Queue()
        gos = []
        share = -(-hosts // PROCESSES)
        for number in range(PROCESSES):
            part = slice(number * share, (number + 1) * share)
            ready, go = SPAWN.Event(), SPAWN.Queue()
            args = (RABBIT_URL, topic, names[part], uuids[part], SAVES_PER_HOST, number, ready, go)
            proc = SPAWN.Process(target=generator, args=(*args, results))
            proc.start()
            generators.append((proc, ready))
            gos.append(go)

        def stop_generators() -> None:
            for proc, _ in generators:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()

        cleanup.callback(stop_generators)
        for _proc, ready in generators:
            if not ready.wait(300):
                raise RuntimeError("a load generator did not start")
        start = time.time() + 1.0
        # The first round of reports creates the hosts' rows: not measured.
        warm_until = start + HEARTBEAT
        end = warm_until + WINDOW
        for go in gos:
            go.put((start, warm_until, end))
        roles = {
            "generators": lambda: [proc.pid for proc, _ in generators],
            "broker": lambda: pids_named("beam.smp"),
            "postgres": lambda: pids_named("postgres"),
        }
        time.sleep(max(0.0, warm_until - time.time()))
        cpu_before = [process_cpu_seconds(p.pid) or 0.0 for p in procs]
        busy_before, total_before = _busy_cpu_seconds()
        with CPUAccount(roles) as account:
            time.sleep(max(0.0, end - time.time()))
        cpu_after = [process_cpu_seconds(p.pid) or 0.0 for p in procs]
        busy_after, total_after = _busy_cpu_seconds()
        rss = sum(_rss_mib(p.pid) for p in procs)
        calls = {kind: Calls() for kind in ("heartbeat", "resources", "save")}
        for _ in generators:
            for kind, (latencies, failures) in results.get(timeout=120).items():
                calls[kind].add(Calls(latencies, failures))
    return Level(
        hosts=hosts,
        conductors=conductors,
        calls=calls,
        window=WINDOW,
        conductor_cpu=100 * (sum(cpu_after) - sum(cpu_before)) / WINDOW,
        conductor_rss=rss,
        machine_busy=100 * (busy_after - busy_before) / (total_after - total_before),
        others={role: 100 * spent / WINDOW for role, spent in account.spent.items()},
    )


def others_text(level: Level) -> str:
    """CPU of the load generators, the broker, PostgreSQL, and of the rest of the machine
    (other work than this benchmark's), in percent of one core."""
    ours = level.conductor_cpu + sum(level.others.values())
    rest = level.machine_busy * (os.cpu_count() or 1) - ours
    shares = [level.others[role] for role in ("generators", "broker", "postgres")]
    return " ".join(f"{share:5.0f}%" for share in [*shares, max(rest, 0.0)])


def report(level: Level) -> None:
    heartbeats = level.calls["heartbeat"].latencies + level.calls["resources"].latencies
    saves = level.calls["save"].latencies
    within = sum(latency <= HEARTBEAT_LIMIT for latency in heartbeats)
    worst = max(heartbeats, default=float("nan")) * 1000
    median = statistics.median(heartbeats) * 1000 if heartbeats else float("nan")
    p50, p99 = percentiles_ms(saves) if saves else (float("nan"), float("nan"))
    failures = sum(len(c.failures) for c in level.calls.values())
    rates = "/".join(f"{level.rate(kind):.0f}" for kind in ("heartbeat", "resources", "save"))
    print(
        f"{level.conductors:>10} {level.hosts:>6} {rates:>13} "
        f"{within:>6}/{len(heartbeats):<6} {median:7.1f} {worst:8.1f} {p50:7.2f} {p99:8.2f} "
        f"{failures:>5} {level.conductor_cpu:7.0f}% {level.conductor_rss:7.0f} "
        f"{level.machine_busy:6.0f}% {others_text(level)}  {'pass' if level.passed() else 'FAIL'}"
    )
    for calls in level.calls.values():
        for failure in calls.failures[:3]:
            print(f"    {failure}")


def main() -> None:
    print(
        f"compute hosts on one conductor: heartbeat + resources every {HEARTBEAT:.0f} s, "
        f"{SAVES_PER_HOST:g} instance saves/s per host, rabbit:// + PostgreSQL; "
        f"{CONDUCTOR_WORKERS} workers per conductor; "
        f"{PROCESSES} load generator processes; {WINDOW:.0f} s measured per level after "
        f"a {HEARTBEAT:.0f} s warm-up; pass: every report stored within "
        f"{HEARTBEAT_LIMIT:g} s of being due, save p99 < {SAVE_P99_LIMIT_MS:g} ms, no failure"
    )
    print(
        f"{'conductors':>10} {'hosts':>6} {'calls/s hb/rs/sv':>13} {'reports in 1 s':>13} "
        f"{'hb p50':>7} {'hb max':>8} {'sv p50':>7} {'sv p99':>8} {'fail':>5} "
        f"{'cond CPU':>8} {'RSS MiB':>7} {'busy':>7} {'gen':>6} {'broker':>6} {'pg':>6} "
        f"{'other':>6}"
    )
    print(
        "(CPU in percent of one core; busy: of both CPUs; other: the machine's work"
        " that is not this benchmark's)"
    )
    best: dict[int, int] = {}
    with bench_database() as database_url:
        for conductors in CONDUCTORS:
            for hosts in LEVELS:
                level = run_level(database_url, hosts, conductors)
                report(level)
                if not level.passed():
                    break
                best[conductors] = hosts
    for conductors in CONDUCTORS:
        found = best.get(conductors)
        print(
            f"largest level passed with {conductors} conductor process(es): "
            f"{found if found is not None else 'none'} hosts (levels tried: "
            f"{', '.join(map(str, LEVELS))}); load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
