"""Cloud DB tests moved out of tests/db when podium.db became generic (issue 12, section 1).

NOT COLLECTED (no ``test_`` prefix in the file name): these exercised the
instance/service/compute-node functions that lived in podium.db.api and now
live in podium.cloud.db with the same names and signatures. They are kept
verbatim (imports switched to podium.cloud) for the cloud's own tests to take
over: port them to tests/cloud/ and delete this file. They use the
``database`` fixture of tests/db/conftest.py (a migrated database on every
backend, tables emptied before each test).

The generic behaviour they also covered (soft delete, read_deleted, deleted
twins, unknown columns, naive datetimes, bad values, compare-and-swap with one
winner) is tested on the toy application in tests/db/test_api.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from podium.cloud import db as db_api
from podium.cloud.exceptions import UnexpectedTaskStateError
from podium.cloud.models import Instance
from podium.context import RequestContext
from podium.db import Database
from podium.exceptions import DBError, DuplicateEntry, NotFound

CTX = RequestContext(user_id="u1", project_id="p1")
YES = RequestContext(read_deleted="yes")
ONLY = RequestContext(read_deleted="only")


def _instance(database: Database, **values: object) -> Instance:
    base: dict[str, object] = {"host": "h1", "project_id": "p1", "vm_state": "active"}
    base.update(values)
    return db_api.instance_create(database, CTX, base)


def test_instance_create_fills_defaults(database: Database) -> None:
    row = _instance(database, display_name="vm ☃ 🚀", metadata={"k": "v", "n": [1, 2]})
    assert len(row.uuid) == 36
    assert row.deleted == 0 and row.deleted_at is None and row.updated_at is None
    assert row.created_at.tzinfo is UTC
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    fetched = db_api.instance_get_by_uuid(database, CTX, row.uuid)
    assert fetched.id == row.id
    assert fetched.display_name == "vm ☃ 🚀"
    assert fetched.metadata_ == {"k": "v", "n": [1, 2]}
    assert fetched["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.to_dict()["metadata"] == {"k": "v", "n": [1, 2]}
    assert fetched.created_at == row.created_at  # microseconds survive (DATETIME(6))


def test_instance_create_keeps_given_uuid(database: Database) -> None:
    row = _instance(database, uuid="00000000-0000-0000-0000-000000000001")
    assert row.uuid == "00000000-0000-0000-0000-000000000001"


def test_unknown_column_is_refused(database: Database) -> None:
    with pytest.raises(DBError, match="instances has no column 'colour'"):
        _instance(database, colour="red")


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


def test_service_unique_host_binary(database: Database) -> None:
    svc = db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    with pytest.raises(DuplicateEntry):
        db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    db_api.service_destroy(database, CTX, svc.id)
    again = db_api.service_create(database, CTX, {"host": "h", "binary": "podium-compute"})
    assert again.id != svc.id


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
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(name: str) -> None:
        try:
            db_api.instance_update(
                database, CTX, row.uuid, {"task_state": name}, expected_task_state="scheduling"
            )
            result = "won"
        except UnexpectedTaskStateError:
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=contend, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]


def test_instance_get_all_filters_and_pages(database: Database) -> None:
    rows = [_instance(database, host=f"h{i % 2}", memory_mb=i) for i in range(7)]
    assert {r.id for r in db_api.instance_get_all(database, CTX, filters={"host": "h0"})} == {
        r.id for r in rows if r.host == "h0"
    }
    got = db_api.instance_get_all(database, CTX, filters={"memory_mb": [1, 2, 99]})
    assert [r.memory_mb for r in got] == [1, 2]
    assert db_api.instance_get_all(database, CTX, filters={"node": None}) != []
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
    with pytest.raises(DBError, match="sort_key"):
        db_api.instance_get_all(database, CTX, sort_key="display_name")
    with pytest.raises(DBError, match="no column"):
        db_api.instance_get_all(database, CTX, filters={"bogus": 1})


def test_services(database: Database) -> None:
    a = db_api.service_create(
        database, CTX, {"host": "a", "binary": "podium-compute", "topic": "compute", "version": 3}
    )
    b = db_api.service_create(
        database, CTX, {"host": "b", "binary": "podium-conductor", "topic": "conductor"}
    )
    assert [s.id for s in db_api.service_get_all(database, CTX)] == [a.id, b.id]
    assert [s.id for s in db_api.service_get_all(database, CTX, topic="compute")] == [a.id]
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


def test_compute_nodes(database: Database) -> None:
    node = db_api.compute_node_create(
        database, CTX, {"host": "c1", "hypervisor_hostname": "c1.fake", "vcpus": 8}
    )
    with pytest.raises(DuplicateEntry):
        db_api.compute_node_create(database, CTX, {"host": "c1", "vcpus": 4})
    updated = db_api.compute_node_update(database, CTX, node.id, {"vcpus_used": 2})
    assert (updated.vcpus, updated.vcpus_used, updated.memory_mb) == (8, 2, 0)
    assert db_api.compute_node_get_by_host(database, CTX, "c1").vcpus_used == 2
    assert [n.id for n in db_api.compute_node_get_all(database, CTX)] == [node.id]
    db_api.compute_node_destroy(database, CTX, node.id)
    assert db_api.compute_node_get_all(database, CTX) == []
    assert db_api.compute_node_get(database, ONLY, node.id).host == "c1"
    db_api.compute_node_create(database, CTX, {"host": "c1", "vcpus": 4})


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
