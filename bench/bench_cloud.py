"""The reference cloud end to end: servers built per second through the REST API.

The distributed cloud runs as a deployment runs it (``podium conductor
--sync-db``, ``podium scheduler``, three ``podium compute --host`` with spawn
time 0, ``podium api`` with its rate limit off), each service its own process,
on the local RabbitMQ (the throwaway vhost bench/run.py makes) and a throwaway
PostgreSQL schema. A few HTTP clients POST servers; the run ends when every
server is ACTIVE, seen by polling the list.

Figures:

- builds/s: servers / (the last server's ``launched_at`` - the first POST);
- p50/p99 from POST to ACTIVE per server: ``launched_at`` (shown by the API,
  stamped by the compute as the spawn ends, the ACTIVE save right after it)
  minus the wall time the client sent the POST. Polling each server would load
  the API, the conductor and the database with as many reads as there are
  builds in flight, and the list poll only tells when a server was *seen*
  ACTIVE (up to one poll interval late); ``launched_at`` costs nothing during
  the run and misses only that final save, one object call. Every process runs
  on this machine, so the clocks agree.
- the floor: the flow's message round trips alone (see ``TRIPS``), the same
  request and reply bodies podium puts on the wire, on a bare pika connection
  with direct reply-to against one raw echo process: no HTTP, no service logic,
  no database. Measured in rounds interleaved with the cloud's, sequential (the
  least time one build's messages take) and with as many clients as the cloud
  had (builds/s). The ratios are podium's time per build over the floor's.

    python bench/run.py cloud
    PODIUM_BENCH_QUICK=1 python bench/run.py cloud            # a check, seconds
    PODIUM_BENCH_CLOUD_COUNT=1 python bench/run.py cloud      # recount TRIPS from the logs

Knobs: PODIUM_BENCH_CLOUD_SERVERS (per round), PODIUM_BENCH_CLOUD_CLIENTS,
PODIUM_BENCH_CLOUD_ROUNDS, PODIUM_BENCH_CLOUD_FLOOR_BUILDS (floor builds per
client per round). The cloud's topics are fixed names: run it on a vhost of its
own (bench/run.py makes one unless PODIUM_BENCH_RABBIT_URL is set).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import IO, Any

import httpx
import pika

from _common import bench_database, percentiles_ms, run_callers
from _floor import FloorClient, Recorder, pika_parameters, reply_body

RABBIT_URL = os.environ.get("PODIUM_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
QUICK = os.environ.get("PODIUM_BENCH_QUICK", "") not in ("", "0")
SERVERS = int(os.environ.get("PODIUM_BENCH_CLOUD_SERVERS", "12" if QUICK else "90"))
CLIENTS = int(os.environ.get("PODIUM_BENCH_CLOUD_CLIENTS", "3"))
ROUNDS = int(os.environ.get("PODIUM_BENCH_CLOUD_ROUNDS", "1" if QUICK else "4"))
FLOOR_BUILDS = int(os.environ.get("PODIUM_BENCH_CLOUD_FLOOR_BUILDS", "20" if QUICK else "100"))
COUNT = os.environ.get("PODIUM_BENCH_CLOUD_COUNT", "") not in ("", "0")
COMPUTES = ("compute-1", "compute-2", "compute-3")
ADMIN_TOKEN = "bench-admin"
USER_TOKEN = "bench-user"
#: How often the list is polled for servers still building: often enough that
#: the end of a round is seen soon, seldom enough not to compete with the builds.
POLL_INTERVAL = 0.25
SPAWN = multiprocessing.get_context("spawn")


# -- the cloud -----------------------------------------------------------------


class _Service:
    """``python -m podium <argv>``, ready once its first stdout line says so.

    The log goes to a file, not a pipe nobody reads (a full pipe would stall
    the service); it is shown when something fails and counted in COUNT mode.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_file: IO[str] = tempfile.TemporaryFile(mode="w+t")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podium", *argv],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
        )
        assert self.process.stdout is not None
        self.ready_line = self.process.stdout.readline()
        if "ready" not in self.ready_line:
            self.stop()
            raise RuntimeError(f"{name} did not start: {self.ready_line!r}\n{self.log()[-4000:]}")

    def ready_value(self, key: str) -> str:
        for word in self.ready_line.split():
            name, _, value = word.partition("=")
            if name == key:
                return value
        raise KeyError(f"{key} not on the ready line {self.ready_line!r}")

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def distributed_cloud(database_url: str, log_level: str) -> Iterator[dict[str, _Service]]:
    """Every service of the cloud in its own process; all stopped on the way out."""
    env = {
        "PODIUM_TRANSPORT_URL": RABBIT_URL,
        "PODIUM_API_TOKENS": f"{ADMIN_TOKEN}=admin:admin:admin;{USER_TOKEN}=demo:demo:member",
        "PODIUM_API_LISTEN": "127.0.0.1:0",
        "PODIUM_API_RATE_LIMIT": "0",
        "PODIUM_FAKE_SPAWN_TIME": "0",
        # Hosts far bigger than every round together: no build is refused, and
        # the rounds need no deletes between them.
        "PODIUM_COMPUTE_VCPUS": "100000",
        "PODIUM_COMPUTE_MEMORY_MB": "100000000",
        "PODIUM_COMPUTE_DISK_GB": "1000000",
        "PODIUM_RPC_TIMEOUT": "60",
        "PODIUM_LOG_LEVEL": log_level,
    }
    if log_level == "DEBUG":
        # COUNT mode: one heartbeat each at start-up, then none to tell apart
        # from the build's messages.
        env.update(PODIUM_REPORT_INTERVAL="3600", PODIUM_SERVICE_DOWN_TIME="7200")
    services: dict[str, _Service] = {}
    try:
        for name, argv in (
            (
                "conductor",
                ["conductor", "--sync-db", "--host", "conductor-1", "--database-url", database_url],
            ),
            ("scheduler", ["scheduler", "--host", "scheduler-1"]),
            *((host, ["compute", "--host", host]) for host in COMPUTES),
            ("api", ["api", "--host", "api-1"]),
        ):
            services[name] = _Service(name, argv, env)
        yield services
    finally:
        # Workers first, the conductor last: their goodbyes still reach it.
        for name in sorted(services, key=lambda name: name == "conductor"):
            services[name].stop()


def _wait_for(what: str, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _computes_up(admin: httpx.Client) -> bool:
    response = admin.get("/os-services")
    response.raise_for_status()
    up = {s["host"] for s in response.json()["services"] if s["state"] == "up"}
    return set(COMPUTES) <= up


@dataclass
class Round:
    """One round of builds: when each was POSTed and when it went ACTIVE (wall clock)."""

    posted: dict[str, float] = field(default_factory=dict)
    launched: dict[str, float] = field(default_factory=dict)

    def seconds(self) -> float:
        return max(self.launched.values()) - min(self.posted.values())

    def latencies(self) -> list[float]:
        return [self.launched[i] - self.posted[i] for i in self.posted]


def build_round(api_url: str, servers: int, clients: int, tag: str) -> Round:
    """POST ``servers`` servers from ``clients`` threads; return once all are ACTIVE."""
    result = Round()
    lock = threading.Lock()
    failures: list[BaseException] = []
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        headers = {"X-Auth-Token": USER_TOKEN}
        try:
            with httpx.Client(base_url=api_url, headers=headers, timeout=60) as http:
                http.get("/flavors").raise_for_status()  # the connection, before the clock
                barrier.wait()
                for n in range(index, servers, clients):
                    body = {"server": {"name": f"{tag}-{n}", "flavorRef": "1"}}
                    sent = time.time()
                    response = http.post("/servers", json=body)
                    if response.status_code != 202:
                        raise RuntimeError(f"POST /servers: {response.status_code} {response.text}")
                    with lock:
                        result.posted[response.json()["server"]["id"]] = sent
        except BaseException as error:
            failures.append(error)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=api_url, headers={"X-Auth-Token": ADMIN_TOKEN}, timeout=60) as admin:
        # Servers still building, every project's; the list shrinks as they finish.
        query: dict[str, str | int] = {"all_tenants": "true", "status": "BUILD", "limit": 1000}

        def settled() -> bool:
            if failures:
                raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
            if any(thread.is_alive() for thread in threads):
                return False
            response = admin.get("/servers", params=query)
            response.raise_for_status()
            return not {s["id"] for s in response.json()["servers"]} & result.posted.keys()

        _wait_for(f"{servers} servers out of BUILD", settled, timeout=60 + servers)
        # Read after the clock stopped: these reads are not part of the figures.
        for server_id in result.posted:
            response = admin.get(f"/servers/{server_id}")
            response.raise_for_status()
            server = response.json()["server"]
            if server["status"] != "ACTIVE":
                raise RuntimeError(f"server {server_id} is {server['status']}: {server}")
            result.launched[server_id] = datetime.fromisoformat(server["launched_at"]).timestamp()
    return result


# -- the floor: the same messages on a bare pika connection ---------------------


@dataclass(frozen=True)
class Trip:
    """One message of a build: who sends it to whom, and whether a reply comes back."""

    hop: str
    what: str
    call: bool
    request: bytes = b""
    reply: bytes = b""


#: One build's messages, in order, all on its critical path. Read from the code
#: (podium.cloud.api.servers.create_server, conductor.ComputeTaskManager._build_one,
#: scheduler.manager.SchedulerManager.select_destinations, compute.manager
#: .ComputeManager.build_and_run_instance) and recounted from the services' debug
#: logs with PODIUM_BENCH_CLOUD_COUNT=1. The conductor's own refreshes of the
#: instance run on its database (run_locally): SQL, no message.
TRIP_SHAPES: tuple[tuple[str, str, bool], ...] = (
    ("api -> conductor", "Flavor.get_by_flavor_id", True),
    ("api -> conductor", "Instance.create", True),
    ("api -> conductor", "build_instances (cast)", False),
    ("conductor -> scheduler", "select_destinations", True),
    ("scheduler -> conductor", "ServiceList.get_all", True),
    ("scheduler -> conductor", "ComputeNodeList.get_all", True),
    ("scheduler -> conductor", "ComputeNode.claim", True),
    ("conductor -> compute", "build_and_run_instance (cast)", False),
    ("compute -> conductor", "Instance.save (spawning)", True),
    ("compute -> conductor", "Instance.save (active)", True),
)


def build_trips() -> list[Trip]:
    """``TRIP_SHAPES`` with the bodies podium sends for one build of flavor 1."""
    from podium.cloud import states
    from podium.cloud.objects import (
        CloudObject,
        ComputeNode,
        ComputeNodeList,
        Flavor,
        Instance,
        Service,
        ServiceList,
    )
    from podium.cloud.rpcapi import ComputeAPI, ComputeTaskAPI, SchedulerAPI
    from podium.conductor.api import ConductorAPI
    from podium.conductor.manager import _changes
    from podium.context import RequestContext
    from podium.rpc import Transport, TransportURL

    recorder = Recorder()
    transport = Transport(recorder, TransportURL.parse("memory://bench-recorder"))  # type: ignore[arg-type]
    conductor = ConductorAPI(transport)
    ser = conductor.serializer
    ctx = RequestContext(user_id="demo", project_id="demo", roles=["member"])
    admin = ctx.elevated(read_deleted="no")
    now = datetime.now(UTC)
    stamps = {"created_at": now, "updated_at": None, "deleted_at": None, "deleted": False}
    replies: list[Any] = []

    def answer(result: Any) -> None:
        recorder.reply = ser.serialize_entity(ctx, result)
        replies.append(recorder.reply)

    def saved(instance: Instance, **changed: Any) -> None:
        """``instance.save()`` answered as the conductor does (the fields it changed)."""
        after = instance.obj_clone()
        for name, value in changed.items():
            setattr(after, name, value)
        answer([_changes(instance, after), None])

    previous = CloudObject.indirection_api
    CloudObject.indirection_api = conductor
    try:
        flavor = Flavor(
            ctx,
            id=1,
            flavorid="1",
            name="m1.tiny",
            vcpus=1,
            memory_mb=512,
            disk_gb=1,
            is_public=True,
            **stamps,
        )
        answer(flavor)
        flavor = Flavor.get_by_flavor_id(ctx, "1")
        server_id = str(uuid.uuid4())
        instance = Instance(
            ctx,
            uuid=server_id,
            display_name="bench-0",
            hostname="bench-0",
            project_id="demo",
            user_id="demo",
            flavor=flavor,
            vm_state=states.BUILDING,
            task_state=states.SCHEDULING,
            power_state=states.NOSTATE,
            memory_mb=512,
            vcpus=1,
            root_gb=1,
            image_ref=None,
            metadata={},
        )
        created = instance.obj_clone()
        for name, value in {"id": 1, **stamps, "host": None, "node": None}.items():
            setattr(created, name, value)
        answer([_changes(instance, created), None])
        instance.create()
        replies.append(None)
        ComputeTaskAPI(transport).build_instances(
            ctx, [instance], {"num_attempts": 0, "ignore_hosts": []}
        )
        spec = {
            "num_attempts": 1,
            "ignore_hosts": [],
            "instance_uuids": [server_id],
            "flavor": {"vcpus": 1, "memory_mb": 512, "disk_gb": 1},
        }
        answer([{"host": COMPUTES[0], "node": COMPUTES[0]}])
        SchedulerAPI(transport).select_destinations(ctx, spec)
        answer(
            ServiceList(
                admin,
                objects=[
                    Service(
                        admin,
                        id=n,
                        host=host,
                        binary="podium-compute",
                        topic="compute",
                        report_count=10,
                        last_seen_up=now,
                        disabled=False,
                        disabled_reason=None,
                        version=1,
                        forced_down=False,
                        **stamps,
                    )
                    for n, host in enumerate(COMPUTES, 1)
                ],
            )
        )
        ServiceList.get_all(admin, binary="podium-compute")
        answer(
            ComputeNodeList(
                admin,
                objects=[
                    ComputeNode(
                        admin,
                        id=n,
                        host=host,
                        hypervisor_hostname=host,
                        vcpus=16,
                        memory_mb=32768,
                        disk_gb=500,
                        vcpus_used=3,
                        memory_mb_used=1536,
                        disk_gb_used=3,
                        **stamps,
                    )
                    for n, host in enumerate(COMPUTES, 1)
                ],
            )
        )
        ComputeNodeList.get_all(admin)
        answer(True)
        ComputeNode.claim(admin, COMPUTES[0], server_id, {"cpu": 16.0, "ram": 1.5, "disk": 1.0})
        replies.append(None)
        instance.host = instance.node = COMPUTES[0]
        instance.obj_reset_changes()
        ComputeAPI(transport).build_and_run_instance(ctx, COMPUTES[0], instance, spec)
        instance.task_state = states.SPAWNING
        saved(instance, updated_at=now)
        instance.save(expected_task_state=states.SCHEDULING)
        instance.vm_state = states.ACTIVE
        instance.power_state = states.RUNNING
        instance.task_state = None
        instance.launched_at = now
        saved(instance, updated_at=now)
        instance.save(expected_task_state=states.SPAWNING)
    finally:
        CloudObject.indirection_api = previous
    if len(recorder.sent) != len(TRIP_SHAPES):
        raise AssertionError(f"{len(recorder.sent)} messages recorded, {len(TRIP_SHAPES)} expected")
    return [
        Trip(hop, what, call, request, reply_body(result) if call else b"")
        for (hop, what, call), request, result in zip(
            TRIP_SHAPES, recorder.sent, replies, strict=True
        )
    ]


def floor_server(url: str, queue: str, replies: list[bytes], ready: Any, stop: Any) -> None:
    """Answers trip ``i`` (the correlation id) with its reply body; a cast gets an empty one.

    A cast has no reply in the flow; answering it stands for its delivery being
    seen by the consumer, one short hop more than the cast needs.
    """
    conn = pika.BlockingConnection(pika_parameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)

    def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
        reply = replies[int(props.correlation_id)]
        ch.basic_publish(
            "", props.reply_to, reply, pika.BasicProperties(correlation_id=props.correlation_id)
        )
        ch.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_request)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.2)
    conn.close()


@contextmanager
def floor(trips: list[Trip]) -> Iterator[list[FloorClient]]:
    queue = f"bench-cloud-floor-{uuid.uuid4().hex[:8]}"
    ready, stop = SPAWN.Event(), SPAWN.Event()
    proc = SPAWN.Process(
        target=floor_server, args=(RABBIT_URL, queue, [t.reply for t in trips], ready, stop)
    )
    proc.start()
    clients: list[FloorClient] = []
    try:
        if not ready.wait(60):
            raise RuntimeError("the floor's echo server did not start")
        bodies = [(trip.request, trip.call) for trip in trips]
        clients = [FloorClient(RABBIT_URL, queue, bodies) for _ in range(CLIENTS)]
        yield clients
    finally:
        for client in clients:
            # An interrupt inside pika's I/O leaves a connection it cannot
            # close; the echo server below must be stopped all the same.
            with suppress(Exception):
                client.close()
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        from _common import delete_queues

        delete_queues(RABBIT_URL, [queue])


# -- counting the messages of one build from the services' logs -----------------


def count_messages(services: dict[str, _Service], api_url: str) -> None:
    """Build one server with every service at DEBUG and count its calls and casts.

    The cloud runs with heartbeats far apart in this mode (one at start-up),
    so what is counted is the build's. The API's count stops when the POST is
    answered: the polls that follow are the benchmark's, not the build's.
    """

    def counts() -> dict[str, tuple[int, int]]:
        result = {}
        for name, service in services.items():
            lines = [line for line in service.log().splitlines() if "podium.rpc._client" in line]
            result[name] = (
                sum(" call " in line for line in lines),
                sum(" cast " in line for line in lines),
            )
        return result

    before = counts()
    headers = {"X-Auth-Token": USER_TOKEN}
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as http:
        response = http.post("/servers", json={"server": {"name": "count", "flavorRef": "1"}})
        response.raise_for_status()
        server_id = response.json()["server"]["id"]
        posted = counts()

        def active() -> bool:
            status = http.get(f"/servers/{server_id}").raise_for_status().json()["server"]
            return bool(status["status"] == "ACTIVE" and status["task_state"] is None)

        _wait_for("the server ACTIVE", active)
    after = {**counts(), "api": posted["api"]}
    print("messages sent by one build, by sender:")
    total = [0, 0]
    for name in services:
        got = [after[name][k] - before[name][k] for k in (0, 1)]
        total = [total[0] + got[0], total[1] + got[1]]
        print(f"  {name:<10} {got[0]:3d} calls {got[1]:3d} casts")
    expected = [sum(s[2] for s in TRIP_SHAPES), sum(not s[2] for s in TRIP_SHAPES)]
    verdict = "matches" if total == expected else "DIFFERS FROM"
    print(f"  total      {total[0]:3d} calls {total[1]:3d} casts: {verdict} TRIP_SHAPES {expected}")


# -- the run ---------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the services, the schema and run.py's
    # vhost are cleaned up either way.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run() -> None:
    print(
        f"distributed cloud on rabbit:// + PostgreSQL, {len(COMPUTES)} fake computes "
        f"(spawn 0 s); {ROUNDS} round(s) x {SERVERS} servers from {CLIENTS} HTTP clients; "
        f"floor: {FLOOR_BUILDS} builds per client per round; rounds interleaved"
    )
    trips = build_trips()
    with ExitStack() as stack:
        database_url = stack.enter_context(bench_database())
        services = stack.enter_context(
            distributed_cloud(database_url, "DEBUG" if COUNT else "WARNING")
        )
        api_url = services["api"].ready_value("url")
        try:
            with httpx.Client(
                base_url=api_url, headers={"X-Auth-Token": ADMIN_TOKEN}, timeout=60
            ) as admin:
                _wait_for("three computes up", lambda: _computes_up(admin))
            if COUNT:
                count_messages(services, api_url)
                return
            floor_clients = stack.enter_context(floor(trips))
            # Warm-up: connections, pools and code paths, on both sides.
            build_round(api_url, 2 * CLIENTS, CLIENTS, "warm")
            run_callers([c.send for c in floor_clients], 5)
            rounds: list[Round] = []
            floor_seq: list[float] = []
            floor_spent = 0.0
            floor_built = 0
            floor_lat: list[float] = []
            load = os.getloadavg()
            for index in range(ROUNDS):
                # The order alternates, so drift in the broker or the CPUs
                # falls on both alike.
                steps: list[Callable[[], None]] = []

                def cloud_step(index: int = index) -> None:
                    rounds.append(build_round(api_url, SERVERS, CLIENTS, f"r{index}"))

                def floor_step() -> None:
                    nonlocal floor_spent, floor_built
                    _rate, seq = run_callers([floor_clients[0].send], FLOOR_BUILDS)
                    floor_seq.extend(seq)
                    rate, lat = run_callers([c.send for c in floor_clients], FLOOR_BUILDS)
                    floor_spent += len(floor_clients) * FLOOR_BUILDS / rate
                    floor_built += len(floor_clients) * FLOOR_BUILDS
                    floor_lat.extend(lat)

                steps = [cloud_step, floor_step] if index % 2 == 0 else [floor_step, cloud_step]
                for step in steps:
                    step()
            load_after = os.getloadavg()
        except BaseException:
            for name, service in services.items():
                print(f"===== {name} log (tail) =====\n{service.log()[-3000:]}", file=sys.stderr)
            raise
    _report(trips, rounds, floor_seq, floor_built / floor_spent, floor_lat, load, load_after)


def _report(
    trips: list[Trip],
    rounds: list[Round],
    floor_seq: list[float],
    floor_rate: float,
    floor_lat: list[float],
    load: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    built = sum(len(r.posted) for r in rounds)
    rate = built / sum(r.seconds() for r in rounds)
    latencies = [lat for r in rounds for lat in r.latencies()]
    p50, p99 = percentiles_ms(latencies)
    seq50, seq99 = percentiles_ms(floor_seq)
    con50, con99 = percentiles_ms(floor_lat)
    calls = sum(t.call for t in trips)
    print(f"one build's messages ({calls} calls, {len(trips) - calls} casts), bytes out/back:")
    for trip in trips:
        kind = "call" if trip.call else "cast"
        print(
            f"  {trip.hop:<24} {kind} {trip.what:<30} {len(trip.request):6d} {len(trip.reply):6d}"
        )
    print(f"{'':34} {'builds/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'podium cloud, POST -> ACTIVE':<32} {rate:9.1f} {p50:8.1f} {p99:8.1f}")
    print(f"  {'floor, 1 client':<32} {1000 / seq50:9.1f} {seq50:8.2f} {seq99:8.2f}")
    print(f"  {f'floor, {CLIENTS} clients':<32} {floor_rate:9.1f} {con50:8.2f} {con99:8.2f}")
    print("podium's time per build / the floor's:")
    print(
        f"  throughput  {1000 / rate:7.2f} ms / {1000 / floor_rate:6.2f} ms per build "
        f"({CLIENTS} clients) = {floor_rate / rate:5.1f}x"
    )
    print(f"  latency p50 {p50:7.2f} ms / {seq50:6.2f} ms (1 client) = {p50 / seq50:5.1f}x")
    print(
        f"{built} servers in {len(rounds)} rounds; load average (1/5/15 min) "
        f"{' '.join(f'{x:.2f}' for x in load)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    # Through run.py: it makes the throwaway vhost the cloud's fixed topics need.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run

    raise SystemExit(run.main(["cloud"]))
