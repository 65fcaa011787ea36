"""The conductor under faults: its DB connections terminated, itself and the broker killed.

Workers (threads of this process, with the cloud objects pointed at the
conductor) save instances through ``podium conductor`` processes on the
private RabbitMQ node and a fresh PostgreSQL schema. Every save writes a value
no other save writes, and a trigger records each UPDATE that committed in
``fault_effects``: a save that returned must show there once (none: lost;
twice: a double effect).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from faults_helpers import (
    GRACE,
    ConductorProcess,
    first_line,
    start_conductors,
    summary,
    wait_until,
)
from faults_node import RESTARTING_TEST_TIMEOUT, RabbitNode
from sqlalchemy.engine import make_url

from podium.cloud.objects import CloudObject, Instance
from podium.conductor import configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.db.migration import sync
from podium.exceptions import PodiumError
from podium.objects.fixture import indirection_api_set
from podium.rpc import get_transport

if TYPE_CHECKING:
    from tests.conftest import Servers

pytestmark = [pytest.mark.faults, pytest.mark.rabbit, pytest.mark.postgres]

#: The workers' RPC timeout for every object call.
WORKER_TIMEOUT = 15.0
CTX = RequestContext(user_id="faults", project_id="p-faults")


@pytest.fixture
def topic() -> str:
    return f"conductor-faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def schema_url(servers: Servers) -> str:
    """A fresh, migrated schema whose instance UPDATEs are recorded in ``fault_effects``."""
    url = servers.new_url("postgresql")
    database = Database(url)
    sync(database)
    database.dispose()
    schema = _schema_of(url)
    _execute(
        url,
        f"""CREATE TABLE "{schema}".fault_effects (
                id bigserial PRIMARY KEY,
                uuid text NOT NULL,
                display_name text,
                app text NOT NULL DEFAULT current_setting('application_name'))""",
        f"""CREATE FUNCTION "{schema}".fault_effect() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO "{schema}".fault_effects (uuid, display_name)
                VALUES (NEW.uuid, NEW.display_name);
                RETURN NULL;
            END $$""",
        f"""CREATE TRIGGER fault_effect AFTER UPDATE ON "{schema}".instances
            FOR EACH ROW EXECUTE FUNCTION "{schema}".fault_effect()""",
    )
    return url


@pytest.fixture
def app_name() -> str:
    """The application_name of this test's conductors: what the killer thread matches."""
    return f"podium-faults-{secrets.token_hex(4)}"


@pytest.fixture
def conductors() -> Iterator[list[ConductorProcess]]:
    started: list[ConductorProcess] = []
    yield started
    for conductor in started:
        conductor.kill()


@pytest.fixture
def worker_transport(broker: RabbitNode, topic: str) -> Iterator[Any]:
    """This process plays the workers: its cloud objects go through the conductor."""
    transport = get_transport(broker.url + "?max_backoff=1")
    try:
        with indirection_api_set(None, CloudObject):
            configure_worker(transport, base=CloudObject, topic=topic, timeout=WORKER_TIMEOUT)
            yield transport
    finally:
        transport.cleanup()


def _schema_of(url: str) -> str:
    options = str(make_url(url).query["options"])
    return options.split("search_path=", 1)[1]


def _with_app(url: str, app: str) -> str:
    parsed = make_url(url).update_query_dict({"application_name": app})
    return parsed.render_as_string(hide_password=False)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(
        _with_app(url, "podium-faults-test"), poolclass=sa.NullPool, isolation_level="AUTOCOMMIT"
    )


def _execute(url: str, *statements: str) -> None:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _query(url: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


@dataclass
class Savers:
    """Worker threads saving their own instance in a loop, one new value per save."""

    instances: list[Instance]
    prefix: str
    timeout: float
    saves_each: int | None = None  # None: until stop()
    ok: list[tuple[int, str, float]] = field(default_factory=list)  # caller, value, started
    failed: list[tuple[str, str]] = field(default_factory=list)
    foreign: list[BaseException] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.last_value: dict[int, str] = {}
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True, name=f"faults-saver-{n}")
            for n in range(len(self.instances))
        ]

    def start(self) -> Savers:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, n: int) -> None:
        instance = self.instances[n]
        i = 0
        while not self._stop.is_set() and (self.saves_each is None or i < self.saves_each):
            i += 1
            value = f"{self.prefix}-{n}-{i}"
            instance.display_name = value
            began = time.monotonic()
            try:
                instance.save()
            except PodiumError as exc:
                with self._lock:
                    self.failed.append((value, f"{type(exc).__name__}: {first_line(str(exc))}"))
                self._stop.wait(0.05)  # a real worker backs off too; no busy loop on 2 cores
            except Exception as exc:
                with self._lock:
                    self.foreign.append(exc)
            else:
                with self._lock:
                    self.ok.append((n, value, began))
            finally:
                with self._lock:
                    self.durations.append(time.monotonic() - began)
                    self.last_value[n] = value

    def ok_since(self, since: float) -> Counter[int]:
        with self._lock:
            return Counter(n for n, _value, began in self.ok if began >= since)

    def wait_all_succeed_since(self, since: float, timeout: float) -> float:
        wait_until(
            lambda: all(self.ok_since(since)[n] for n in range(len(self.instances))),
            timeout,
            "every worker to save again",
        )
        return time.monotonic() - since

    def join(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self._threads if t.is_alive()]

    def stop(self, timeout: float) -> list[str]:
        self._stop.set()
        return self.join(timeout)

    def attempted(self) -> int:
        return len(self.ok) + len(self.failed) + len(self.foreign)


def _create_instances(count: int, tag: str) -> list[Instance]:
    instances = []
    for n in range(count):
        instance = Instance(CTX, uuid=str(uuid.uuid4()), hostname=f"{tag}-{n}")
        instance.create()
        instances.append(instance)
    return instances


def _effects(url: str) -> Counter[str]:
    schema = _schema_of(url)
    rows = _query(url, f'SELECT display_name FROM "{schema}".fault_effects')
    return Counter(str(row[0]) for row in rows)


def test_db_connections_terminated_under_load_fail_no_save(
    broker: RabbitNode,
    schema_url: str,
    topic: str,
    app_name: str,
    conductors: list[ConductorProcess],
    worker_transport: Any,
) -> None:
    conductors.append(
        ConductorProcess(broker.url, _with_app(schema_url, app_name), topic, "c-db", workers=4)
    )
    instances = _create_instances(2, "db")
    terminated: list[int] = []
    killer_errors: list[BaseException] = []
    stop_killing = threading.Event()

    def killer() -> None:
        # Only this test's conductor: its connections carry app_name.
        engine = sa.create_engine(
            _with_app(schema_url, f"{app_name}-killer"),
            poolclass=sa.NullPool,
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                while not stop_killing.is_set():
                    killed = conn.execute(
                        sa.text(
                            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                            "FROM pg_stat_activity WHERE application_name = :app "
                            "AND pid <> pg_backend_pid()"
                        ),
                        {"app": app_name},
                    ).scalar_one()
                    terminated.append(int(killed))
                    stop_killing.wait(0.1)
        except BaseException as exc:
            killer_errors.append(exc)
        finally:
            engine.dispose()

    savers = Savers(instances, "db", timeout=WORKER_TIMEOUT, saves_each=150)
    killing = threading.Thread(target=killer, daemon=True, name="faults-pg-killer")
    killing.start()
    try:
        wait_until(lambda: sum(terminated) > 0, 15, "a conductor connection to be terminated")
        began = time.monotonic()
        savers.start()
        stuck = savers.join(60)
        took = time.monotonic() - began
    finally:
        stop_killing.set()
        killing.join(10)
    conductor_log = conductors[0].stop()

    effects = _effects(schema_url)
    saved = [value for _n, value, _began in savers.ok]
    lost = [value for value in saved if effects[value] == 0]
    doubled = sorted(value for value, count in effects.items() if count > 1)
    rows = _query(
        schema_url,
        f'SELECT uuid, display_name FROM "{_schema_of(schema_url)}".instances ORDER BY id',
    )
    final = {str(row[0]): row[1] for row in rows}
    expected_final = {i.uuid: savers.last_value[n] for n, i in enumerate(instances)}
    hung = [d for d in savers.durations if d > savers.timeout + GRACE]
    summary(
        "DB connections terminated every 100ms, 2 workers x 150 saves",
        saves=savers.attempted(),
        saved=len(saved),
        failed_saves=len(savers.failed),
        lost=len(lost),
        doubled=len(doubled),
        foreign=len(savers.foreign),
        hung=len(hung) + len(stuck),
        terminated_connections=sum(terminated),
        retries_logged=conductor_log.count("trying again"),
        seconds=took,
        failures=Counter(reason.split(":")[0] for _v, reason in savers.failed),
    )
    assert not stuck, f"workers stuck: {stuck}"
    assert not killer_errors, killer_errors
    assert sum(terminated) >= 5, f"the fault hardly happened: {terminated}"
    assert not savers.foreign, savers.foreign[:5]
    assert not hung, f"saves past {savers.timeout}s + {GRACE}s: {hung}"
    assert not lost, f"saves that returned but never landed: {lost[:10]}"
    assert not doubled, f"saves applied twice: {doubled[:10]}"
    first_of_each = {reason.split(":")[0]: (v, reason) for v, reason in reversed(savers.failed)}
    assert not savers.failed, (
        f"{len(savers.failed)} of {savers.attempted()} saves failed; one of each kind: "
        f"{first_of_each}"
    )
    assert final == expected_final  # each instance holds its worker's last save


#: A commit that takes this long, so that a conductor can be killed inside it.
SLOW_COMMIT = 0.3


@pytest.mark.timeout(RESTARTING_TEST_TIMEOUT)
def test_each_save_takes_effect_once_across_broker_and_conductor_kills(
    broker: RabbitNode,
    schema_url: str,
    topic: str,
    app_name: str,
    conductors: list[ConductorProcess],
    worker_transport: Any,
) -> None:
    schema = _schema_of(schema_url)
    # Saves of "slow-..." values sleep in their COMMIT (a deferred trigger): a
    # conductor killed then has written, and never acknowledged, the request.
    _execute(
        schema_url,
        f"""CREATE FUNCTION "{schema}".fault_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({SLOW_COMMIT}); RETURN NULL; END $$""",
        f"""CREATE CONSTRAINT TRIGGER fault_slow_commit AFTER UPDATE ON "{schema}".instances
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN (NEW.display_name LIKE 'slow-%')
            EXECUTE FUNCTION "{schema}".fault_slow_commit()""",
    )
    urls = [(host, _with_app(schema_url, f"{app_name}-{host}")) for host in ("c1", "c2")]
    conductors += start_conductors(broker.url + "?max_backoff=1", urls, topic)
    victim = conductors[0]
    instances = _create_instances(4, "once")

    # One connection, polled: is a save of these conductors sleeping in its COMMIT?
    probe = sa.create_engine(
        _with_app(schema_url, "podium-faults-test"),
        pool_size=1,
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
    )

    def committing(app: str) -> bool:
        with probe.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :app "
                        "AND wait_event = 'PgSleep'"
                    ),
                    {"app": app},
                ).scalar_one()
            )

    savers = Savers(instances, "slow", timeout=WORKER_TIMEOUT).start()
    timings: dict[str, float] = {}
    try:
        wait_until(lambda: committing(f"{app_name}-%"), 20, "a save to be committing")
        began = time.monotonic()
        broker.kill()
        timings["broker_kill_s"] = time.monotonic() - began
        timings["recovered_after_broker_s"] = savers.wait_all_succeed_since(time.monotonic(), 40)

        wait_until(lambda: committing(f"{app_name}-c1"), 20, "a save committing on c1")
        victim.kill()
        timings["recovered_after_conductor_s"] = savers.wait_all_succeed_since(time.monotonic(), 40)
    finally:
        stuck = savers.stop(30)
        probe.dispose()

    effects = _effects(schema_url)
    saved = [value for _n, value, _began in savers.ok]
    lost = [value for value in saved if effects[value] == 0]
    doubled = sorted(value for value, count in effects.items() if count > 1)
    hung = [d for d in savers.durations if d > savers.timeout + GRACE]
    summary(
        "conductor effects across a broker SIGKILL and a conductor SIGKILL mid-commit",
        saves=savers.attempted(),
        saved=len(saved),
        failed_saves=len(savers.failed),
        lost=len(lost),
        doubled=len(doubled),
        hung=len(hung) + len(stuck),
        foreign=len(savers.foreign),
        failures=Counter(reason.split(":")[0] for _v, reason in savers.failed),
        **timings,
    )
    assert not stuck, f"workers stuck: {stuck}"
    assert not savers.foreign, savers.foreign[:5]
    assert not hung, f"saves past {savers.timeout}s + {GRACE}s: {hung}"
    assert not lost, f"saves that returned but never landed: {lost[:10]}"
    assert not doubled, f"{len(doubled)} saves took effect twice: {doubled[:10]}"
