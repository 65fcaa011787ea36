"""What every route depends on: the API's state, the caller's identity, the lookups
that hide other projects' resources."""

import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyHeader

from podium.cloud.api.auth import RateLimiter, TokenTable, retry_after
from podium.cloud.api.errors import ApiError
from podium.cloud.config import CloudConfig
from podium.cloud.objects import Flavor, Instance
from podium.cloud.rpcapi import ComputeAPI, ComputeTaskAPI
from podium.context import ReadDeleted, RequestContext
from podium.exceptions import NotFound, PolicyNotAuthorized

#: Most servers one page holds (Nova's osapi_max_limit).
MAX_PAGE = 1000
# Strings from the query or the path reach SQL comparisons: PostgreSQL refuses
# a NUL in a string outright (a 500), so control characters stop here as a 400.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

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


@dataclass(frozen=True)
class ApiState:
    """What the routes share, kept on the app (``app.state.api``)."""

    config: CloudConfig
    tokens: TokenTable
    limiter: RateLimiter
    compute: ComputeAPI
    compute_task: ComputeTaskAPI


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(api_state)]

_TOKEN_HEADER = APIKeyHeader(
    name="X-Auth-Token",
    auto_error=False,
    scheme_name="token",
    description="A token from the api_tokens setting",
)


def authenticate(
    request: Request, state: State, token: Annotated[str | None, Security(_TOKEN_HEADER)]
) -> RequestContext:
    found = state.tokens.lookup(token) if token else None
    if found is None:
        raise ApiError(
            401,
            "Authentication required: an X-Auth-Token header with a valid token",
            {"WWW-Authenticate": "Token"},
        )
    digest, credentials = found
    wait = state.limiter.acquire(digest)
    if wait > 0:
        raise ApiError(
            429,
            f"Rate limit of {state.config.api_rate_limit} requests a minute reached; "
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
    except (NotFound, PolicyNotAuthorized):
        # The conductor's policy refuses another project's server too.
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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
