"""The REST API on the in-process spine: auth, limits, validation, scoping, and what it sends.

Compute hosts and the scheduler are small fakes on the same memory:// bus: the
tests check what the API stores and casts, not what a hypervisor does.
"""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.cloud.conftest import Spine, cloud_config
from tests.polling import wait_for

from podium.cloud import states
from podium.cloud.api import api_service, create_app
from podium.cloud.api import deps as api_deps
from podium.cloud.api.app import FilterStatus, SortKey
from podium.cloud.api.auth import RateLimiter, TokenError, parse_tokens, token_digest
from podium.cloud.api.views import server_status
from podium.cloud.db import INSTANCE_SORT_KEYS
from podium.cloud.objects import ComputeNode, FlavorList, Instance, InstanceFault, Service
from podium.cloud.rpcapi import COMPUTE_TOPIC, SCHEDULER_TOPIC, ComputeAPI
from podium.context import RequestContext
from podium.exceptions import MessagingTimeout
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCServer, Target

ADMIN = {"X-Auth-Token": "admin-secret"}
ALICE = {"X-Auth-Token": "alice-secret"}  # project-a
BOB = {"X-Auth-Token": "bob-secret"}  # project-b
TOKENS = (
    "admin-secret=admin:admin-project:admin,member;"
    "alice-secret=alice:project-a:member;"
    "bob-secret=bob:project-b:member"
)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status
    message: str = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message
    return message


class FakeCompute:
    """A compute host that records what it is asked and does nothing else."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, str]] = queue.Queue()

    def _record(self, method: str, instance: Instance) -> None:
        self.calls.put((method, instance.uuid))

    def build_and_run_instance(
        self, ctxt: RequestContext, instance: Instance, request_spec: dict[str, Any]
    ) -> None:
        self._record("build_and_run_instance", instance)

    def pause_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("pause_instance", instance)

    def unpause_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("unpause_instance", instance)

    def stop_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("stop_instance", instance)

    def start_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("start_instance", instance)

    def reboot_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("reboot_instance", instance)

    def terminate_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._record("terminate_instance", instance)

    def next_call(self) -> tuple[str, str]:
        return self.calls.get(timeout=10)


class FakeScheduler:
    """Claims on the one host it knows, as the real scheduler's last step does."""

    def __init__(self, host: str) -> None:
        self.host = host

    def select_destinations(
        self, ctxt: RequestContext, request_spec: dict[str, Any]
    ) -> list[dict[str, str]]:
        ratios = {"cpu": 1.0, "ram": 1.0, "disk": 1.0}
        for instance_uuid in request_spec["instance_uuids"]:
            assert ComputeNode.claim(ctxt, self.host, instance_uuid, ratios)
        return [{"host": self.host, "node": self.host} for _ in request_spec["instance_uuids"]]


@pytest.fixture
def client(spine: Spine) -> Iterator[TestClient]:
    # The production default: a compute reported up by a fixture stays up for the test.
    config = cloud_config(api_tokens=TOKENS, api_rate_limit=0, service_down_time=60.0)
    app = create_app(config, spine.transport)
    with TestClient(app) as client:
        yield client


def report_compute(
    spine: Spine, host: str, ago: timedelta = timedelta(0), version: int = 1
) -> Service:
    """A compute service last seen up ``ago`` (a heartbeat now, its time then set back)."""
    now = datetime.now(UTC)
    service = Service.report(
        spine.admin, host, "podium-compute", COMPUTE_TOPIC, version, now.isoformat()
    )
    if ago:
        service.last_seen_up = now - ago
        service.save()
    return service


@contextmanager
def serving_compute(spine: Spine, host: str) -> Iterator[FakeCompute]:
    """A fake compute consuming ``host``'s queue (whether its service looks up is apart)."""
    fake = FakeCompute()
    server = RPCServer(
        spine.transport,
        Target(topic=COMPUTE_TOPIC, server=host),
        [fake],
        serializer=VersionedObjectSerializer(),
    )
    server.start()
    try:
        yield fake
    finally:
        server.stop()
        server.wait()


@pytest.fixture
def compute(spine: Spine) -> Iterator[FakeCompute]:
    """compute-1, serving and reported up."""
    report_compute(spine, "compute-1")
    with serving_compute(spine, "compute-1") as fake:
        yield fake


@pytest.fixture
def scheduler(spine: Spine) -> Iterator[FakeScheduler]:
    ComputeNode.report(spine.admin, "compute-1", 4, 8192, 100)
    fake = FakeScheduler("compute-1")
    server = RPCServer(
        spine.transport,
        Target(topic=SCHEDULER_TOPIC, server="scheduler-1"),
        [fake],
        serializer=VersionedObjectSerializer(),
    )
    server.start()
    yield fake
    server.stop()
    server.wait()


def make_server(
    spine: Spine,
    *,
    project: str = "project-a",
    vm_state: str = states.ACTIVE,
    task_state: str | None = None,
    host: str | None = "compute-1",
    name: str = "vm",
) -> Instance:
    """A server as a build would have left it, written straight through the objects."""
    instance = Instance(
        spine.admin,
        uuid=str(uuid.uuid4()),
        display_name=name,
        project_id=project,
        user_id="someone",
        host=host,
        vm_state=vm_state,
        task_state=task_state,
        power_state=states.RUNNING if vm_state == states.ACTIVE else states.NOSTATE,
        memory_mb=512,
        vcpus=1,
        root_gb=1,
    )
    instance.create()
    return instance


def stored(spine: Spine, server_id: str, read_deleted: str = "no") -> Instance:
    return Instance.get_by_uuid(
        RequestContext(is_admin=True, roles=["admin"], read_deleted=read_deleted),  # type: ignore[arg-type]
        server_id,
    )


# -- authentication, roles, rate limit ------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}])
@pytest.mark.parametrize("path", ["/servers", "/flavors", "/os-services"])
def test_no_or_bad_token_is_401(client: TestClient, headers: dict[str, str], path: str) -> None:
    response = client.get(path, headers=headers)
    assert_error(response, 401, "X-Auth-Token")
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/os-services", None),
        ("PUT", "/os-services/1", {"status": "disabled"}),
        ("GET", "/os-hypervisors", None),
        ("GET", "/servers?all_tenants=true", None),
        ("GET", "/servers?host=compute-1", None),
        ("GET", "/servers?read_deleted=yes", None),
        ("GET", f"/servers/{uuid.uuid4()}?read_deleted=only", None),
    ],
)
def test_admin_only_is_403_for_others(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    assert_error(client.request(method, path, headers=ALICE, json=body), 403)


def test_rate_limit_is_429_with_retry_after_per_token(spine: Spine) -> None:
    app = create_app(cloud_config(api_tokens=TOKENS, api_rate_limit=3), spine.transport)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/flavors", headers=ALICE).status_code == 200
        response = client.get("/flavors", headers=ALICE)
        assert_error(response, 429, "3 requests a minute")
        # One request in 20 s comes back at 3 a minute.
        assert 1 <= int(response.headers["Retry-After"]) <= 20
        # Another token has a bucket of its own.
        assert client.get("/flavors", headers=BOB).status_code == 200


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, clock=lambda: now[0])
    assert all(limiter.acquire("k") == 0 for _ in range(60))
    assert limiter.acquire("k") == pytest.approx(1.0)
    now[0] += 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("k") == 0
    assert RateLimiter(per_minute=0).acquire("k") == 0


def test_tokens_inline_and_from_a_file(tmp_path: Any) -> None:
    inline = parse_tokens(" t1 = u1:p1:admin, member ; t2=u2:p2 ;")
    assert inline[token_digest("t1")].roles == ("admin", "member")
    assert inline[token_digest("t1")].is_admin
    assert not inline[token_digest("t2")].is_admin
    tokens = tmp_path / "tokens"
    tokens.write_text("# operators\nops=ops:ops-project:admin\n\nuser=u:p:member\n")
    from_file = parse_tokens(f"@{tokens}")
    assert set(from_file) == {token_digest("ops"), token_digest("user")}


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("sekrit-token", "api_tokens entry 1"),
        ("a=u:p;sekrit-token=u", "api_tokens entry 2"),
        ("sekrit-token=:p:admin", "api_tokens entry 1"),
        ("sekrit-token=u:p;sekrit-token=v:q", "given twice"),
        ("@/nonexistent/tokens", "cannot read /nonexistent/tokens"),
    ],
)
def test_bad_token_settings_name_the_entry_not_the_token(setting: str, where: str) -> None:
    with pytest.raises(TokenError) as raised:
        parse_tokens(setting)
    assert where in str(raised.value)
    assert "sekrit" not in str(raised.value)


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "server: Field required"),
        ({"server": {"flavorRef": "1"}}, "server.name: Field required"),
        ({"server": {"name": " ", "flavorRef": "1"}}, "server.name"),
        ({"server": {"name": "a\nb", "flavorRef": "1"}}, "server.name"),
        ({"server": {"name": "vm", "flavorRef": "1", "colour": "red"}}, "server.colour"),
        ({"server": {"name": "vm", "flavorRef": 1}}, "server.flavorRef"),
        ({"server": {"name": "vm", "flavorRef": "1", "metadata": {"k": 1}}}, "metadata.k"),
        ({"server": {"name": "x" * 256, "flavorRef": "1"}}, "at most 255"),
        ({"server": {"name": "vm", "flavorRef": "no-such-flavor"}}, "Flavor no-such-flavor"),
    ],
)
def test_bad_create_bodies_are_400(client: TestClient, body: Any, fragment: str) -> None:
    assert_error(client.post("/servers", headers=ALICE, json=body), 400, fragment)


def test_bad_json_and_bad_queries_are_400(client: TestClient) -> None:
    response = client.post(
        "/servers", headers={**ALICE, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert_error(response, 400)
    assert_error(client.get("/servers?limit=0", headers=ALICE), 400, "limit")
    assert_error(client.get("/servers?sort_key=id", headers=ALICE), 400, "sort_key")
    assert_error(client.get("/servers?status=RUNNING", headers=ALICE), 400, "status")
    assert_error(client.put("/os-services/x", headers=ADMIN, json={"status": "on"}), 400)
    # PostgreSQL refuses NUL in a string: refused before it gets there.
    assert_error(client.get("/servers?name=a%00b", headers=ALICE), 400, "name")
    assert_error(client.get("/flavors/a%00b", headers=ALICE), 400)


def test_bad_action_bodies_are_400_naming_the_actions(client: TestClient, spine: Spine) -> None:
    server = make_server(spine)
    path = f"/servers/{server.uuid}/action"
    for body in ({}, {"suspend": None}, {"pause": None, "unpause": None}, []):
        assert_error(client.post(path, headers=ALICE, json=body), 400, "pause, unpause, os-stop")
    assert_error(client.post(path, headers=ALICE, json={"reboot": {"type": "WARM"}}), 400)
    assert stored(spine, server.uuid).task_state is None


def test_oversized_body_is_413(client: TestClient) -> None:
    body = b'{"server": {"name": "' + b"x" * 200_000 + b'", "flavorRef": "1"}}'
    response = client.post(
        "/servers", headers={**ALICE, "Content-Type": "application/json"}, content=body
    )
    assert_error(response, 413)


def test_unknown_route_and_method_have_the_error_body(client: TestClient) -> None:
    assert_error(client.get("/nowhere", headers=ALICE), 404)
    assert_error(client.patch("/flavors", headers=ALICE), 405)


# -- creating servers -------------------------------------------------------------


def test_create_stores_the_request_and_casts_the_build(
    client: TestClient, spine: Spine, scheduler: FakeScheduler, compute: FakeCompute
) -> None:
    response = client.post(
        "/servers",
        headers=ALICE,
        json={
            "server": {
                "name": "web 1",
                "flavorRef": "2",
                "imageRef": "cirros",
                "metadata": {"role": "web"},
            }
        },
    )
    assert response.status_code == 202, response.text
    server = response.json()["server"]
    assert server["status"] == "BUILD"
    assert (server["vm_state"], server["task_state"]) == ("building", "scheduling")
    assert server["flavor"] == {"id": "2", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20}
    assert server["host"] is None
    # The conductor got the cast, asked the scheduler, and handed the build on.
    assert compute.next_call() == ("build_and_run_instance", server["id"])
    instance = stored(spine, server["id"])
    assert (instance.vm_state, instance.task_state) == ("building", "scheduling")
    assert (instance.project_id, instance.user_id) == ("project-a", "alice")
    assert (instance.vcpus, instance.memory_mb, instance.root_gb) == (1, 2048, 20)
    assert instance.flavor is not None and instance.flavor.flavorid == "2"
    assert instance.metadata == {"role": "web"}
    assert (instance.image_ref, instance.hostname) == ("cirros", "web-1")
    assert instance.host == "compute-1"


def test_build_without_a_scheduler_ends_in_error_with_a_fault(
    client: TestClient, spine: Spine
) -> None:
    response = client.post(
        "/servers", headers=ALICE, json={"server": {"name": "vm", "flavorRef": "1"}}
    )
    assert response.status_code == 202
    server_id = response.json()["server"]["id"]

    def shown() -> dict[str, Any] | None:
        server: dict[str, Any] = client.get(f"/servers/{server_id}", headers=ALICE).json()["server"]
        # The conductor stores ERROR, then the fault: wait for both.
        return server if server["status"] == "ERROR" and server["fault"] else None

    server = wait_for(shown, "the server shown", 10.0)
    assert server["fault"]["code"] == 500
    assert "Scheduling failed" in server["fault"]["message"]
    assert server["fault"]["details"] is None  # the traceback is for admins
    admin_view = client.get(f"/servers/{server_id}", headers=ADMIN).json()["server"]
    assert "NoConsumer" in admin_view["fault"]["details"]


def test_private_flavors_are_for_admins(client: TestClient, spine: Spine) -> None:
    from podium.cloud.objects import Flavor

    Flavor(
        spine.admin,
        flavorid="secret",
        name="big.private",
        vcpus=1,
        memory_mb=1,
        disk_gb=1,
        is_public=False,
    ).create()
    assert_error(client.get("/flavors/secret", headers=ALICE), 404)
    assert "secret" not in [
        f["id"] for f in client.get("/flavors", headers=ALICE).json()["flavors"]
    ]
    assert client.get("/flavors/secret", headers=ADMIN).json()["flavor"]["is_public"] is False
    body = {"server": {"name": "vm", "flavorRef": "secret"}}
    assert_error(client.post("/servers", headers=ALICE, json=body), 400, "Flavor secret")


# -- scoping ----------------------------------------------------------------------


def test_another_projects_server_is_404(client: TestClient, spine: Spine) -> None:
    server = make_server(spine, project="project-a")
    path = f"/servers/{server.uuid}"
    missing = assert_error(client.get(path, headers=BOB), 404)
    # The same answer as for a uuid nobody uses: nothing tells them apart.
    assert assert_error(client.get(f"/servers/{uuid.uuid4()}", headers=BOB), 404) != ""
    assert server.uuid in missing
    assert_error(client.delete(path, headers=BOB), 404)
    assert_error(client.post(f"{path}/action", headers=BOB, json={"pause": None}), 404)
    assert client.get("/servers", headers=BOB).json()["servers"] == []
    assert_error(client.get(f"/servers?marker={server.uuid}", headers=BOB), 400, "Marker")
    assert stored(spine, server.uuid).task_state is None
    # Its owner sees it without the host; an admin sees the host.
    assert client.get(path, headers=ALICE).json()["server"]["host"] is None
    assert client.get(path, headers=ADMIN).json()["server"]["host"] == "compute-1"


def errored_server(spine: Spine, message: str, host: str | None) -> Instance:
    server = make_server(spine, vm_state=states.ERROR, host=None)
    InstanceFault(
        spine.admin,
        instance_uuid=server.uuid,
        code=500,
        message=message,
        details="Traceback (most recent call last): on compute-7",
        host=host,
    ).create()
    return server


def shown_faults(client: TestClient, server_id: str, headers: dict[str, str]) -> list[Any]:
    """The fault as GET /servers/{id} and the list show it (one view, two paths)."""
    one = client.get(f"/servers/{server_id}", headers=headers).json()["server"]["fault"]
    path = "/servers?all_tenants=true" if headers is ADMIN else "/servers"
    listed = client.get(path, headers=headers).json()["servers"]
    [in_list] = [s["fault"] for s in listed if s["id"] == server_id]
    return [one, in_list]


def test_fault_messages_name_no_host_but_to_admins(client: TestClient, spine: Spine) -> None:
    message = "spawn failed: RuntimeError: compute-7 is out of disk (compute-7/vda; compute-70)"
    server = errored_server(spine, message, "compute-7")
    for fault in shown_faults(client, server.uuid, ALICE):
        assert fault["message"] == (
            "spawn failed: RuntimeError: a host is out of disk (a host/vda; compute-70)"
        )
        assert fault["details"] is None
    for fault in shown_faults(client, server.uuid, ADMIN):
        assert fault["message"] == message
        assert fault["details"].endswith("on compute-7")


def test_no_valid_host_names_no_lost_claims_but_to_admins(client: TestClient, spine: Spine) -> None:
    reason = (
        "No valid host was found. There are not enough hosts available for instance x "
        "(3 compute hosts). Filters: RamFilter removed 1."
    )
    message = (
        f"{reason} Claims failed on 2 host(s) filled by concurrent requests: compute-7, compute-8."
    )
    server = errored_server(spine, message, "conductor-1")
    for fault in shown_faults(client, server.uuid, ALICE):
        assert fault["message"] == reason
    for fault in shown_faults(client, server.uuid, ADMIN):
        assert fault["message"] == message


def test_admin_lists_own_project_unless_all_tenants(client: TestClient, spine: Spine) -> None:
    mine = make_server(spine, project="admin-project")
    theirs = make_server(spine, project="project-b", host="compute-2")
    ids = [s["id"] for s in client.get("/servers", headers=ADMIN).json()["servers"]]
    assert ids == [mine.uuid]
    every = client.get("/servers?all_tenants=true", headers=ADMIN).json()["servers"]
    assert {s["id"] for s in every} == {mine.uuid, theirs.uuid}
    on_host = client.get("/servers?all_tenants=true&host=compute-2", headers=ADMIN).json()
    assert [s["id"] for s in on_host["servers"]] == [theirs.uuid]


def test_non_uuid_server_ids_are_404(client: TestClient) -> None:
    assert_error(client.get("/servers/not-a-uuid", headers=ALICE), 404)


# -- listing ----------------------------------------------------------------------


def test_list_pages_with_marker_and_sorts(client: TestClient, spine: Spine) -> None:
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    for name in names:
        make_server(spine, name=name)
    make_server(spine, name="other", project="project-b")
    seen: list[str] = []
    url: str | None = "/servers?limit=2&sort_key=display_name&sort_dir=asc"
    pages = 0
    while url is not None:
        body = client.get(url, headers=ALICE).json()
        seen += [server["name"] for server in body["servers"]]
        pages += 1
        links = body["servers_links"]
        url = links[0]["href"] if links else None
    assert seen == sorted(names)
    assert pages == 3
    desc = client.get("/servers?sort_key=display_name&sort_dir=desc", headers=ALICE).json()
    assert [s["name"] for s in desc["servers"]] == sorted(names, reverse=True)
    assert desc["servers_links"] == []
    assert_error(client.get(f"/servers?marker={uuid.uuid4()}", headers=ALICE), 400, "Marker")


def test_list_filters_by_name_and_status(client: TestClient, spine: Spine) -> None:
    active = make_server(spine, name="a")
    stopped = make_server(spine, name="b", vm_state=states.STOPPED)
    rebooting = make_server(spine, name="c", task_state=states.REBOOTING)

    def ids(query: str) -> set[str]:
        return {s["id"] for s in client.get(f"/servers?{query}", headers=ALICE).json()["servers"]}

    assert ids("name=b") == {stopped.uuid}
    assert ids("status=SHUTOFF") == {stopped.uuid}
    assert ids("status=ACTIVE") == {active.uuid}
    assert ids("status=REBOOT") == {rebooting.uuid}
    assert ids("status=ERROR") == set()


VM_STATES = [
    states.BUILDING,
    states.ACTIVE,
    states.PAUSED,
    states.STOPPED,
    states.ERROR,
    states.DELETED,
    "weird",
]
TASK_STATES = [
    None,
    states.SCHEDULING,
    states.SPAWNING,
    states.PAUSING,
    states.UNPAUSING,
    states.POWERING_OFF,
    states.POWERING_ON,
    states.REBOOTING,
    states.DELETING,
]


def test_status_filters_list_exactly_the_servers_showing_that_status(
    client: TestClient, spine: Spine
) -> None:
    for vm_state in VM_STATES:
        for task_state in TASK_STATES:
            make_server(spine, vm_state=vm_state, task_state=task_state, host=None)
    # Deleted rows show DELETED whatever their states said (a local delete keeps them).
    for vm_state, task_state in [
        (states.DELETED, None),
        (states.ACTIVE, states.REBOOTING),
        (states.STOPPED, None),
    ]:
        make_server(spine, vm_state=vm_state, task_state=task_state, host=None).destroy()

    def listed(query: str) -> dict[str, str]:
        servers = client.get(f"/servers?all_tenants=true&{query}", headers=ADMIN).json()["servers"]
        shown = {s["id"]: s["status"] for s in servers}
        assert len(shown) == len(servers)
        return shown

    for read_deleted in ("no", "yes", "only"):
        everything = listed(f"read_deleted={read_deleted}")
        assert len(everything) == {"no": 63, "yes": 66, "only": 3}[read_deleted]
        for status in FilterStatus.__args__:  # type: ignore[attr-defined]
            showing = {key for key, shown in everything.items() if shown == status}
            assert listed(f"read_deleted={read_deleted}&status={status}") == dict.fromkeys(
                showing, status
            ), (read_deleted, status)
    counts = {
        status: len(listed(f"status={status}"))
        for status in FilterStatus.__args__  # type: ignore[attr-defined]
    }
    assert counts == {
        "BUILD": 9,
        "ACTIVE": 8,
        "PAUSED": 9,
        "SHUTOFF": 8,
        "REBOOT": 2,
        "ERROR": 9,
        "DELETED": 9,
    }


def test_status_filter_pages_past_the_servers_it_leaves_out(
    client: TestClient, spine: Spine
) -> None:
    # Pages are cut after the status is told from the states: rebooting ACTIVE
    # servers left out must neither shorten a page nor end the listing early.
    active = []
    for number in range(9):
        task_state = states.REBOOTING if number % 3 else None
        server = make_server(spine, task_state=task_state, name=f"vm-{number}")
        if task_state is None:
            active.append(server.uuid)
    seen: list[str] = []
    url: str | None = "/servers?status=ACTIVE&limit=2&sort_key=display_name&sort_dir=asc"
    while url is not None:
        body = client.get(url, headers=ALICE).json()
        assert len(body["servers"]) == 2 or not body["servers_links"]
        seen += [server["id"] for server in body["servers"]]
        url = body["servers_links"][0]["href"] if body["servers_links"] else None
    assert seen == active


def test_list_by_detail_path_matches(client: TestClient, spine: Spine) -> None:
    make_server(spine)
    assert (
        client.get("/servers/detail", headers=ALICE).json()
        == client.get("/servers", headers=ALICE).json()
    )


@pytest.mark.parametrize(
    ("vm_state", "task_state", "deleted", "status"),
    [
        ("building", "scheduling", False, "BUILD"),
        ("active", None, False, "ACTIVE"),
        ("active", "rebooting", False, "REBOOT"),
        ("stopped", "rebooting", False, "REBOOT"),
        ("paused", "rebooting", False, "PAUSED"),
        ("active", "deleting", False, "ACTIVE"),
        ("stopped", None, False, "SHUTOFF"),
        ("error", None, False, "ERROR"),
        ("active", None, True, "DELETED"),
        ("weird", None, False, "UNKNOWN"),
    ],
)
def test_status_mapping(vm_state: str, task_state: str | None, deleted: bool, status: str) -> None:
    assert server_status(vm_state, task_state, deleted) == status


# -- deleting ---------------------------------------------------------------------


def test_delete_of_an_unscheduled_server_is_immediate(client: TestClient, spine: Spine) -> None:
    server = make_server(spine, vm_state=states.ERROR, host=None)
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert_error(client.get(f"/servers/{server.uuid}", headers=ALICE), 404)
    assert client.get("/servers", headers=ALICE).json()["servers"] == []
    # Soft-deleted: an admin still reads it.
    shown = client.get(f"/servers/{server.uuid}?read_deleted=yes", headers=ADMIN).json()
    assert shown["server"]["status"] == "DELETED"
    assert shown["server"]["terminated_at"] is not None
    only = client.get("/servers?all_tenants=true&read_deleted=only", headers=ADMIN).json()
    assert [s["id"] for s in only["servers"]] == [server.uuid]
    assert stored(spine, server.uuid, read_deleted="only").deleted


def test_delete_of_a_placed_server_casts_terminate(
    client: TestClient, spine: Spine, compute: FakeCompute
) -> None:
    server = make_server(spine)
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert compute.next_call() == ("terminate_instance", server.uuid)
    assert stored(spine, server.uuid).task_state == states.DELETING
    # A repeated delete sends the (idempotent) terminate again: the first one
    # may have been lost, and nothing else would ever finish the delete.
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert compute.next_call() == ("terminate_instance", server.uuid)
    assert stored(spine, server.uuid).task_state == states.DELETING


def test_delete_of_a_server_left_deleting_casts_terminate(
    client: TestClient, spine: Spine, compute: FakeCompute
) -> None:
    server = make_server(spine, task_state=states.DELETING)
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert compute.next_call() == ("terminate_instance", server.uuid)


def test_delete_on_a_host_nobody_serves_is_local(client: TestClient, spine: Spine) -> None:
    server = make_server(spine, host="gone-host")
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert stored(spine, server.uuid, read_deleted="only").vm_state == states.DELETED


@pytest.mark.parametrize("previous", [None, states.POWERING_OFF])
def test_delete_whose_cast_fails_is_503_and_can_be_retried(
    client: TestClient,
    spine: Spine,
    compute: FakeCompute,
    monkeypatch: pytest.MonkeyPatch,
    previous: str | None,
) -> None:
    server = make_server(spine, task_state=previous)

    def unsent(self: ComputeAPI, context: RequestContext, instance: Instance) -> None:
        raise MessagingTimeout("the broker did not confirm the publish")

    monkeypatch.setattr(ComputeAPI, "terminate_instance", unsent)
    response = client.delete(f"/servers/{server.uuid}", headers=ALICE)
    assert_error(response, 503, "try again later")
    assert response.headers["Retry-After"]
    # Nothing was sent: the server is as it was, not DELETING for good.
    assert stored(spine, server.uuid).task_state == previous
    monkeypatch.undo()
    assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
    assert compute.next_call() == ("terminate_instance", server.uuid)
    assert stored(spine, server.uuid).task_state == states.DELETING


@pytest.mark.parametrize("last_report", [timedelta(hours=1), None])
def test_delete_on_a_host_whose_service_is_down_is_local(
    client: TestClient, spine: Spine, last_report: timedelta | None
) -> None:
    ComputeNode.report(spine.admin, "compute-9", 4, 8192, 100)
    if last_report is not None:
        report_compute(spine, "compute-9", last_report)
    server = make_server(spine, host=None)
    ratios = {"cpu": 1.0, "ram": 1.0, "disk": 1.0}
    assert ComputeNode.claim(spine.admin, "compute-9", server.uuid, ratios)
    # Its queue still has a consumer: only the service's heartbeats say it is gone.
    with serving_compute(spine, "compute-9") as fake:
        assert client.delete(f"/servers/{server.uuid}", headers=ALICE).status_code == 204
        gone = stored(spine, server.uuid, read_deleted="only")
        assert (gone.vm_state, gone.task_state) == (states.DELETED, None)
        assert gone.terminated_at is not None
        assert ComputeNode.get_by_host(spine.admin, "compute-9").vcpus_used == 0
        assert fake.calls.empty()


def test_delete_loses_to_a_concurrent_action_with_409(
    client: TestClient, spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(spine)

    class RacingInstance:
        """What the API's lookups see as Instance: a read that a reboot overtakes."""

        @staticmethod
        def get_by_uuid(context: RequestContext, uuid: str) -> Instance:
            instance = Instance.get_by_uuid(context, uuid)
            other = Instance.get_by_uuid(spine.admin, uuid)
            other.task_state = states.REBOOTING
            other.save(expected_task_state=[None])
            return instance

    # The API's lookup module only: the conductor in this process keeps the real class.
    monkeypatch.setattr(api_deps, "Instance", RacingInstance)
    assert_error(client.delete(f"/servers/{server.uuid}", headers=ALICE), 409, "got there first")
    monkeypatch.undo()
    assert stored(spine, server.uuid).task_state == states.REBOOTING


# -- actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm_state", "body", "task_state", "method"),
    [
        (states.ACTIVE, {"pause": None}, states.PAUSING, "pause_instance"),
        (states.PAUSED, {"unpause": None}, states.UNPAUSING, "unpause_instance"),
        (states.ACTIVE, {"os-stop": None}, states.POWERING_OFF, "stop_instance"),
        (states.STOPPED, {"os-start": None}, states.POWERING_ON, "start_instance"),
        (states.ACTIVE, {"reboot": {"type": "SOFT"}}, states.REBOOTING, "reboot_instance"),
        (states.STOPPED, {"reboot": {"type": "HARD"}}, states.REBOOTING, "reboot_instance"),
    ],
)
def test_action_sets_the_task_and_casts_to_the_host(
    client: TestClient,
    spine: Spine,
    compute: FakeCompute,
    vm_state: str,
    body: dict[str, Any],
    task_state: str,
    method: str,
) -> None:
    server = make_server(spine, vm_state=vm_state)
    response = client.post(f"/servers/{server.uuid}/action", headers=ALICE, json=body)
    assert response.status_code == 202, response.text
    assert compute.next_call() == (method, server.uuid)
    assert stored(spine, server.uuid).task_state == task_state


@pytest.mark.parametrize(
    ("vm_state", "task_state", "host", "body", "fragment"),
    [
        (states.PAUSED, None, "compute-1", {"pause": None}, "while it is paused"),
        (states.ACTIVE, None, "compute-1", {"unpause": None}, "it must be paused"),
        (states.ACTIVE, None, "compute-1", {"os-start": None}, "it must be stopped"),
        (states.STOPPED, None, "compute-1", {"os-stop": None}, "while it is stopped"),
        (states.STOPPED, None, "compute-1", {"reboot": {"type": "SOFT"}}, "it must be active"),
        # The hypervisor reboots no paused guest: accepting it would leave it PAUSED silently.
        (states.PAUSED, None, "compute-1", {"reboot": {"type": "HARD"}}, "unpause it first"),
        (states.BUILDING, "scheduling", None, {"pause": None}, "while it is building"),
        (states.ACTIVE, states.PAUSING, "compute-1", {"pause": None}, "while it is pausing"),
        (states.ERROR, None, None, {"os-stop": None}, "runs on no host"),
    ],
)
def test_action_in_the_wrong_state_is_409(
    client: TestClient,
    spine: Spine,
    compute: FakeCompute,
    vm_state: str,
    task_state: str | None,
    host: str | None,
    body: dict[str, Any],
    fragment: str,
) -> None:
    server = make_server(spine, vm_state=vm_state, task_state=task_state, host=host)
    response = client.post(f"/servers/{server.uuid}/action", headers=ALICE, json=body)
    assert_error(response, 409, fragment)
    assert stored(spine, server.uuid).task_state == task_state
    assert compute.calls.empty()


def test_action_loses_to_a_state_change_after_its_check_with_409(
    client: TestClient, spine: Spine, compute: FakeCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(spine)

    class RacingInstance:
        """What the API module sees as Instance: a read that a finishing stop overtakes."""

        @staticmethod
        def get_by_uuid(context: RequestContext, uuid: str) -> Instance:
            instance = Instance.get_by_uuid(context, uuid)
            other = Instance.get_by_uuid(spine.admin, uuid)
            other.vm_state = states.STOPPED
            other.power_state = states.SHUTDOWN
            other.save(expected_task_state=[None])
            return instance

    monkeypatch.setattr(api_deps, "Instance", RacingInstance)
    response = client.post(
        f"/servers/{server.uuid}/action", headers=ALICE, json={"reboot": {"type": "SOFT"}}
    )
    assert_error(response, 409, "got there first")
    monkeypatch.undo()
    now = stored(spine, server.uuid)
    assert (now.vm_state, now.task_state) == (states.STOPPED, None)
    assert compute.calls.empty()


def test_action_to_an_unreachable_host_is_503_and_frees_the_server(
    client: TestClient, spine: Spine
) -> None:
    server = make_server(spine, host="gone-host")
    response = client.post(f"/servers/{server.uuid}/action", headers=ALICE, json={"pause": None})
    assert_error(response, 503)
    assert response.headers["Retry-After"]
    assert stored(spine, server.uuid).task_state is None


# -- failures of the cloud itself -----------------------------------------------


def test_conductor_timeout_is_503(
    client: TestClient, spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def timeout(*args: Any, **kwargs: Any) -> Any:
        raise MessagingTimeout("no reply from the conductor in 10 s")

    monkeypatch.setattr(FlavorList, "get_all", timeout)
    response = client.get("/flavors", headers=ALICE)
    assert_error(response, 503, "try again later")
    assert response.headers["Retry-After"] == "5"


def test_unexpected_error_is_500_without_internals_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("the-internal-detail")

    monkeypatch.setattr(FlavorList, "get_all", broken)
    with caplog.at_level(logging.ERROR, logger="podium.cloud.api"):
        response = client.get("/flavors", headers=ALICE)
    message = assert_error(response, 500)
    assert "the-internal-detail" not in message
    [record] = [r for r in caplog.records if r.exc_info]
    assert "the-internal-detail" in str(record.exc_info[1])  # type: ignore[index]


# -- services and hypervisors ---------------------------------------------------


def test_services_show_up_down_and_can_be_disabled(client: TestClient, spine: Spine) -> None:
    report_compute(spine, "compute-1")
    stale = report_compute(spine, "compute-2", timedelta(hours=1))
    services = {s["host"]: s for s in client.get("/os-services", headers=ADMIN).json()["services"]}
    assert services["compute-1"]["state"] == "up"
    assert services["compute-2"]["state"] == "down"
    assert services["compute-1"]["status"] == "enabled"

    path = f"/os-services/{stale.id}"
    body = {"status": "disabled", "disabled_reason": "maintenance"}
    updated = client.put(path, headers=ADMIN, json=body).json()["service"]
    assert (updated["status"], updated["disabled_reason"]) == ("disabled", "maintenance")
    assert Service.get_by_id(spine.admin, stale.id).disabled
    body = {"status": "enabled", "disabled_reason": "why"}
    assert_error(client.put(path, headers=ADMIN, json=body), 400, "disabled_reason")
    enabled = client.put(path, headers=ADMIN, json={"status": "enabled"}).json()["service"]
    assert (enabled["status"], enabled["disabled_reason"]) == ("enabled", None)
    assert_error(client.put("/os-services/999", headers=ADMIN, json={"status": "enabled"}), 404)


def test_a_service_forced_down_is_down_and_no_longer_holds_the_version_floor(
    client: TestClient, spine: Spine
) -> None:
    old = report_compute(spine, "compute-old", version=1)
    report_compute(spine, "compute-new", version=2)
    assert Service.get_minimum_version(spine.admin, "podium-compute") == 1
    path = f"/os-services/{old.id}"
    forced = client.put(path, headers=ADMIN, json={"forced_down": True}).json()["service"]
    assert (forced["forced_down"], forced["state"], forced["status"]) == (True, "down", "enabled")
    assert Service.get_minimum_version(spine.admin, "podium-compute") == 2
    # Its own heartbeats do not lift it: only the operator does.
    report_compute(spine, "compute-old", version=1)
    assert Service.get_by_id(spine.admin, old.id).forced_down
    cleared = client.put(path, headers=ADMIN, json={"forced_down": False}).json()["service"]
    assert (cleared["forced_down"], cleared["state"]) == (False, "up")
    assert Service.get_minimum_version(spine.admin, "podium-compute") == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "give status, forced_down or both"),
        ({"disabled_reason": "x"}, "disabled_reason goes only with status 'disabled'"),
        ({"forced_down": "maybe"}, "forced_down"),
    ],
)
def test_a_service_update_that_says_nothing_or_contradicts_itself_is_refused(
    client: TestClient, spine: Spine, body: dict[str, object], why: str
) -> None:
    service = report_compute(spine, "compute-1")
    assert_error(client.put(f"/os-services/{service.id}", headers=ADMIN, json=body), 400, why)


def test_hypervisors_show_totals_and_use(client: TestClient, spine: Spine) -> None:
    ComputeNode.report(spine.admin, "compute-1", 4, 8192, 100)
    ComputeNode.report(spine.admin, "compute-2", 8, 16384, 200)
    Service.report(
        spine.admin, "compute-1", "podium-compute", COMPUTE_TOPIC, 1, datetime.now(UTC).isoformat()
    )
    server = make_server(spine, host=None)
    assert ComputeNode.claim(
        spine.admin, "compute-1", server.uuid, {"cpu": 1.0, "ram": 1.0, "disk": 1.0}
    )
    nodes = {
        n["host"]: n for n in client.get("/os-hypervisors", headers=ADMIN).json()["hypervisors"]
    }
    assert (nodes["compute-1"]["vcpus"], nodes["compute-1"]["vcpus_used"]) == (4, 1)
    assert (nodes["compute-1"]["memory_mb_used"], nodes["compute-1"]["local_gb_used"]) == (512, 1)
    assert nodes["compute-1"]["state"] == "up"
    assert (nodes["compute-2"]["state"], nodes["compute-2"]["vcpus_used"]) == ("down", 0)


# -- the OpenAPI document and the service -----------------------------------------


def test_openapi_documents_the_error_body_and_no_422(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for code in ("400", "401", "429", "500", "503"):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
    assert document["components"]["securitySchemes"]["token"]["name"] == "X-Auth-Token"


def test_sort_keys_offered_are_the_databases() -> None:
    assert set(SortKey.__args__) <= set(INSTANCE_SORT_KEYS)  # type: ignore[attr-defined]


def test_api_service_serves_on_a_free_port_and_reports_in(spine: Spine) -> None:
    config = cloud_config(api_tokens=TOKENS, api_listen="127.0.0.1:0")
    service = api_service(spine.transport, config, "api-host-1")
    assert service.port != 0
    with service:
        response = httpx.get(f"{service.url}/flavors", headers=ALICE, timeout=10)
        assert response.status_code == 200
        assert response.json()["flavors"]
        heartbeat = Service.get_by_host_and_binary(spine.admin, "api-host-1", "podium-api")
        assert heartbeat.topic is None and heartbeat.report_count >= 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/flavors", headers=ALICE, timeout=2)


def test_api_service_refuses_a_bad_listen_address(spine: Spine) -> None:
    with pytest.raises(ValueError, match="api_listen"):
        api_service(spine.transport, cloud_config(api_listen="localhost"), "h")
