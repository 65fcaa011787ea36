"""``/servers``: create, list, show, delete, and act on servers."""

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from podium.cloud import states
from podium.cloud.api import views
from podium.cloud.api.deps import (
    MAX_PAGE,
    PRINTABLE,
    ApiState,
    Deleted,
    FilterStatus,
    ServerId,
    SortKey,
    State,
    User,
    find_flavor,
    find_server,
    read_deleted_allowed,
)
from podium.cloud.api.errors import ApiError, documented
from podium.cloud.api.schemas import (
    ConsoleOutputAction,
    ConsoleOutputBody,
    Link,
    PauseAction,
    RebootAction,
    ServerAction,
    ServerBody,
    ServerCreateRequest,
    ServerListBody,
    StartAction,
    StopAction,
    UnpauseAction,
)
from podium.cloud.api.views import StatusQuery
from podium.cloud.compute.manager import COMPUTE_BINARY
from podium.cloud.exceptions import UpgradeInProgress
from podium.cloud.objects import Instance, InstanceFault, InstanceList, Service
from podium.cloud.rpcapi import ComputeAPI
from podium.context import RequestContext
from podium.exceptions import DBConnectionError, MessagingError, NoConsumer, NotFound, PodiumError

LOG = logging.getLogger("podium.cloud.api")

router = APIRouter()


@dataclass(frozen=True)
class _ActionRule:
    allowed: frozenset[str]
    task_state: str
    cast: Callable[[ComputeAPI, RequestContext, Instance], None]
    #: vm_state -> what to do first, for a refusal a client can act on.
    hints: Mapping[str, str] = field(default_factory=dict)


# Nova's check_instance_state for each action.
_ACTIONS: dict[type, _ActionRule] = {
    PauseAction: _ActionRule(frozenset({states.ACTIVE}), states.PAUSING, ComputeAPI.pause_instance),
    UnpauseAction: _ActionRule(
        frozenset({states.PAUSED}), states.UNPAUSING, ComputeAPI.unpause_instance
    ),
    StopAction: _ActionRule(
        frozenset({states.ACTIVE, states.ERROR}), states.POWERING_OFF, ComputeAPI.stop_instance
    ),
    StartAction: _ActionRule(
        frozenset({states.STOPPED}), states.POWERING_ON, ComputeAPI.start_instance
    ),
}
_SOFT_REBOOT = _ActionRule(
    frozenset({states.ACTIVE}),
    states.REBOOTING,
    lambda compute, context, instance: compute.reboot_instance(context, instance, "SOFT"),
)
# Not PAUSED: the hypervisor reboots no paused guest (as on libvirt), so the
# server would stay PAUSED with its reboot silently dropped.
_HARD_REBOOT = _ActionRule(
    frozenset({states.ACTIVE, states.STOPPED, states.ERROR}),
    states.REBOOTING,
    lambda compute, context, instance: compute.reboot_instance(context, instance, "HARD"),
    hints={states.PAUSED: "unpause it first"},
)
_ACTION_NAMES = {
    PauseAction: "pause",
    UnpauseAction: "unpause",
    StopAction: "os-stop",
    StartAction: "os-start",
    RebootAction: "reboot",
}


def _hostname(name: str, server_id: str) -> str:
    """A DNS label from the display name (Nova's sanitize_hostname, simplified)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or f"server-{server_id[:8]}"


@router.post(
    "/servers",
    status_code=202,
    tags=["servers"],
    responses=documented(413),
    summary="Create a server (the build goes on after the answer)",
)
def create_server(body: ServerCreateRequest, context: User, state: State) -> ServerBody:
    spec = body.server
    flavor = find_flavor(context, spec.flavorRef, 400)
    server_id = str(uuid.uuid4())
    instance = Instance(
        context,
        uuid=server_id,
        display_name=spec.name,
        hostname=_hostname(spec.name, server_id),
        project_id=context.project_id,
        user_id=context.user_id,
        flavor=flavor,
        vm_state=states.BUILDING,
        task_state=states.SCHEDULING,
        power_state=states.NOSTATE,
        memory_mb=flavor.memory_mb,
        vcpus=flavor.vcpus,
        root_gb=flavor.disk_gb,
        image_ref=spec.imageRef,
        metadata=dict(spec.metadata),
        key_name=spec.key_name,
    )
    instance.create()
    try:
        state.compute_task.build_instances(
            context, [instance], {"num_attempts": 0, "ignore_hosts": []}
        )
    except MessagingError as error:
        # The row exists but nobody will build it: say so on the server
        # rather than leave it BUILD for ever.
        _record_failure(context, instance, f"The build could not be handed on: {error}")
        raise
    return ServerBody(server=views.server_view(instance, admin=context.is_admin))


def _record_failure(context: RequestContext, instance: Instance, message: str) -> None:
    try:
        instance.vm_state = states.ERROR
        instance.task_state = None
        instance.save(expected_task_state=[states.SCHEDULING])
        InstanceFault(context, instance_uuid=instance.uuid, code=500, message=message).create()
    except PodiumError:
        LOG.warning("could not record the failed build of %s", instance.uuid, exc_info=True)


def list_servers(
    request: Request,
    context: User,
    name: Annotated[
        str | None, Query(max_length=255, pattern=PRINTABLE, description="Exact name")
    ] = None,
    status: FilterStatus | None = None,
    host: Annotated[
        str | None, Query(max_length=255, pattern=PRINTABLE, description="Admins only")
    ] = None,
    all_tenants: Annotated[bool, Query(description="Admins only")] = False,
    read_deleted: Deleted = "no",
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
    marker: Annotated[str | None, Query(max_length=255, pattern=PRINTABLE)] = None,
    sort_key: SortKey = "created_at",
    sort_dir: Literal["asc", "desc"] = "desc",
) -> ServerListBody:
    if (host is not None or all_tenants) and not context.is_admin:
        raise ApiError(403, "Only admins may filter by host or list all projects")
    read_deleted_allowed(context, read_deleted)
    filters: dict[str, Any] = {}
    if not all_tenants:
        filters["project_id"] = context.project_id
    if name is not None:
        filters["display_name"] = name
    if host is not None:
        filters["host"] = host
    page = min(limit or MAX_PAGE, MAX_PAGE)
    if marker is not None:
        # The marker must be one the caller can see, else paging would
        # tell whether a foreign uuid exists.
        try:
            find_server(context, marker, read_deleted)
        except ApiError:
            raise ApiError(400, f"Marker {marker} could not be found") from None
    query = None
    if status is not None:
        query = views.status_query(status, read_deleted)
        if query is None:
            return ServerListBody(servers=[], servers_links=[])
        filters.update(query.filters)
        read_deleted = query.read_deleted
    instances = list_page(
        replace(context, read_deleted=read_deleted),
        filters,
        query,
        page,
        marker,
        sort_key=sort_key,
        sort_dir=sort_dir,
    )
    servers = [views.server_view(i, admin=context.is_admin) for i in instances]
    links = []
    if len(servers) == page:
        href = request.url.include_query_params(marker=servers[-1].id, limit=page)
        links.append(Link(rel="next", href=str(href)))
    return ServerListBody(servers=servers, servers_links=links)


def list_page(
    context: RequestContext,
    filters: dict[str, Any],
    query: StatusQuery | None,
    page: int,
    marker: str | None,
    *,
    sort_key: str,
    sort_dir: str,
) -> list[Instance]:
    """Up to ``page`` servers after ``marker`` that ``query`` keeps (all without one).

    The database returns a superset for a status: it is read on in pages
    until ``page`` servers are kept, so that a full page still means
    "there may be more" and the next marker is the last server shown.
    """
    kept: list[Instance] = []
    seen: set[str] = set()
    cursor = marker
    # Earlier rows of the last batch, to go on after if its last one
    # is deleted before the next read.
    fallbacks: list[str] = []
    while True:
        try:
            batch = InstanceList.get_all(
                context,
                filters=filters,
                limit=page,
                marker=cursor,
                sort_key=sort_key,
                sort_dir=sort_dir,
            )
        except NotFound:
            if cursor == marker:
                # The marker went away between the check and the query.
                raise ApiError(400, f"Marker {marker} could not be found") from None
            if not fallbacks:
                raise ApiError(
                    409, "The servers changed too much while being listed; try again"
                ) from None
            cursor = fallbacks.pop()
            continue
        for instance in batch:
            if instance.uuid not in seen and (query is None or query.shows(instance)):
                seen.add(instance.uuid)
                kept.append(instance)
        if len(kept) >= page or len(batch) < page:
            return kept[:page]
        fallbacks = [instance.uuid for instance in batch[:-1]]
        cursor = batch[-1].uuid


# One view for both paths: a list without status is of little use, and
# Nova's clients ask for /servers/detail.
for path, summary in (
    ("/servers", "List servers (every view is the detailed one)"),
    ("/servers/detail", "List servers (the same as GET /servers, for Nova's clients)"),
):
    router.add_api_route(
        path,
        list_servers,
        methods=["GET"],
        tags=["servers"],
        responses=documented(403),
        summary=summary,
        operation_id="list_servers" if path == "/servers" else "list_servers_detail",
    )


@router.get("/servers/{server_id}", tags=["servers"], responses=documented(403, 404))
def get_server(server_id: ServerId, context: User, read_deleted: Deleted = "no") -> ServerBody:
    read_deleted_allowed(context, read_deleted)
    instance = find_server(context, server_id, read_deleted)
    return ServerBody(server=views.server_view(instance, admin=context.is_admin))


@router.delete(
    "/servers/{server_id}",
    status_code=204,
    response_class=Response,
    tags=["servers"],
    responses=documented(404, 409),
    summary="Delete a server (its host finishes the delete after the answer)",
)
def delete_server(server_id: ServerId, context: User, state: State) -> Response:
    instance = find_server(context, server_id)
    previous = instance.task_state
    if previous != states.DELETING:
        # The CAS on the task state read: any action that started meanwhile
        # (or a build that moved on) makes this a 409 instead of being overrun.
        instance.task_state = states.DELETING
        instance.save(expected_task_state=[previous])
    # Else a retry: the first terminate may never have gone out (or been
    # lost), and the compute's terminate is idempotent, so it goes again.
    try:
        if instance.host is None or not host_is_up(state, context, instance.host):
            # Nothing runs there to clean up, or its compute is gone and
            # will not come to it: Nova's local delete.
            _delete_locally(instance)
            return Response(status_code=204)
        state.compute.terminate_instance(context, instance)
    except NoConsumer:
        # Nobody serves that host (it was removed): as above.
        LOG.warning("compute %s unreachable; deleting %s locally", instance.host, instance.uuid)
        _delete_locally(instance)
    except (MessagingError, DBConnectionError):
        # Not sent: put the server back as it was, else it would stay
        # DELETING with nobody deleting it.
        if previous != states.DELETING:
            _put_back(instance, states.DELETING, previous)
        raise
    return Response(status_code=204)


def host_is_up(state: ApiState, context: RequestContext, host: str) -> bool:
    try:
        service = Service.get_by_host_and_binary(context.elevated(), host, COMPUTE_BINARY)
    except NotFound:
        return False
    up = service.is_up(state.config.service_down_time)
    if not up:
        LOG.warning("compute %s is down; its instances are deleted locally", host)
    return up


def _put_back(instance: Instance, task_state: str, previous: str | None) -> None:
    instance.task_state = previous
    try:
        instance.save(expected_task_state=[task_state])
    except PodiumError:
        LOG.warning("could not clear %s of %s", task_state, instance.uuid, exc_info=True)


def _delete_locally(instance: Instance) -> None:
    instance.vm_state = states.DELETED
    instance.task_state = None
    instance.terminated_at = datetime.now(UTC)
    instance.destroy()


@router.post(
    "/servers/{server_id}/action",
    status_code=202,
    response_class=Response,
    tags=["servers"],
    responses=documented(404, 409, 413),
    summary="Pause, unpause, stop, start or reboot a server (202), "
    "or read its console output (os-getConsoleOutput: 200 with the output)",
)
def server_action(server_id: ServerId, body: ServerAction, context: User, state: State) -> Response:
    instance = find_server(context, server_id)
    if isinstance(body, ConsoleOutputAction):
        return console_output(state, instance, body.get_console_output.length, context)
    if isinstance(body, RebootAction):
        rule = _HARD_REBOOT if body.reboot.type == "HARD" else _SOFT_REBOOT
    else:
        rule = _ACTIONS[type(body)]
    name = _ACTION_NAMES[type(body)]
    if instance.vm_state not in rule.allowed:
        hint = rule.hints.get(str(instance.vm_state))
        raise ApiError(
            409,
            f"Cannot '{name}' server {server_id} while it is {instance.vm_state}; "
            + (hint or f"it must be {' or '.join(sorted(rule.allowed))}"),
        )
    if instance.task_state is not None:
        raise ApiError(409, f"Cannot '{name}' server {server_id} while it is {instance.task_state}")
    if instance.host is None:
        raise ApiError(409, f"Cannot '{name}' server {server_id}: it runs on no host")
    instance.task_state = rule.task_state
    # The CAS covers what was checked: a stop (say) finishing since the
    # read must not let a soft reboot run on a STOPPED server.
    instance.save(expected_task_state=[None], expected_vm_state=list(rule.allowed))
    try:
        rule.cast(state.compute, context, instance)
    except MessagingError:
        # Not sent: free the server for the next try instead of leaving it busy.
        _put_back(instance, rule.task_state, None)
        raise
    return Response(status_code=202)


def console_output(
    state: ApiState, instance: Instance, length: int | None, context: RequestContext
) -> Response:
    if instance.vm_state not in (states.ACTIVE, states.PAUSED, states.STOPPED):
        raise ApiError(
            409,
            f"Cannot read the console of server {instance.uuid} while it is {instance.vm_state}",
        )
    try:
        output = state.compute.get_console_output(context, instance, length)
    except UpgradeInProgress as error:
        raise ApiError(409, f"The console output is not available yet: {error}") from None
    body = ConsoleOutputBody(output=output)
    return JSONResponse(body.model_dump(), status_code=200)
