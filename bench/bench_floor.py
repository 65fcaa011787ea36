"""Remote ``save()`` against the floor: the least a remote save can cost with these parts.

The floor is a raw pika round trip (RabbitMQ's direct reply-to, one bare
connection per caller) carrying the very body podium sends for
``instance.save()``, answered by a plain pika consumer with manual ack in a
process of its own that decodes the body, runs the same ``UPDATE instances ...
RETURNING`` as one prepared statement on a plain psycopg connection
(autocommit) to the same PostgreSQL, and replies with the stored row in
podium's envelope. No object layer, no SQLAlchemy, no inbox, no thread pool:
what a remote save cannot do without.

``floor+inbox`` is the same floor doing what exactly once takes, as podium's
inbox does it: in one transaction, an INSERT of the request's record, the
UPDATE, the reply stored in the record, COMMIT. Between it and the floor is
the price of exactly once; between podium and it, podium's own.

Podium's remote save and oslo's (bench_conductor's stacks: ``podium conductor``
and a Nova-shaped oslo.versionedobjects + oslo.messaging conductor) run in the
same run, sequentially and with 16 callers, the four stacks alternating in
rounds; each ratio is the median of the rounds' ratios. Beside each figure: the
CPU each process spent per save (the caller's process, the server, the broker's
beam.smp, and PostgreSQL: the backends of that stack's connections and the
server's background processes), from /proc.

    python bench/run.py floor
    PODIUM_BENCH_SEQUENTIAL=300 PODIUM_BENCH_PER_THREAD=60 python bench/run.py floor  # quicker
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pika

from _common import (
    CPUAccount,
    Interleaved,
    PostgresProcesses,
    bench_database,
    callers_ready,
    delete_queues,
    interleaved,
    libpq_params,
    percentiles_ms,
    pids_named,
    ratio_in_rounds,
    ratio_text,
    warm_up,
)
from _floor import FloorClient, Recorder, pika_parameters
from bench_conductor import (
    CONDUCTOR_WORKERS,
    PER_THREAD,
    RABBIT_URL,
    ROUNDS,
    SEQUENTIAL,
    THREADS,
    ConductorStack,
    make_rows,
    named_connections,
    oslo_stack,
    podium_stack,
)
from podium.context import RequestContext

SPAWN = multiprocessing.get_context("spawn")
STACKS = ("floor", "floor+inbox", "podium", "oslo")
ROLES = ("client", "server", "broker", "database")


# The exactly-once floor's record, as podium's inbox keeps it (conductor_inbox).
RECORD = "INSERT INTO conductor_inbox (id, method, created_at) VALUES (%s, %s, %s)"
RECORD_REPLY = "UPDATE conductor_inbox SET reply = %s WHERE id = %s"
RECORDED_REPLY = "SELECT reply FROM conductor_inbox WHERE id = %s"


def floor_server(
    rabbit_url: str,
    queue: str,
    database_url: str,
    namespace: str,
    ready: Any,
    stop: Any,
    exactly_once: bool = False,
) -> None:
    """The floor's server: decode, one prepared UPDATE ... RETURNING, reply, ack.

    ``exactly_once``: the same, with the least exactly once takes, as podium's
    inbox does it: in one transaction, the request's record (its AMQP message
    id) before the UPDATE and the reply stored after it, then COMMIT; a
    request already recorded is answered from its record.
    """
    import orjson
    import psycopg
    from psycopg.rows import dict_row

    from podium.cloud.models import Instance

    database = psycopg.connect(
        **libpq_params(database_url), autocommit=not exactly_once, row_factory=dict_row
    )
    cursor = database.cursor()
    columns = {column.name for column in Instance.__table__.columns}
    statements: dict[tuple[str, ...], str] = {}
    data_key, changes_key = f"{namespace}.data", f"{namespace}.changes"

    def statement(changed: tuple[str, ...]) -> str:
        sql = statements.get(changed)
        if sql is None:
            assignments = "".join(f"{name} = %s, " for name in changed)
            sql = statements[changed] = (
                f"UPDATE instances SET {assignments}updated_at = %s"
                " WHERE uuid = %s AND deleted = 0 RETURNING *"
            )
        return sql

    def update(objinst: dict[str, Any]) -> Any:
        data = objinst[data_key]
        changed = tuple(name for name in objinst[changes_key] if name in columns)
        values = [data[name] for name in changed]
        row = cursor.execute(
            statement(changed), [*values, datetime.now(UTC), data["uuid"]], prepare=True
        ).fetchone()
        return [row, None]

    def update_once(request_id: str, objinst: dict[str, Any]) -> Any:
        try:
            cursor.execute(RECORD, [request_id, "Instance.save", datetime.now(UTC)], prepare=True)
        except psycopg.errors.UniqueViolation:
            database.rollback()
            recorded = cursor.execute(RECORDED_REPLY, [request_id]).fetchone()
            database.rollback()
            return orjson.loads(recorded["reply"])
        result = update(objinst)
        cursor.execute(RECORD_REPLY, [orjson.dumps(result), request_id], prepare=True)
        database.commit()
        return result

    def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
        message = orjson.loads(orjson.loads(body)["oslo.message"])
        objinst = message["args"]["objinst"]
        result = update_once(props.message_id, objinst) if exactly_once else update(objinst)
        reply = {"result": result, "failure": None, "ending": True}
        reply["_msg_id"] = message["_msg_id"]
        inner = orjson.dumps(reply).decode()
        ch.basic_publish(
            "",
            props.reply_to,
            orjson.dumps({"oslo.version": "2.0", "oslo.message": inner}),
            pika.BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(method.delivery_tag)

    conn = pika.BlockingConnection(pika_parameters(rabbit_url))
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_qos(prefetch_count=THREADS)
    ch.basic_consume(queue, on_request)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.2)
    conn.close()
    database.close()


def save_bodies(database_url: str, ctx: RequestContext, uuids: list[str]) -> list[bytes]:
    """The body podium sends for ``instance.save()`` of each instance (task_state changed)."""
    from podium.cloud.objects import CloudObject, Instance
    from podium.conductor.api import ConductorAPI
    from podium.db import Database
    from podium.db.current import use_database
    from podium.objects import run_locally
    from podium.rpc import Transport, TransportURL

    recorder = Recorder()
    recorder.reply = [{}, None]
    transport = Transport(recorder, TransportURL.parse("memory://bench-floor-recorder"))  # type: ignore[arg-type]
    database = Database(database_url)
    with run_locally(), use_database(database):
        instances = [Instance.get_by_uuid(ctx, instance_uuid) for instance_uuid in uuids]
    previous = CloudObject.indirection_api
    CloudObject.indirection_api = ConductorAPI(transport)
    try:
        for instance in instances:
            instance.task_state = "floor"
            instance.save()
    finally:
        CloudObject.indirection_api = previous
        database.dispose()
    return recorder.sent


def floor_stack(
    database_url: str, ctx: RequestContext, uuids: list[str], exactly_once: bool = False
) -> ConductorStack:
    """The floor's server process, and one bare pika caller per instance of ``uuids``.

    ``exactly_once``: the floor with podium's inbox statements (see floor_server).
    """
    from podium.cloud.objects import Instance

    queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    application_name = "bench-floor-inbox" if exactly_once else "bench-floor"
    bodies = save_bodies(database_url, ctx, uuids)
    ready, stop = SPAWN.Event(), SPAWN.Event()
    named = named_connections(database_url, application_name)
    proc = SPAWN.Process(
        target=floor_server,
        args=(RABBIT_URL, queue, named, Instance.OBJ_SERIAL_NAMESPACE, ready, stop, exactly_once),
    )
    proc.start()
    clients: list[FloorClient] = []

    def close() -> None:
        for client in clients:
            with suppress(Exception):  # a connection an interrupt left unusable
                client.close()
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        delete_queues(RABBIT_URL, [queue])

    try:
        if not ready.wait(60):
            raise RuntimeError("the floor's server did not start")
        clients.extend(
            FloorClient(RABBIT_URL, queue, [(body, True)], fresh_ids=exactly_once)
            for body in bodies
        )
    except BaseException:
        close()
        raise
    assert proc.pid is not None
    return ConductorStack([c.send for c in clients], close, proc.pid, application_name)


def _accounts(
    stacks: dict[str, ConductorStack], postgres: PostgresProcesses, broker: list[int]
) -> dict[str, CPUAccount]:
    def roles(stack: ConductorStack) -> dict[str, Callable[[], list[int]]]:
        return {
            "client": lambda: [os.getpid()],
            "server": lambda: [stack.pid],
            "broker": lambda: broker,
            "database": lambda: postgres.pids(stack.application_name),
        }

    return {name: CPUAccount(roles(stack)) for name, stack in stacks.items()}


def main() -> None:
    ctx = RequestContext(user_id="bench", project_id="bench")
    print(
        f"remote save(): the floor (raw pika + one prepared UPDATE ... RETURNING on psycopg), "
        f"the floor with podium's inbox statements (floor+inbox: exactly once), "
        f"podium and oslo, rabbit:// + PostgreSQL; sequential {SEQUENTIAL}, "
        f"{THREADS} callers x {PER_THREAD}; stacks alternating in rounds; "
        f"podium's conductor with {CONDUCTOR_WORKERS} workers"
    )
    broker = pids_named("beam.smp")
    results: dict[str, dict[str, tuple[Interleaved, dict[str, float]]]] = {}
    load = os.getloadavg()
    with bench_database() as database_url, ExitStack() as cleanup:
        postgres = PostgresProcesses()
        cleanup.callback(postgres.close)
        stacks: dict[str, ConductorStack] = {}
        for name, make in (
            ("floor", floor_stack),
            ("floor+inbox", partial(floor_stack, exactly_once=True)),
            ("podium", podium_stack),
            ("oslo", oslo_stack),
        ):
            stacks[name] = make(database_url, ctx, make_rows(database_url, ctx, THREADS))
            cleanup.callback(stacks[name].close)
            warm_up(stacks[name].savers)
        callers_ready()
        for case, callers, per_caller in (
            ("sequential", 1, SEQUENTIAL),
            (f"{THREADS} callers", THREADS, PER_THREAD),
        ):
            accounts = _accounts(stacks, postgres, broker)
            measured = interleaved(
                {name: stack.savers[:callers] for name, stack in stacks.items()},
                per_caller,
                ROUNDS,
                cpu=accounts,
            )
            results[case] = {
                name: (each, accounts[name].per_call_ms(callers * per_caller))
                for name, each in measured.items()
            }
    report(results, load, os.getloadavg())


def report(
    results: dict[str, dict[str, tuple[Interleaved, dict[str, float]]]],
    load: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    cpu_header = " ".join(f"{role:>8}" for role in ROLES)
    print(
        f"{'case':12} {'stack':11} {'saves/s':>8} {'x floor':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f"   CPU ms per save: {cpu_header} {'total':>7}"
    )
    for case, stacks in results.items():

        def ratio(name: str, base: str, stacks: dict[str, tuple[Interleaved, Any]] = stacks) -> str:
            return ratio_text(stacks[name][0], stacks[base][0])

        for name in STACKS:
            measured, cpu = stacks[name]
            p50, p99 = percentiles_ms(measured.latencies)
            middle = ratio_in_rounds(measured, stacks["floor"][0])[0]
            spent = " ".join(f"{cpu[role]:8.2f}" for role in ROLES)
            print(
                f"{case:12} {name:11} {measured.rate:8.0f} {middle:7.2f}x {p50:7.2f} {p99:7.2f}"
                f"   {'':17}{spent} {sum(cpu.values()):7.2f}"
            )
        print(
            f"{case:12} podium/floor = {ratio('podium', 'floor')} (target >= 0.7x), "
            f"floor+inbox/floor = {ratio('floor+inbox', 'floor')}, "
            f"podium/floor+inbox = {ratio('podium', 'floor+inbox')}, "
            f"podium/oslo = {ratio('podium', 'oslo')}"
        )
    print(
        f"ratios: the median of the {ROUNDS} rounds' ratios (lowest-highest); saves/s and "
        f"CPU over all rounds. Load average (1/5/15 min) {' '.join(f'{x:.2f}' for x in load)} "
        f"before, {' '.join(f'{x:.2f}' for x in load_after)} after; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
