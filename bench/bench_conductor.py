"""Remote ``save()`` through a conductor: podium vs oslo.versionedobjects + oslo.messaging.

A third stack, "podium signed", is podium with every message signed and
checked (Ed25519) and the conductor's policy enforced, as a compute saving
the instances of its own host: what signing and authorization cost.

Both conductors run as their own process on the local RabbitMQ and write to the
same PostgreSQL with the same DB function (``podium.cloud.db.instance_update``),
so the figures compare the object + messaging stacks and nothing else. Both
conductors stay up during the run and the cases alternate between them in
rounds, so drift in the broker or the database falls on both alike.

    python bench/run.py conductor
    PODIUM_BENCH_SEQUENTIAL=300 PODIUM_BENCH_PER_THREAD=60 python bench/run.py conductor  # quicker

PODIUM_BENCH_CONDUCTOR_WORKERS sets podium's conductor's ``--workers`` (4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _common import (
    Interleaved,
    bench_database,
    bench_signing,
    callers_ready,
    delete_queues,
    interleaved,
    make_keys,
    percentiles_ms,
    ratio_text,
    warm_up,
)
from podium.cloud import db as db_api
from podium.cloud.objects import CloudObject, Instance
from podium.conductor import configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.rpc import Sender, get_transport

RABBIT_URL = os.environ.get("PODIUM_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
# Saves per stack: enough that each round of the alternating stacks lasts a
# good fraction of a second, longer than the machine's stalls.
SEQUENTIAL = int(os.environ.get("PODIUM_BENCH_SEQUENTIAL", "1000"))
THREADS = 16
PER_THREAD = int(os.environ.get("PODIUM_BENCH_PER_THREAD", "200"))
#: Each ``podium conductor``'s ``--workers``: enough to overlap a request's round
#: trips to a database on the same machine, as docs/operations.md advises. More
#: only take turns on the interpreter: with 16 (one per caller) the 16 callers
#: ran 10-20% fewer saves, and 8 gave a third higher p99 in the scale suite.
CONDUCTOR_WORKERS = int(os.environ.get("PODIUM_BENCH_CONDUCTOR_WORKERS", "4"))
# Rounds of a case, the stacks alternating: enough that one stalled round
# cannot move the median of the rounds' ratios (_common.ratio_in_rounds).
ROUNDS = 10
HERE = Path(__file__).parent


def spawn_server(args: list[str], ready: str, env: dict[str, str]) -> subprocess.Popen[str]:
    # Its log goes to a file, not a pipe: a pipe nobody reads fills up in a long
    # run and stops the server mid-benchmark. (The file lives as long as the
    # server's copy of it; ours is read only if it fails to start.)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,  # the oslo conductor runs until it is closed
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if ready not in line:
            stop_server(proc)
            log.seek(0)
            raise RuntimeError(f"server did not start: {line}{log.read()}")
    return proc


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


COMPUTE = Sender("compute", "bench-h1")
CONDUCTOR = Sender("conductor", "bench-c1")


def make_rows(
    database_url: str, ctx: RequestContext, count: int, host: str | None = None
) -> list[str]:
    database = Database(database_url)
    uuids = [
        db_api.instance_create(
            database, ctx, {"hostname": f"bench-{n}", "task_state": "x", "host": host}
        ).uuid
        for n in range(count)
    ]
    database.dispose()
    return uuids


@dataclass
class ConductorStack:
    """One side's running conductor and its callers.

    ``savers``: one remote-save callable per caller (its own instance each);
    ``pid``: the conductor's process; ``application_name``: how its database
    connections name themselves (PostgreSQL's backends for them are found by it).
    """

    savers: list[Callable[[int], None]]
    close: Callable[[], None]
    pid: int
    application_name: str


def named_connections(database_url: str, application_name: str) -> str:
    """``database_url`` with its connections named ``application_name`` on the server."""
    url = sa.make_url(database_url).update_query_dict({"application_name": application_name})
    return url.render_as_string(hide_password=False)


def _saver(inst: Any, indirection: Any = None) -> Callable[[int], None]:
    """A callable that changes ``inst`` and saves it remotely (either stack's objects).

    ``indirection``: the conductor API this stack's saves go through. Two podium
    stacks share ``CloudObject``, whose indirection API is one class attribute:
    each puts its own back before a save (the stacks never run at the same time).
    """

    def save(i: int) -> None:
        if indirection is not None:
            CloudObject.indirection_api = indirection
        inst.task_state = f"t{i}"
        inst.save()

    return save


def podium_stack(
    database_url: str, ctx: RequestContext, uuids: list[str], keys_dir: str | None = None
) -> ConductorStack:
    """A ``podium conductor`` process, and callers saving ``uuids`` through it; with
    ``keys_dir``, the conductor requires signatures and the callers sign as ``COMPUTE``."""
    topic = f"bench-conductor-{uuid.uuid4().hex[:6]}"
    application_name = "bench-podium-signed" if keys_dir else "bench-podium"
    env = {"PODIUM_CONDUCTOR_TOPIC": topic, "PODIUM_LOG_LEVEL": "WARNING"}
    if keys_dir is not None:
        env.update(
            PODIUM_KEY_FILE=os.path.join(keys_dir, f"{CONDUCTOR.name}.key"),
            PODIUM_KEYS_DIR=os.path.join(keys_dir, "pub"),
            PODIUM_REQUIRE_SIGNED="true",
        )
    proc = spawn_server(
        [
            sys.executable,
            "-m",
            "podium",
            "conductor",
            "--transport-url",
            RABBIT_URL,
            "--database-url",
            named_connections(database_url, application_name),
            "--host",
            CONDUCTOR.host,
            "--workers",
            str(CONDUCTOR_WORKERS),
        ],
        "podium-conductor ready",
        env,
    )
    signing = bench_signing(keys_dir, COMPUTE) if keys_dir is not None else None
    transport = get_transport(RABBIT_URL, signing=signing)
    api = configure_worker(transport, base=CloudObject, topic=topic, timeout=30)
    instances = [Instance.get_by_uuid(ctx, u) for u in uuids]

    def close() -> None:
        CloudObject.indirection_api = None
        transport.cleanup()
        stop_server(proc)
        delete_queues(RABBIT_URL, [topic, f"{topic}.bench-c1"])

    savers = [_saver(inst, api) for inst in instances]
    return ConductorStack(savers, close, proc.pid, application_name)


def _oslo_copy(obj: Any, row: Any, nested: dict[str, Any] | None = None) -> Any:
    """Set ``obj``'s fields that are columns of ``row`` from it (the others stay unset).

    ``nested``: field name -> the oslo class a JSON snapshot column is loaded into.
    """
    columns = set(type(row).__mapper__.columns.keys())
    for name in obj.fields:
        attribute = "metadata_" if name == "metadata" else name
        if attribute not in columns:
            continue
        value = getattr(row, attribute)
        if name == "deleted":
            value = bool(value)
        elif nested and name in nested and value is not None:
            value = nested[name](**value)
        setattr(obj, name, value)
    return obj


def oslo_stack(database_url: str, ctx: RequestContext, uuids: list[str]) -> ConductorStack:
    """The oslo conductor process (bench/_oslo_conductor.py), and callers saving ``uuids``."""
    sys.path.insert(0, str(HERE))
    import _oslo_conductor as oslo_side

    topic = f"bench-oslo-conductor-{uuid.uuid4().hex[:6]}"
    application_name = "bench-oslo"
    named = named_connections(database_url, application_name)
    proc = spawn_server(
        [sys.executable, str(HERE / "_oslo_conductor.py"), RABBIT_URL, named, topic],
        "oslo-conductor ready",
        {},
    )
    transport = oslo_side.oslo_transport(RABBIT_URL)
    oslo_side.BenchInstance.indirection_api = oslo_side.OsloConductorAPI(transport, topic)
    database = Database(database_url)
    instances = []
    for u in uuids:
        row = db_api.instance_get_by_uuid(database, ctx, u)
        inst = _oslo_copy(oslo_side.BenchInstance(ctx), row, {"flavor": oslo_side.BenchFlavor})
        # Not a column: podium reads it from instance_faults on get, as here.
        fault = db_api.instance_fault_get_latest(database, ctx, [u]).get(u)
        inst.fault = None if fault is None else _oslo_copy(oslo_side.BenchInstanceFault(), fault)
        inst.obj_reset_changes()
        instances.append(inst)
    database.dispose()

    def close() -> None:
        oslo_side.BenchInstance.indirection_api = None
        transport.cleanup()
        stop_server(proc)
        delete_queues(RABBIT_URL, [topic, f"{topic}.oslo-conductor"])

    return ConductorStack([_saver(inst) for inst in instances], close, proc.pid, application_name)


def main() -> None:
    ctx = RequestContext(user_id="bench", project_id="bench")
    print(
        f"remote save() through a conductor, rabbit:// + PostgreSQL; sequential {SEQUENTIAL}, "
        f"{THREADS} threads x {PER_THREAD}; podium's conductor with {CONDUCTOR_WORKERS} workers"
    )
    sides = ("podium", "podium signed", "oslo")
    results: dict[str, dict[str, Interleaved]] = {side: {} for side in sides}
    with (
        bench_database() as database_url,
        tempfile.TemporaryDirectory() as keys_dir,
        ExitStack() as stacks,
    ):
        make_keys(keys_dir, [COMPUTE, CONDUCTOR])
        makers: dict[str, Callable[[list[str]], ConductorStack]] = {
            "podium": lambda rows: podium_stack(database_url, ctx, rows),
            "podium signed": lambda rows: podium_stack(database_url, ctx, rows, keys_dir),
            "oslo": lambda rows: oslo_stack(database_url, ctx, rows),
        }
        savers = {}
        for side, make in makers.items():
            # The signed compute saves the instances of its own host, as the policy asks.
            host = COMPUTE.host if side == "podium signed" else None
            stack = make(make_rows(database_url, ctx, THREADS, host))
            stacks.callback(stack.close)
            savers[side] = stack.savers
            warm_up(stack.savers)
        callers_ready()
        # Both conductors stay up; the cases alternate between them in rounds.
        for case, callers, per_caller in (
            ("sequential", 1, SEQUENTIAL),
            ("concurrent", THREADS, PER_THREAD),
        ):
            measured = interleaved(
                {side: s[:callers] for side, s in savers.items()}, per_caller, ROUNDS
            )
            for side, each in measured.items():
                results[side][case] = each
    print(f"{'case':12} {'stack':14} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for case in ("sequential", "concurrent"):
        for side in sides:
            each = results[side][case]
            p50, p99 = percentiles_ms(each.latencies)
            print(f"{case:12} {side:14} {each.rate:9.0f} {p50:8.2f} {p99:8.2f}")

        def ratio(side: str, base: str, case: str = case) -> str:
            return ratio_text(results[side][case], results[base][case])

        print(f"{case:12} podium/oslo = {ratio('podium', 'oslo')}  (target >= 3x)")
        print(f"{case:12} signed + policy / unsigned = {ratio('podium signed', 'podium')}")
    print(f"ratios: the median of the {ROUNDS} rounds' ratios (lowest-highest)")


if __name__ == "__main__":
    main()
