"""The cloud's REST API: a worker that turns requests into object calls and casts.

It holds no database credentials: every read and write is an object method
that goes through the conductor (the process sets ``CloudObject``'s
indirection API), a build is handed to the conductor with a cast, an action
to the instance's compute host with a cast. No request waits on a hypervisor.

Routes are plain ``def`` functions: object calls block on the bus, and
FastAPI runs such routes on its worker threads instead of the event loop.

No ``from __future__ import annotations`` here: FastAPI reads the routes'
annotations at run time, and they name aliases local to ``create_app``.
"""

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.cloud import states
from podium.cloud.api import views
from podium.cloud.api.auth import RateLimiter, TokenTable, parse_tokens, retry_after
from podium.cloud.api.schemas import (
    ConsoleOutputAction,
    ConsoleOutputBody,
    ErrorBody,
    FlavorBody,
    FlavorListBody,
    HypervisorListBody,
    Link,
    PauseAction,
    RebootAction,
    ServerAction,
    ServerBody,
    ServerCreateRequest,
    ServerListBody,
    ServiceBody,
    ServiceListBody,
    ServiceUpdate,
    StartAction,
    StopAction,
    UnpauseAction,
)
from podium.cloud.api.views import StatusQuery
from podium.cloud.compute.manager import COMPUTE_BINARY
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import (
    InstanceInvalidState,
    UnexpectedTaskStateError,
    UpgradeInProgress,
)
from podium.cloud.objects import (
    ComputeNodeList,
    Flavor,
    FlavorList,
    Instance,
    InstanceFault,
    InstanceList,
    Service,
    ServiceList,
)
from podium.cloud.rpcapi import COMPUTE_TOPIC, ComputeAPI, ComputeTaskAPI
from podium.context import ReadDeleted, RequestContext
from podium.exceptions import (
    DBConnectionError,
    MessagingError,
    MessagingTimeout,
    NoConsumer,
    NotFound,
    PodiumError,
    TransportError,
)
from podium.rpc import Transport

LOG = logging.getLogger(__name__)

#: Most servers one page holds (Nova's osapi_max_limit).
MAX_PAGE = 1000
#: Largest request body: a server create with 128 metadata items of 255+255
#: characters is about 70 KiB (Nova's sizelimit middleware allows 112 KiB).
MAX_BODY_BYTES = 112 * 1024
#: Seconds a client is told to wait when the conductor or a host is unreachable.
UNAVAILABLE_RETRY_AFTER = 5

# The sort keys the API offers: the DB's, less its internal row id.
SortKey = Literal[
    "created_at",
    "updated_at",
    "uuid",
    "display_name",
    "vm_state",
    "power_state",
    "memory_mb",
    "vcpus",
    "root_gb",
]
FilterStatus = Literal["BUILD", "ACTIVE", "PAUSED", "SHUTOFF", "REBOOT", "ERROR", "DELETED"]

_UNAVAILABLE = (MessagingTimeout, NoConsumer, TransportError, DBConnectionError)
# Strings from the query or the path reach SQL comparisons: PostgreSQL refuses
# a NUL in a string outright (a 500), so control characters stop here as a 400.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class ApiError(Exception):
    """A failure with its status and a message fit for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status, "message": message}}, status_code=status, headers=headers
    )


def _documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid request (body, query or path)",
        401: "No token, or an unknown one",
        403: "Admins only",
        404: "No such resource (or another project's)",
        409: "The server's state does not allow it now",
        413: "Body too large",
        429: "Rate limit reached; see Retry-After",
        500: "Unexpected error (logged)",
        503: "The conductor or a compute host is unreachable; see Retry-After",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in codes}


# Every route may meet these: authentication, the rate limit, the bus.
_COMMON = (400, 401, 429, 500, 503)


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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class _Guard:
    """Outermost ASGI layer: bounds request bodies and turns any escaped error into a 500.

    Starlette's own last-resort handler answers a plain-text 500 and re-raises;
    this one answers the API's JSON error body and logs the traceback once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                await error_response(413, f"The body exceeds {MAX_BODY_BYTES} bytes")(
                    scope, receive, send
                )
                return
        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await error_response(413, f"The body exceeds {MAX_BODY_BYTES} bytes")(
                scope, receive, send
            )
        except Exception:
            LOG.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await error_response(500, "Internal error; the API's log has the details")(
                scope, receive, send
            )


class _TooLarge(Exception):
    pass


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        # ("body", "server", "name"): the part of the request, then where in it.
        where = ".".join(str(step) for step in item.get("loc", ()) if step != "body")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(error.errors()) - len(parts)
    return "Invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def create_app(config: CloudConfig, transport: Transport) -> FastAPI:
    """The API over ``transport``; the process must have routed ``CloudObject`` to a conductor.

    Raises :class:`~podium.cloud.api.auth.TokenError` if ``config.api_tokens``
    cannot be read: better at start-up than as 401s for everyone.
    """
    tokens = TokenTable(parse_tokens(config.api_tokens))
    if not len(tokens):
        LOG.warning("api_tokens is empty: every request will be refused (401)")
    limiter = RateLimiter(config.api_rate_limit)
    compute = ComputeAPI(transport, config)
    compute_task = ComputeTaskAPI(transport, config)
    token_header = APIKeyHeader(
        name="X-Auth-Token",
        auto_error=False,
        scheme_name="token",
        description="A token from the api_tokens setting",
    )

    def authenticate(
        request: Request, token: Annotated[str | None, Security(token_header)]
    ) -> RequestContext:
        found = tokens.lookup(token) if token else None
        if found is None:
            raise ApiError(
                401,
                "Authentication required: an X-Auth-Token header with a valid token",
                {"WWW-Authenticate": "Token"},
            )
        digest, credentials = found
        wait = limiter.acquire(digest)
        if wait > 0:
            raise ApiError(
                429,
                f"Rate limit of {config.api_rate_limit} requests a minute reached; "
                f"retry in {retry_after(wait)} s",
                {"Retry-After": retry_after(wait)},
            )
        context = credentials.context()
        request.state.request_id = context.request_id
        return context

    def admin(context: Annotated[RequestContext, Depends(authenticate)]) -> RequestContext:
        if not context.is_admin:
            raise ApiError(403, "This needs the admin role")
        return context

    User = Annotated[RequestContext, Depends(authenticate)]
    Admin = Annotated[RequestContext, Depends(admin)]
    ServerId = Annotated[str, Path(max_length=255, description="The server's uuid")]
    Deleted = Annotated[
        ReadDeleted,
        Query(description="Admins only: 'yes' includes deleted servers, 'only' lists them alone"),
    ]

    app = FastAPI(
        title="podium cloud",
        version="1.0",
        description="The reference cloud's compute API (Nova-like)",
        responses=_documented(*_COMMON),
    )
    app.add_middleware(_Guard)

    # -- errors ----------------------------------------------------------------

    @app.exception_handler(ApiError)
    def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(error))

    @app.exception_handler(NotFound)
    def _not_found(request: Request, error: NotFound) -> JSONResponse:
        return error_response(404, "Not found")

    @app.exception_handler(UnexpectedTaskStateError)
    def _conflict(request: Request, error: UnexpectedTaskStateError) -> JSONResponse:
        return error_response(
            409, "Another action on this server got there first; reload it and try again"
        )

    @app.exception_handler(InstanceInvalidState)
    def _invalid_state(request: Request, error: InstanceInvalidState) -> JSONResponse:
        return error_response(409, str(error))

    @app.exception_handler(PodiumError)
    def _podium_error(request: Request, error: PodiumError) -> JSONResponse:
        if isinstance(error, _UNAVAILABLE):
            LOG.warning(
                "%s %s: %s: %s", request.method, request.url.path, type(error).__name__, error
            )
            return error_response(
                503,
                "The cloud's conductor or a compute host did not answer; try again later",
                {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
            )
        LOG.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return error_response(500, "Internal error; the API's log has the details")

    # -- helpers ---------------------------------------------------------------

    def read_deleted_allowed(context: RequestContext, read_deleted: ReadDeleted) -> None:
        if read_deleted != "no" and not context.is_admin:
            raise ApiError(403, "Only admins may read deleted servers")

    def find_server(
        context: RequestContext, server_id: str, read_deleted: ReadDeleted = "no"
    ) -> Instance:
        missing = ApiError(404, f"Server {server_id} could not be found")
        if not _is_uuid(server_id):
            raise missing
        try:
            instance = Instance.get_by_uuid(replace(context, read_deleted=read_deleted), server_id)
        except NotFound:
            raise missing from None
        # Another project's server does not exist for this caller: a 403
        # would confirm that the uuid is in use.
        if not context.is_admin and instance.project_id != context.project_id:
            raise missing
        return instance

    def find_flavor(context: RequestContext, flavor_id: str, status: int) -> Flavor:
        missing = ApiError(status, f"Flavor {flavor_id} could not be found")
        try:
            flavor = Flavor.get_by_flavor_id(context, flavor_id)
        except NotFound:
            raise missing from None
        if not flavor.is_public and not context.is_admin:
            raise missing
        return flavor

    # -- servers ---------------------------------------------------------------

    @app.post(
        "/servers",
        status_code=202,
        tags=["servers"],
        responses=_documented(413),
        summary="Create a server (the build goes on after the answer)",
    )
    def create_server(body: ServerCreateRequest, context: User) -> ServerBody:
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
            compute_task.build_instances(
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
            str | None, Query(max_length=255, pattern=_PRINTABLE, description="Exact name")
        ] = None,
        status: FilterStatus | None = None,
        host: Annotated[
            str | None, Query(max_length=255, pattern=_PRINTABLE, description="Admins only")
        ] = None,
        all_tenants: Annotated[bool, Query(description="Admins only")] = False,
        read_deleted: Deleted = "no",
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
        marker: Annotated[str | None, Query(max_length=255, pattern=_PRINTABLE)] = None,
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
        app.add_api_route(
            path,
            list_servers,
            methods=["GET"],
            tags=["servers"],
            responses=_documented(403),
            summary=summary,
            operation_id="list_servers" if path == "/servers" else "list_servers_detail",
        )

    @app.get("/servers/{server_id}", tags=["servers"], responses=_documented(403, 404))
    def get_server(server_id: ServerId, context: User, read_deleted: Deleted = "no") -> ServerBody:
        read_deleted_allowed(context, read_deleted)
        instance = find_server(context, server_id, read_deleted)
        return ServerBody(server=views.server_view(instance, admin=context.is_admin))

    @app.delete(
        "/servers/{server_id}",
        status_code=204,
        response_class=Response,
        tags=["servers"],
        responses=_documented(404, 409),
        summary="Delete a server (its host finishes the delete after the answer)",
    )
    def delete_server(server_id: ServerId, context: User) -> Response:
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
            if instance.host is None or not host_is_up(context, instance.host):
                # Nothing runs there to clean up, or its compute is gone and
                # will not come to it: Nova's local delete.
                _delete_locally(instance)
                return Response(status_code=204)
            compute.terminate_instance(context, instance)
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

    def host_is_up(context: RequestContext, host: str) -> bool:
        try:
            service = Service.get_by_host_and_binary(context.elevated(), host, COMPUTE_BINARY)
        except NotFound:
            return False
        up = service.is_up(config.service_down_time)
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

    @app.post(
        "/servers/{server_id}/action",
        status_code=202,
        response_class=Response,
        tags=["servers"],
        responses=_documented(404, 409, 413),
        summary="Pause, unpause, stop, start or reboot a server (202), "
        "or read its console output (os-getConsoleOutput: 200 with the output)",
    )
    def server_action(server_id: ServerId, body: ServerAction, context: User) -> Response:
        instance = find_server(context, server_id)
        if isinstance(body, ConsoleOutputAction):
            return console_output(instance, body.get_console_output.length, context)
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
            raise ApiError(
                409, f"Cannot '{name}' server {server_id} while it is {instance.task_state}"
            )
        if instance.host is None:
            raise ApiError(409, f"Cannot '{name}' server {server_id}: it runs on no host")
        instance.task_state = rule.task_state
        # The CAS covers what was checked: a stop (say) finishing since the
        # read must not let a soft reboot run on a STOPPED server.
        instance.save(expected_task_state=[None], expected_vm_state=list(rule.allowed))
        try:
            rule.cast(compute, context, instance)
        except MessagingError:
            # Not sent: free the server for the next try instead of leaving it busy.
            _put_back(instance, rule.task_state, None)
            raise
        return Response(status_code=202)

    def console_output(instance: Instance, length: int | None, context: RequestContext) -> Response:
        if instance.vm_state not in (states.ACTIVE, states.PAUSED, states.STOPPED):
            raise ApiError(
                409,
                f"Cannot read the console of server {instance.uuid} while it is "
                f"{instance.vm_state}",
            )
        try:
            output = compute.get_console_output(context, instance, length)
        except UpgradeInProgress as error:
            raise ApiError(409, f"The console output is not available yet: {error}") from None
        body = ConsoleOutputBody(output=output)
        return JSONResponse(body.model_dump(), status_code=200)

    # -- flavors ---------------------------------------------------------------

    @app.get("/flavors", tags=["flavors"])
    def get_flavors(context: User) -> FlavorListBody:
        flavors = FlavorList.get_all(context)
        return FlavorListBody(
            flavors=[
                views.flavor_view(flavor)
                for flavor in flavors
                if flavor.is_public or context.is_admin
            ]
        )

    @app.get("/flavors/{flavor_id}", tags=["flavors"], responses=_documented(404))
    def get_flavor(
        flavor_id: Annotated[str, Path(max_length=255, pattern=_PRINTABLE)], context: User
    ) -> FlavorBody:
        return FlavorBody(flavor=views.flavor_view(find_flavor(context, flavor_id, 404)))

    # -- services and hypervisors (admins) -------------------------------------

    @app.get("/os-services", tags=["admin"], responses=_documented(403))
    def get_services(
        context: Admin,
        binary: Annotated[str | None, Query(max_length=255, pattern=_PRINTABLE)] = None,
    ) -> ServiceListBody:
        services = ServiceList.get_all(context, binary=binary)
        return ServiceListBody(
            services=[views.service_view(s, config.service_down_time) for s in services]
        )

    @app.put("/os-services/{service_id}", tags=["admin"], responses=_documented(403, 404, 413))
    def update_service(
        service_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        body: ServiceUpdate,
        context: Admin,
    ) -> ServiceBody:
        try:
            service = Service.get_by_id(context, service_id)
        except NotFound:
            raise ApiError(404, f"Service {service_id} could not be found") from None
        if body.status is not None:
            service.disabled = body.status == "disabled"
            service.disabled_reason = body.disabled_reason if service.disabled else None
        if body.forced_down is not None:
            service.forced_down = body.forced_down
        service.save()
        return ServiceBody(service=views.service_view(service, config.service_down_time))

    @app.get("/os-hypervisors", tags=["admin"], responses=_documented(403))
    def get_hypervisors(context: Admin) -> HypervisorListBody:
        nodes = ComputeNodeList.get_all(context)
        computes = {s.host: s for s in ServiceList.get_all(context) if s.topic == COMPUTE_TOPIC}
        return HypervisorListBody(
            hypervisors=[
                views.hypervisor_view(node, computes.get(node.host), config.service_down_time)
                for node in nodes
            ]
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, with validation failures documented as what they are: 400s."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.setdefault(
                "400",
                {
                    "description": "Invalid request (body, query or path)",
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


__all__: Sequence[str] = ["ApiError", "create_app"]
