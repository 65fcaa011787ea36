"""podium.cloud.db on every backend: instances, services, compute nodes, flavors, faults.

Each test gets a database migrated once per backend and session (framework and
installed applications), with the cloud's tables emptied and the flavors put
back as the migration left them. The object-level tests in
test_cloud_objects.py run on SQLite only; these hold each DB function to its
contract on SQLite, PostgreSQL and MariaDB, including under real concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from podium.cloud import db as db_api
from podium.cloud.db import _compute_nodes, _instances, _services
from podium.cloud.exceptions import InstanceInvalidState, UnexpectedTaskStateError
from podium.cloud.models import ComputeNode, Flavor, Instance, InstanceFault, Service
from podium.context import RequestContext
from podium.db import Database, allow_db_access, migration
from podium.db.api import soft_delete
from podium.db.models import table_of
from podium.exceptions import DBError, DuplicateEntry, NotFound

if TYPE_CHECKING:
    from tests.conftest import Servers

CTX = RequestContext(user_id="u1", project_id="p1")
YES = RequestContext(read_deleted="yes")
ONLY = RequestContext(read_deleted="only")
RATIO_ONE = {"cpu": 1.0, "ram": 1.0, "disk": 1.0}
TINY = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}
#: Children first, so a future foreign key never refuses the DELETE.
CLOUD_TABLES = [table_of(m) for m in (InstanceFault, Instance, ComputeNode, Service, Flavor)]
FLAVORS = table_of(Flavor)
#: Thread count of the racing tests: more than any node below has room for.
RACERS = 8


class _Migrated:
    def __init__(self, url: str, flavors: list[dict[str, Any]]) -> None:
        self.url = url
        # The flavor rows exactly as the migration inserted them, put back before each test.
        self.flavors = flavors


_MIGRATED: dict[str, _Migrated] = {}


def _migrated(servers: Servers, backend: str) -> _Migrated:
    migrated = _MIGRATED.get(backend)
    if migrated is None:
        url = servers.new_url(backend)
        database = Database(url)
        try:
            migration.sync(database)
            with database.connection() as connection:
                rows = connection.execute(sa.select(FLAVORS)).mappings().all()
        finally:
            database.dispose()
        migrated = _MIGRATED[backend] = _Migrated(url, [dict(row) for row in rows])
    return migrated


@pytest.fixture(scope="module", autouse=True)
def _forget_migrated() -> Iterator[None]:
    # The databases die with the session's `servers`; a later session must not reuse them.
    yield
    _MIGRATED.clear()


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    allow_db_access()
    migrated = _migrated(servers, backend)
    database = Database(migrated.url, pool_size=RACERS + 2)
    with database.connection() as connection:
        for table in CLOUD_TABLES:
            connection.execute(table.delete())
        connection.execute(FLAVORS.insert(), migrated.flavors)
    yield database
    database.dispose()


def _instance(database: Database, **values: object) -> Instance:
    base: dict[str, object] = {"host": "h1", "project_id": "p1", "vm_state": "active"}
    base.update(values)
    return db_api.instance_create(database, CTX, base)


def _unplaced(database: Database, **values: object) -> Instance:
    """An instance of m1.tiny's size that no host holds yet."""
    return _instance(database, **{"host": None, **TINY, **values})


def _node(database: Database, host: str = "c1", **totals: object) -> ComputeNode:
    values = {"vcpus": 4, "memory_mb": 4096, "disk_gb": 40, **totals}
    return db_api.compute_node_report(database, CTX, host, values)


def _used(database: Database, host: str = "c1") -> tuple[int, int, int]:
    node = db_api.compute_node_get_by_host(database, CTX, host)
    return node.vcpus_used, node.memory_mb_used, node.disk_gb_used


def _race(count: int, action: Callable[[int], object]) -> list[object]:
    """``action(i)`` in ``count`` threads released together; each one's result or exception."""
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait(timeout=30)
        try:
            results[index] = action(index)
        except Exception as error:  # the caller asserts on it
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racing thread never finished"
    return results


# -- instances (ported from tests/db) -------------------------------------------


def test_instance_create_fills_defaults(database: Database) -> None:
    row = _instance(database, display_name="vm ☃ 🚀", metadata={"k": "v", "n": [1, 2]})
    assert len(row.uuid) == 36
    assert row.deleted == 0 and row.deleted_at is None and row.updated_at is None
    assert row.created_at.tzinfo is UTC
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert (row.flavor, row.guest_status, row.guest_status_at) == (None, None, None)
    fetched = db_api.instance_get_by_uuid(database, CTX, row.uuid)
    assert fetched.id == row.id
    assert fetched.display_name == "vm ☃ 🚀"
    assert fetched.metadata_ == {"k": "v", "n": [1, 2]}
    assert fetched["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.to_dict()["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.created_at == row.created_at  # microseconds survive (DATETIME(6))


def test_instance_keeps_its_flavor_snapshot_and_guest_status(database: Database) -> None:
    snapshot = {"flavorid": "2", "name": "m1.small", "vcpus": 1, "memory_mb": 2048, "disk_gb": 20}
    seen = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    row = _instance(database, flavor=snapshot, guest_status="ok", guest_status_at=seen)
    db_api.flavor_destroy(database, CTX, "2")
    fetched = db_api.instance_get_by_uuid(database, CTX, row.uuid)
    assert fetched.flavor == snapshot
    assert (fetched.guest_status, fetched.guest_status_at) == ("ok", seen)


def test_instance_create_keeps_given_uuid(database: Database) -> None:
    row = _instance(database, uuid="00000000-0000-0000-0000-000000000001")
    assert row.uuid == "00000000-0000-0000-0000-000000000001"


def test_unknown_column_is_refused(database: Database) -> None:
    with pytest.raises(DBError, match="instances has no column 'colour'"):
        _instance(database, colour="red")
    # The old schema's column is gone for good.
    with pytest.raises(DBError, match="compute_nodes has no column 'local_gb'"):
        db_api.compute_node_create(database, CTX, {"host": "c1", "local_gb": 10})


def test_get_missing_names_table_and_key(database: Database) -> None:
    with pytest.raises(NotFound, match=r"instances.*uuid='nope'"):
        db_api.instance_get_by_uuid(database, CTX, "nope")


def test_soft_delete_keeps_the_row(database: Database) -> None:
    row = _instance(database)
    deleted = db_api.instance_destroy(database, CTX, row.uuid)
    assert deleted.deleted == row.id
    assert deleted.deleted_at is not None
    with pytest.raises(NotFound):
        db_api.instance_get_by_uuid(database, CTX, row.uuid)
    assert db_api.instance_get_by_uuid(database, YES, row.uuid).deleted == row.id
    with pytest.raises(NotFound):
        db_api.instance_destroy(database, CTX, row.uuid)
    with pytest.raises(NotFound):
        db_api.instance_update(database, CTX, row.uuid, {"vm_state": "x"})


def test_read_deleted_no_yes_only(database: Database) -> None:
    live = _instance(database)
    gone = _instance(database)
    db_api.instance_destroy(database, CTX, gone.uuid)

    def uuids(ctx: RequestContext) -> set[str]:
        return {row.uuid for row in db_api.instance_get_all(database, ctx)}

    assert uuids(CTX) == {live.uuid}
    assert uuids(YES) == {live.uuid, gone.uuid}
    assert uuids(ONLY) == {gone.uuid}
    assert {r.uuid for r in db_api.instance_get_all_by_host(database, ONLY, "h1")} == {gone.uuid}
    with pytest.raises(NotFound):
        db_api.instance_get_by_uuid(database, ONLY, live.uuid)


def test_unique_constraint_with_deleted_twin(database: Database) -> None:
    first = _instance(database, uuid="11111111-1111-1111-1111-111111111111")
    with pytest.raises(DuplicateEntry, match="instances"):
        _instance(database, uuid=first.uuid)
    db_api.instance_destroy(database, CTX, first.uuid)
    second = _instance(database, uuid=first.uuid)  # allowed: the twin is deleted
    with pytest.raises(DuplicateEntry):
        _instance(database, uuid=first.uuid)
    db_api.instance_destroy(database, CTX, second.uuid)
    third = _instance(database, uuid=first.uuid)
    rows = db_api.instance_get_all(database, YES, filters={"uuid": first.uuid})
    assert [r.id for r in rows] == [first.id, second.id, third.id]
    # the live one wins a by-uuid read when deleted rows are visible
    assert db_api.instance_get_by_uuid(database, YES, first.uuid).id == third.id
    assert db_api.instance_get_by_uuid(database, ONLY, first.uuid).id == second.id


def test_instance_update_sets_updated_at(database: Database) -> None:
    row = _instance(database)
    updated = db_api.instance_update(
        database, CTX, row.uuid, {"vm_state": "stopped", "power_state": 4, "metadata": {"a": 1}}
    )
    assert (updated.vm_state, updated.power_state, updated.metadata_) == ("stopped", 4, {"a": 1})
    assert updated.updated_at is not None and updated.updated_at >= row.created_at
    assert db_api.instance_get_by_uuid(database, CTX, row.uuid).vm_state == "stopped"
    with pytest.raises(DBError, match="cannot be set"):
        db_api.instance_update(database, CTX, row.uuid, {"deleted": 1})
    with pytest.raises(DBError, match="cannot be set"):
        db_api.instance_update(database, CTX, row.uuid, {"uuid": "other"})


def test_expected_task_state_compare_and_swap(database: Database) -> None:
    row = _instance(database, task_state=None)
    with pytest.raises(UnexpectedTaskStateError, match=r"expected task_state in \['spawning'\]"):
        db_api.instance_update(
            database, CTX, row.uuid, {"task_state": "x"}, expected_task_state="spawning"
        )
    assert db_api.instance_get_by_uuid(database, CTX, row.uuid).task_state is None
    got = db_api.instance_update(
        database, CTX, row.uuid, {"task_state": "spawning"}, expected_task_state=[None]
    )
    assert got.task_state == "spawning"
    got = db_api.instance_update(
        database,
        CTX,
        row.uuid,
        {"task_state": None, "vm_state": "active"},
        expected_task_state=("spawning", "scheduling"),
    )
    assert (got.task_state, got.vm_state) == (None, "active")
    with pytest.raises(NotFound):
        db_api.instance_update(database, CTX, "missing", {}, expected_task_state="x")


def test_compare_and_swap_has_one_winner(database: Database) -> None:
    row = _instance(database, task_state="scheduling")

    def contend(index: int) -> str:
        try:
            db_api.instance_update(
                database,
                CTX,
                row.uuid,
                {"task_state": f"t{index}"},
                expected_task_state="scheduling",
            )
        except UnexpectedTaskStateError:
            return "lost"
        return f"t{index}"

    outcomes = _race(6, contend)
    winners = [outcome for outcome in outcomes if outcome != "lost"]
    assert len(winners) == 1 and outcomes.count("lost") == 5, outcomes
    assert db_api.instance_get_by_uuid(database, CTX, row.uuid).task_state == winners[0]


def test_instance_get_all_filters_and_pages(database: Database) -> None:
    rows = [_instance(database, host=f"h{i % 2}", memory_mb=i) for i in range(7)]
    assert {r.id for r in db_api.instance_get_all(database, CTX, filters={"host": "h0"})} == {
        r.id for r in rows if r.host == "h0"
    }
    got = db_api.instance_get_all(database, CTX, filters={"memory_mb": [1, 2, 99]})
    assert [r.memory_mb for r in got] == [1, 2]
    assert len(db_api.instance_get_all(database, CTX, filters={"node": None})) == 7
    seen: list[int] = []
    marker = None
    while True:
        page = db_api.instance_get_all(
            database, CTX, limit=3, marker=marker, sort_key="memory_mb", sort_dir="desc"
        )
        if not page:
            break
        seen.extend(r.memory_mb for r in page)
        marker = page[-1].uuid
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    with pytest.raises(NotFound, match="Marker"):
        db_api.instance_get_all(database, CTX, marker="nope")
    # Only the listed keys sort (an index-less column would scan the table).
    with pytest.raises(DBError, match="sort_key"):
        db_api.instance_get_all(database, CTX, sort_key="hostname")
    with pytest.raises(DBError, match="sort_dir"):
        db_api.instance_get_all(database, CTX, sort_dir="up")  # type: ignore[arg-type]
    with pytest.raises(DBError, match="limit"):
        db_api.instance_get_all(database, CTX, limit=-1)
    with pytest.raises(DBError, match="no column"):
        db_api.instance_get_all(database, CTX, filters={"bogus": 1})


def test_naive_datetimes_are_taken_as_utc(database: Database) -> None:
    row = _instance(database, launched_at=datetime(2026, 1, 2, 3, 4, 5, 678901))
    fetched = db_api.instance_get_by_uuid(database, CTX, row.uuid)
    assert fetched.launched_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_bad_values_are_db_errors(database: Database) -> None:
    with pytest.raises(DBError, match="expected a datetime"):
        _instance(database, launched_at="yesterday")
    row = _instance(database)
    with pytest.raises(DBError, match="expected a datetime"):
        db_api.instance_update(database, CTX, row.uuid, {"terminated_at": 5})


# -- services (ported from tests/db) ---------------------------------------------


def test_service_unique_host_binary(database: Database) -> None:
    svc = db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    with pytest.raises(DuplicateEntry):
        db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    db_api.service_destroy(database, CTX, svc.id)
    again = db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    assert again.id != svc.id


def test_services(database: Database) -> None:
    a = db_api.service_create(
        database, CTX, {"host": "a", "binary": "podium-compute", "topic": "compute", "version": 3}
    )
    b = db_api.service_create(
        database, CTX, {"host": "b", "binary": "podium-conductor", "topic": "conductor"}
    )
    assert [s.id for s in db_api.service_get_all(database, CTX)] == [a.id, b.id]
    assert [s.id for s in db_api.service_get_all(database, CTX, topic="compute")] == [a.id]
    assert [s.id for s in db_api.service_get_all(database, CTX, binary="podium-conductor")] == [
        b.id
    ]
    got = db_api.service_get_by_host_and_binary(database, CTX, "a", "podium-compute")
    assert (got.id, got.version, got.disabled, got.forced_down) == (a.id, 3, False, False)
    now = datetime.now(UTC)
    up = db_api.service_update(
        database, CTX, a.id, {"report_count": 5, "last_seen_up": now, "disabled": True}
    )
    assert (up.report_count, up.disabled, up.last_seen_up) == (5, True, now)
    assert up.updated_at is not None
    with pytest.raises(NotFound, match=r"services.*'nohost'"):
        db_api.service_get_by_host_and_binary(database, CTX, "nohost", "podium-compute")
    db_api.service_destroy(database, CTX, a.id)
    assert [s.id for s in db_api.service_get_all(database, CTX)] == [b.id]
    assert [s.id for s in db_api.service_get_all(database, ONLY)] == [a.id]
    assert db_api.service_get(database, YES, a.id).deleted == a.id
    with pytest.raises(NotFound):
        db_api.service_update(database, CTX, a.id, {"report_count": 6})


def test_service_minimum_version(database: Database) -> None:
    def make(host: str, binary: str, version: int, **extra: object) -> int:
        values = {"host": host, "binary": binary, "version": version, **extra}
        return db_api.service_create(database, CTX, values).id

    make("a", "podium-compute", 7)
    make("b", "podium-compute", 5)
    make("c", "podium-compute", 2, forced_down=True)  # down: does not hold the fleet back
    db_api.service_destroy(database, CTX, make("d", "podium-compute", 1))
    make("e", "podium-conductor", 9)
    assert db_api.service_get_minimum_version(
        database, CTX, ["podium-compute", "podium-conductor", "podium-api"]
    ) == {"podium-compute": 5, "podium-conductor": 9, "podium-api": None}


# -- service_report --------------------------------------------------------------

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _report(
    database: Database, sent_at: datetime, topic: str = "compute", version: int = 2
) -> tuple[Service, bool]:
    return db_api.service_report(database, CTX, "h1", "podium-compute", topic, version, sent_at)


def test_the_first_report_creates_the_service(database: Database) -> None:
    before = datetime.now(UTC)
    row, stored = _report(database, T0)
    assert stored
    # Up is judged by when the report was stored, on the storing side's clock.
    assert row.last_seen_up is not None and row.last_seen_up >= before
    assert (row.host, row.binary, row.topic, row.version) == ("h1", "podium-compute", "compute", 2)
    assert (row.report_count, row.last_report_sent_at, row.deleted) == (1, T0, 0)
    assert row.disabled is False
    got = db_api.service_get_by_host_and_binary(database, CTX, "h1", "podium-compute")
    assert (got.id, got.report_count, got.last_report_sent_at) == (row.id, 1, T0)


def test_a_report_older_than_the_stored_one_changes_nothing(database: Database) -> None:
    first, _ = _report(database, T0)
    newer, stored = _report(database, T0 + timedelta(seconds=10), version=3)
    assert stored
    assert (newer.id, newer.report_count, newer.last_report_sent_at) == (
        first.id,
        2,
        T0 + timedelta(seconds=10),
    )
    assert newer.version == 3
    for late in (T0 + timedelta(seconds=5), T0 + timedelta(seconds=10)):
        row, stored = _report(database, late, topic="other", version=9)
        assert not stored
        assert (row.report_count, row.last_report_sent_at, row.topic, row.version) == (
            2,
            T0 + timedelta(seconds=10),
            "compute",
            3,
        )
    got = db_api.service_get(database, CTX, first.id)
    assert (got.report_count, got.last_report_sent_at, got.version) == (
        2,
        T0 + timedelta(seconds=10),
        3,
    )


def test_a_report_after_the_service_was_deleted_starts_a_new_row(database: Database) -> None:
    first, _ = _report(database, T0)
    db_api.service_destroy(database, CTX, first.id)
    # Older than the deleted row's last report: the deleted row does not count.
    again, stored = _report(database, T0 - timedelta(seconds=1))
    assert stored and again.id != first.id
    assert (again.report_count, again.last_report_sent_at) == (1, T0 - timedelta(seconds=1))


def test_a_report_keeps_an_admin_disabling(database: Database) -> None:
    first, _ = _report(database, T0)
    db_api.service_update(
        database, CTX, first.id, {"disabled": True, "disabled_reason": "maintenance"}
    )
    row, _ = _report(database, T0 + timedelta(seconds=1))
    assert (row.disabled, row.disabled_reason) == (True, "maintenance")


def test_racing_first_reports_end_in_one_row(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both reports must have missed the row before either inserts it: hold each
    # INSERT until the other has reached its own. (SQLite has one writer: the
    # second report's UPDATE waits for the first's COMMIT, and finds the row.)
    both_missed = threading.Barrier(2)
    inserts: list[str] = []
    real_insert = _services.insert_row

    def insert_after_both_missed(session: Any, model: Any, values: Any) -> Any:
        both_missed.wait(timeout=30)
        try:
            row = real_insert(session, model, values)
        except sa.exc.DBAPIError as error:  # DuplicateEntry or DBDeadlock once it ends
            inserts.append("duplicate" if isinstance(error, sa.exc.IntegrityError) else "deadlock")
            raise
        inserts.append("inserted")
        return row

    racing = database.backend != "sqlite"
    if racing:
        monkeypatch.setattr(_services, "insert_row", insert_after_both_missed)
    sent = [T0, T0 + timedelta(seconds=1)]
    results = _race(2, lambda index: _report(database, sent[index]))
    if racing:
        # MariaDB: each missing UPDATE took a gap lock that the other's INSERT waits
        # for; one is chosen as the deadlock's victim and runs again.
        lost = "deadlock" if database.backend == "mysql" else "duplicate"
        assert sorted(inserts) == sorted([lost, "inserted"])
    assert not [r for r in results if isinstance(r, BaseException)], results
    outcomes = [stored for _row, stored in results]  # type: ignore[misc]
    assert outcomes[1] is True  # the newer report always lands
    live = db_api.service_get_all(database, CTX)
    assert len(live) == 1
    assert len(db_api.service_get_all(database, YES)) == 1
    assert live[0].last_report_sent_at == T0 + timedelta(seconds=1)
    # The older one counts only if it created the row before the newer came.
    assert live[0].report_count == outcomes.count(True)


# -- compute nodes (ported from tests/db) ----------------------------------------


def test_compute_nodes(database: Database) -> None:
    node = db_api.compute_node_create(
        database, CTX, {"host": "c1", "hypervisor_hostname": "c1.fake", "vcpus": 8}
    )
    with pytest.raises(DuplicateEntry):
        db_api.compute_node_create(database, CTX, {"host": "c1", "vcpus": 4})
    updated = db_api.compute_node_update(database, CTX, node.id, {"vcpus_used": 2})
    assert (updated.vcpus, updated.vcpus_used, updated.memory_mb, updated.disk_gb) == (8, 2, 0, 0)
    assert db_api.compute_node_get_by_host(database, CTX, "c1").vcpus_used == 2
    assert db_api.compute_node_get(database, CTX, node.id).hypervisor_hostname == "c1.fake"
    assert [n.id for n in db_api.compute_node_get_all(database, CTX)] == [node.id]
    db_api.compute_node_destroy(database, CTX, node.id)
    assert db_api.compute_node_get_all(database, CTX) == []
    assert db_api.compute_node_get(database, ONLY, node.id).host == "c1"
    db_api.compute_node_create(database, CTX, {"host": "c1", "vcpus": 4})


# -- compute_node_report ---------------------------------------------------------


def test_a_node_report_stores_totals_and_never_the_used_amounts(database: Database) -> None:
    first = _node(database, hypervisor_hostname="c1.fake")
    assert (first.host, first.hypervisor_hostname) == ("c1", "c1.fake")
    assert (first.vcpus, first.memory_mb, first.disk_gb) == (4, 4096, 40)
    assert (first.vcpus_used, first.memory_mb_used, first.disk_gb_used) == (0, 0, 0)
    db_api.compute_node_update(database, CTX, first.id, {"memory_mb_used": 100})
    again = _node(database, vcpus=8)
    assert (again.id, again.vcpus, again.memory_mb_used) == (first.id, 8, 100)
    assert again.updated_at is not None
    with pytest.raises(DBError, match="memory_mb_used"):
        db_api.compute_node_report(database, CTX, "c1", {"memory_mb_used": 0})
    assert _used(database) == (0, 100, 0)


# -- compute_node_claim ----------------------------------------------------------


def test_a_claim_takes_room_and_places_the_instance(database: Database) -> None:
    _node(database, vcpus=2, memory_mb=1024, disk_gb=2)
    first, second, third = (_unplaced(database) for _ in range(3))
    assert db_api.compute_node_claim(database, CTX, "c1", first.uuid, RATIO_ONE)
    placed = db_api.instance_get_by_uuid(database, CTX, first.uuid)
    assert (placed.host, placed.node) == ("c1", "c1")
    assert db_api.compute_node_claim(database, CTX, "c1", second.uuid, RATIO_ONE)
    assert _used(database) == (2, 1024, 2)
    # Full at ratio 1.0: refused, and the instance stays unplaced.
    assert not db_api.compute_node_claim(database, CTX, "c1", third.uuid, RATIO_ONE)
    assert db_api.instance_get_by_uuid(database, CTX, third.uuid).host is None
    assert _used(database) == (2, 1024, 2)
    # Each resource has its own ratio; one short is enough to refuse.
    short_of_disk = {"cpu": 2.0, "ram": 2.0, "disk": 1.0}
    assert not db_api.compute_node_claim(database, CTX, "c1", third.uuid, short_of_disk)
    assert db_api.compute_node_claim(
        database, CTX, "c1", third.uuid, {"cpu": 1.5, "ram": 1.5, "disk": 1.5}
    )
    assert _used(database) == (3, 1536, 3)
    # A replay of a claim this host holds succeeds and takes nothing more.
    assert db_api.compute_node_claim(database, CTX, "c1", first.uuid, RATIO_ONE)
    assert _used(database) == (3, 1536, 3)


def test_a_claim_refuses_what_it_cannot_place(database: Database) -> None:
    _node(database, "c1")
    _node(database, "c2")
    instance = _unplaced(database)
    assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    with pytest.raises(InstanceInvalidState, match="'c1'"):
        db_api.compute_node_claim(database, CTX, "c2", instance.uuid, RATIO_ONE)
    assert _used(database, "c2") == (0, 0, 0)
    with pytest.raises(NotFound):
        db_api.compute_node_claim(database, CTX, "c1", "no-such-instance", RATIO_ONE)
    # No node by that name (or only a deleted one): nothing to claim on.
    other = _unplaced(database)
    assert not db_api.compute_node_claim(database, CTX, "nowhere", other.uuid, RATIO_ONE)
    db_api.compute_node_destroy(
        database, CTX, db_api.compute_node_get_by_host(database, CTX, "c2").id
    )
    assert not db_api.compute_node_claim(database, CTX, "c2", other.uuid, RATIO_ONE)
    assert db_api.instance_get_by_uuid(database, CTX, other.uuid).host is None
    gone = _unplaced(database)
    db_api.instance_destroy(database, CTX, gone.uuid)
    with pytest.raises(NotFound):
        db_api.compute_node_claim(database, CTX, "c1", gone.uuid, RATIO_ONE)


def test_racing_claims_fill_a_node_exactly(database: Database) -> None:
    room = 3
    _node(database, vcpus=room, memory_mb=room * 512, disk_gb=room)
    uuids = [_unplaced(database).uuid for _ in range(RACERS)]
    results = _race(
        RACERS, lambda i: db_api.compute_node_claim(database, CTX, "c1", uuids[i], RATIO_ONE)
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    winners = [u for u, won in zip(uuids, results, strict=True) if won is True]
    assert len(winners) == room, results
    assert _used(database) == (room, room * 512, room)
    on_host = {row.uuid for row in db_api.instance_get_all_by_host(database, CTX, "c1")}
    assert on_host == set(winners)


def test_racing_claims_of_mixed_sizes_never_over_commit(database: Database) -> None:
    # Sizes such that which ones win depends on the order: only the sum is bound.
    sizes = [
        {"vcpus": 1 + i % 3, "memory_mb": 512 * (1 + i % 4), "root_gb": 5 * (1 + i % 2)}
        for i in range(RACERS)
    ]
    totals = {"vcpus": 6, "memory_mb": 4096, "disk_gb": 25}
    _node(database, **totals)
    uuids = [_unplaced(database, **size).uuid for size in sizes]
    results = _race(
        RACERS, lambda i: db_api.compute_node_claim(database, CTX, "c1", uuids[i], RATIO_ONE)
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    won = [i for i, result in enumerate(results) if result is True]
    assert won and len(won) < RACERS, results
    used = _used(database)
    expected = tuple(sum(sizes[i][key] for i in won) for key in ("vcpus", "memory_mb", "root_gb"))
    assert used == expected
    assert used[0] <= totals["vcpus"] and used[1] <= totals["memory_mb"]
    assert used[2] <= totals["disk_gb"]
    hosts = {row.uuid: row.host for row in db_api.instance_get_all(database, CTX)}
    assert {u for u, host in hosts.items() if host == "c1"} == {uuids[i] for i in won}
    # Every loser was refused for want of room, not for a lost race.
    free = (totals["vcpus"] - used[0], totals["memory_mb"] - used[1], totals["disk_gb"] - used[2])
    for i in set(range(RACERS)) - set(won):
        size = sizes[i]
        wanted = (size["vcpus"], size["memory_mb"], size["root_gb"])
        assert any(w > f for w, f in zip(wanted, free, strict=True)), (i, wanted, free)


def test_racing_claims_of_one_instance_on_two_nodes_place_it_once(database: Database) -> None:
    _node(database, "c1")
    _node(database, "c2")
    instance = _unplaced(database)
    hosts = ["c1", "c2"]
    results = _race(
        2, lambda i: db_api.compute_node_claim(database, CTX, hosts[i], instance.uuid, RATIO_ONE)
    )
    assert sorted(type(r).__name__ for r in results) == ["InstanceInvalidState", "bool"], results
    winner = hosts[results.index(True)]
    assert db_api.instance_get_by_uuid(database, CTX, instance.uuid).host == winner
    assert _used(database, winner) == (1, 512, 1)
    loser = hosts[1 - hosts.index(winner)]
    assert _used(database, loser) == (0, 0, 0)


# -- compute_node_release / instance_destroy give back ---------------------------


def test_a_release_gives_the_room_back_once(database: Database) -> None:
    _node(database)
    held, other = _unplaced(database), _unplaced(database, memory_mb=1024)
    for instance in (held, other):
        assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    assert _used(database) == (2, 1536, 2)
    assert not db_api.compute_node_release(database, CTX, "c2", held.uuid)  # not there
    assert _used(database) == (2, 1536, 2)
    assert db_api.compute_node_release(database, CTX, "c1", held.uuid)
    released = db_api.instance_get_by_uuid(database, CTX, held.uuid)
    assert (released.host, released.node) == (None, None)
    assert _used(database) == (1, 1024, 1)
    assert not db_api.compute_node_release(database, CTX, "c1", held.uuid)  # idempotent
    assert _used(database) == (1, 1024, 1)
    with pytest.raises(NotFound):
        db_api.compute_node_release(database, CTX, "c1", "no-such-instance")


def test_a_release_never_takes_usage_below_zero(database: Database) -> None:
    node = _node(database)
    instance = _unplaced(database, vcpus=2, memory_mb=1024, root_gb=10)
    assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    # Usage lower than what the instance holds (an operator's edit, a stale count).
    db_api.compute_node_update(
        database, CTX, node.id, {"vcpus_used": 1, "memory_mb_used": 2000, "disk_gb_used": 3}
    )
    assert db_api.compute_node_release(database, CTX, "c1", instance.uuid)
    assert _used(database) == (0, 976, 0)


def test_destroying_a_placed_instance_gives_its_room_back(database: Database) -> None:
    _node(database)
    _node(database, "c2")
    placed = _unplaced(database, vcpus=2, memory_mb=2048, root_gb=20)
    kept = _unplaced(database)
    for instance in (placed, kept):
        assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    assert db_api.compute_node_claim(database, CTX, "c2", _unplaced(database).uuid, RATIO_ONE)
    assert _used(database) == (3, 2560, 21)
    gone = db_api.instance_destroy(
        database, CTX, placed.uuid, {"vm_state": "deleted", "task_state": None}
    )
    assert (gone.deleted, gone.vm_state, gone.task_state) == (placed.id, "deleted", None)
    assert _used(database) == (1, 512, 1)
    assert _used(database, "c2") == (1, 512, 1)
    # An instance no host holds gives nothing back to anyone.
    db_api.instance_destroy(database, CTX, _unplaced(database).uuid)
    assert (_used(database), _used(database, "c2")) == ((1, 512, 1), (1, 512, 1))


def test_a_failed_destroy_gives_nothing_back(database: Database) -> None:
    _node(database)
    instance = _unplaced(database)
    assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    with pytest.raises(DBError, match="expected a datetime"):
        db_api.instance_destroy(database, CTX, instance.uuid, {"terminated_at": "soon"})
    assert _used(database) == (1, 512, 1)
    assert db_api.instance_get_by_uuid(database, CTX, instance.uuid).deleted == 0


def test_racing_releases_of_one_instance_give_its_room_back_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _node(database)
    stays, leaves = _unplaced(database), _unplaced(database, memory_mb=1024)
    for instance in (stays, leaves):
        assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    # Both releases read the instance on c1 before either changes it (a compute
    # host's clean-up and a retried one, say).
    both_read = threading.Barrier(2)
    real_get_one = _compute_nodes.get_one

    def get_one_then_wait(*args: Any, **kwargs: Any) -> Any:
        row = real_get_one(*args, **kwargs)
        both_read.wait(timeout=30)
        return row

    monkeypatch.setattr(_compute_nodes, "get_one", get_one_then_wait)
    results = _race(2, lambda _i: db_api.compute_node_release(database, CTX, "c1", leaves.uuid))
    monkeypatch.undo()
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(results) == [False, True]  # type: ignore[type-var]
    # What the instance that stays holds is still counted.
    assert _used(database) == (1, 512, 1)


def test_a_claim_racing_the_destroy_of_its_instance_takes_no_room(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _node(database)
    instance = _unplaced(database)
    real_get_one = _compute_nodes.get_one
    destroyed = threading.Event()

    def get_one_then_destroy(*args: Any, **kwargs: Any) -> Any:
        row = real_get_one(*args, **kwargs)
        if not destroyed.is_set():
            # The claim has read the instance unplaced; the user deletes it now.
            destroyed.set()
            # In a thread of its own: a second transaction, as another request's would be.
            gone = _race(1, lambda _i: db_api.instance_destroy(database, CTX, instance.uuid))[0]
            assert isinstance(gone, Instance) and gone.deleted, gone
        return row

    monkeypatch.setattr(_compute_nodes, "get_one", get_one_then_destroy)
    try:
        claimed: object = db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    except (NotFound, InstanceInvalidState) as error:
        claimed = error
    monkeypatch.undo()
    assert destroyed.is_set()
    assert claimed is not True
    assert db_api.instance_get_by_uuid(database, YES, instance.uuid).host is None
    # No live instance is on c1: nothing may be counted there.
    assert _used(database) == (0, 0, 0)


def test_a_destroy_racing_a_claim_of_its_instance_gives_the_room_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _node(database)
    instance = _unplaced(database)
    real_get_one = _instances.get_one
    claimed = threading.Event()

    def get_one_then_claim(*args: Any, **kwargs: Any) -> Any:
        row = real_get_one(*args, **kwargs)
        if not claimed.is_set():
            # The destroy has read the instance unplaced; a scheduler claims it now,
            # in a transaction of its own.
            claimed.set()
            won = _race(
                1,
                lambda _i: db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE),
            )[0]
            assert won is True, won
        return row

    monkeypatch.setattr(_instances, "get_one", get_one_then_claim)
    gone = db_api.instance_destroy(database, CTX, instance.uuid)
    monkeypatch.undo()
    assert claimed.is_set()
    assert gone.deleted and gone.host == "c1"
    # The destroy saw the claim it raced and gave its room back.
    assert _used(database) == (0, 0, 0)


# -- compute_node_reconcile -------------------------------------------------------


def test_reconcile_recounts_from_the_live_instances_on_the_host(database: Database) -> None:
    node = _node(database)
    _node(database, "c2")
    # Not counted: a deleted instance whose row still names c1, and one on another host.
    ghost = _instance(database, host="c1", vcpus=8, memory_mb=8192, root_gb=80)
    db_api.instance_destroy(database, CTX, ghost.uuid)
    assert db_api.instance_get_by_uuid(database, YES, ghost.uuid).host == "c1"
    for size in (TINY, {"vcpus": 2, "memory_mb": 1024, "root_gb": 20}):
        instance = _unplaced(database, **size)
        assert db_api.compute_node_claim(database, CTX, "c1", instance.uuid, RATIO_ONE)
    assert db_api.compute_node_claim(database, CTX, "c2", _unplaced(database).uuid, RATIO_ONE)
    db_api.compute_node_update(
        database, CTX, node.id, {"vcpus_used": 99, "memory_mb_used": 7, "disk_gb_used": 0}
    )
    recounted = db_api.compute_node_reconcile(database, CTX, "c1")
    assert (recounted.vcpus_used, recounted.memory_mb_used, recounted.disk_gb_used) == (3, 1536, 21)
    assert (recounted.vcpus, recounted.memory_mb, recounted.disk_gb) == (4, 4096, 40)
    assert _used(database) == (3, 1536, 21)
    assert _used(database, "c2") == (1, 512, 1)


def test_reconcile_of_an_empty_host_is_zero_and_of_no_host_not_found(database: Database) -> None:
    node = _node(database)
    db_api.compute_node_update(database, CTX, node.id, {"vcpus_used": 3, "disk_gb_used": 9})
    recounted = db_api.compute_node_reconcile(database, CTX, "c1")
    assert (recounted.vcpus_used, recounted.memory_mb_used, recounted.disk_gb_used) == (0, 0, 0)
    with pytest.raises(NotFound, match="compute_nodes"):
        db_api.compute_node_reconcile(database, CTX, "nowhere")


# -- instance_record_guest_status -------------------------------------------------


def test_guest_status_keeps_the_newest_report(database: Database) -> None:
    instance = _instance(database)
    before = db_api.instance_get_by_uuid(database, CTX, instance.uuid)
    assert db_api.instance_record_guest_status(database, CTX, instance.uuid, "booting", T0)
    later = T0 + timedelta(seconds=30)
    assert db_api.instance_record_guest_status(database, CTX, instance.uuid, "ok", later)
    # Late or replayed reports are refused and leave the newest one.
    assert not db_api.instance_record_guest_status(database, CTX, instance.uuid, "booting", T0)
    assert not db_api.instance_record_guest_status(database, CTX, instance.uuid, "stale", later)
    row = db_api.instance_get_by_uuid(database, CTX, instance.uuid)
    assert (row.guest_status, row.guest_status_at) == ("ok", later)
    # A heartbeat is not a change of the instance.
    assert row.updated_at == before.updated_at


def test_guest_status_of_a_missing_or_deleted_instance_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound, match="instances"):
        db_api.instance_record_guest_status(database, CTX, "no-such-instance", "ok", T0)
    instance = _instance(database)
    db_api.instance_destroy(database, CTX, instance.uuid)
    with pytest.raises(NotFound):
        db_api.instance_record_guest_status(database, YES, instance.uuid, "ok", T0)
    assert db_api.instance_get_by_uuid(database, YES, instance.uuid).guest_status is None


def test_racing_guest_reports_keep_the_newest(database: Database) -> None:
    instance = _instance(database)
    sent = [T0 + timedelta(seconds=i) for i in range(RACERS)]
    results = _race(
        RACERS,
        lambda i: db_api.instance_record_guest_status(
            database, CTX, instance.uuid, f"s{i}", sent[i]
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert results[-1] is True  # the newest is never refused
    row = db_api.instance_get_by_uuid(database, CTX, instance.uuid)
    assert (row.guest_status, row.guest_status_at) == (f"s{RACERS - 1}", sent[-1])


# -- faults ------------------------------------------------------------------------


def test_the_latest_fault_of_each_instance(database: Database) -> None:
    a, b, quiet = (_instance(database) for _ in range(3))
    for n in range(3):
        db_api.instance_fault_create(
            database, CTX, {"instance_uuid": a.uuid, "code": 500 + n, "message": f"a{n}"}
        )
    only = db_api.instance_fault_create(
        database, CTX, {"instance_uuid": b.uuid, "message": "b0", "host": "c1"}
    )
    latest = db_api.instance_fault_get_latest(database, CTX, [a.uuid, b.uuid, quiet.uuid])
    assert set(latest) == {a.uuid, b.uuid}
    assert (latest[a.uuid].message, latest[a.uuid].code) == ("a2", 502)
    assert (latest[b.uuid].id, latest[b.uuid].code, latest[b.uuid].host) == (only.id, 500, "c1")
    assert db_api.instance_fault_get_latest(database, CTX, []) == {}
    assert db_api.instance_fault_get_latest(database, CTX, [quiet.uuid]) == {}


def test_a_deleted_fault_is_never_the_latest(database: Database) -> None:
    instance = _instance(database)
    older = db_api.instance_fault_create(
        database, CTX, {"instance_uuid": instance.uuid, "message": "older"}
    )
    newer = db_api.instance_fault_create(
        database, CTX, {"instance_uuid": instance.uuid, "message": "newer"}
    )
    database.run(lambda session: soft_delete(session, InstanceFault, id=newer.id))
    # Even for a context that reads deleted rows.
    for ctx in (CTX, YES):
        latest = db_api.instance_fault_get_latest(database, ctx, [instance.uuid])
        assert latest[instance.uuid].id == older.id


def test_a_long_fault_message_is_cut_and_kept_whole_in_details(database: Database) -> None:
    instance = _instance(database)
    text = "boom " * 100
    fault = db_api.instance_fault_create(
        database, CTX, {"instance_uuid": instance.uuid, "message": text}
    )
    assert len(fault.message) == 255 and fault.message.endswith("...")
    assert text.startswith(fault.message[:-3])
    assert fault.details == text
    given = db_api.instance_fault_create(
        database, CTX, {"instance_uuid": instance.uuid, "message": text, "details": "trace"}
    )
    assert (len(given.message), given.details) == (255, "trace")
    stored = db_api.instance_fault_get_latest(database, CTX, [instance.uuid])[instance.uuid]
    assert (stored.id, stored.details) == (given.id, "trace")


# -- flavors -----------------------------------------------------------------------


def test_the_migration_inserts_the_default_flavors(database: Database) -> None:
    flavors = db_api.flavor_get_all(database, CTX)
    assert [(f.flavorid, f.name, f.vcpus, f.memory_mb, f.disk_gb) for f in flavors] == [
        ("1", "m1.tiny", 1, 512, 1),
        ("2", "m1.small", 1, 2048, 20),
        ("3", "m1.medium", 2, 4096, 40),
        ("4", "m1.large", 4, 8192, 80),
        ("5", "m1.xlarge", 8, 16384, 160),
    ]
    for flavor in flavors:
        assert flavor.is_public is True and flavor.deleted == 0
        assert flavor.created_at is not None and flavor.created_at.tzinfo is UTC


def test_flavors(database: Database) -> None:
    custom = db_api.flavor_create(
        database,
        CTX,
        {"flavorid": "c1", "name": "c1.mini", "vcpus": 1, "memory_mb": 256, "disk_gb": 1},
    )
    assert (custom.is_public, custom.deleted) == (True, 0)
    assert db_api.flavor_get_by_flavor_id(database, CTX, "c1").id == custom.id
    # Smallest memory first, ties broken by flavorid.
    db_api.flavor_create(
        database,
        CTX,
        {
            "flavorid": "0",
            "name": "m1.tiny-private",
            "vcpus": 1,
            "memory_mb": 512,
            "disk_gb": 2,
            "is_public": False,
        },
    )
    listed = [(f.flavorid, f.is_public) for f in db_api.flavor_get_all(database, CTX)]
    assert listed[:3] == [("c1", True), ("0", False), ("1", True)]
    assert len(listed) == 7
    with pytest.raises(DuplicateEntry):
        db_api.flavor_create(
            database,
            CTX,
            {"flavorid": "c2", "name": "c1.mini", "vcpus": 1, "memory_mb": 1, "disk_gb": 1},
        )
    with pytest.raises(DuplicateEntry):
        db_api.flavor_create(
            database,
            CTX,
            {"flavorid": "c1", "name": "other", "vcpus": 1, "memory_mb": 1, "disk_gb": 1},
        )
    with pytest.raises(NotFound, match=r"flavors.*flavorid='nope'"):
        db_api.flavor_get_by_flavor_id(database, CTX, "nope")


def test_a_destroyed_flavor_frees_its_names(database: Database) -> None:
    gone = db_api.flavor_destroy(database, CTX, "2")
    assert gone.deleted == gone.id and gone.deleted_at is not None
    with pytest.raises(NotFound):
        db_api.flavor_get_by_flavor_id(database, CTX, "2")
    assert "2" not in [f.flavorid for f in db_api.flavor_get_all(database, CTX)]
    assert db_api.flavor_get_by_flavor_id(database, YES, "2").id == gone.id
    assert [f.flavorid for f in db_api.flavor_get_all(database, ONLY)] == ["2"]
    with pytest.raises(NotFound):
        db_api.flavor_destroy(database, CTX, "2")
    again = db_api.flavor_create(
        database,
        CTX,
        {"flavorid": "2", "name": "m1.small", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20},
    )
    assert again.id != gone.id
    assert db_api.flavor_get_by_flavor_id(database, YES, "2").id == again.id


def test_the_cloud_tables_are_emptied_between_tests(database: Database) -> None:
    # The fixture's own check: a leftover instance would make counts above lie.
    assert db_api.instance_get_all(database, YES) == []
    assert db_api.service_get_all(database, YES) == []
    assert db_api.compute_node_get_all(database, YES) == []
    assert len(db_api.flavor_get_all(database, YES)) == 5
