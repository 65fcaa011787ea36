"""The cloud's REST API: a worker that turns requests into object calls and casts.

It holds no database credentials: every read and write is an object method
that goes through the conductor (the process sets ``CloudObject``'s
indirection API), a build is handed to the conductor with a cast, an action
to the instance's compute host with a cast. No request waits on a hypervisor.

Routes are plain ``def`` functions: object calls block on the bus, and
FastAPI runs such routes on its worker threads instead of the event loop.
They live in :mod:`.servers` and :mod:`.resources`; :mod:`.deps` holds what
they depend on (the caller's identity, the API's state), :mod:`.errors` how
the API fails.
"""

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from podium.cloud.api import resources, servers
from podium.cloud.api.auth import RateLimiter, TokenTable, parse_tokens
from podium.cloud.api.deps import ApiState, FilterStatus, SortKey
from podium.cloud.api.errors import COMMON, ApiError, Guard, documented, install_error_handlers
from podium.cloud.config import CloudConfig
from podium.cloud.rpcapi import ComputeAPI, ComputeTaskAPI
from podium.rpc import Transport

__all__ = ["ApiError", "FilterStatus", "SortKey", "create_app"]

LOG = logging.getLogger("podium.cloud.api")


def create_app(config: CloudConfig, transport: Transport) -> FastAPI:
    """The API over ``transport``; the process must have routed ``CloudObject`` to a conductor.

    Raises :class:`~podium.cloud.api.auth.TokenError` if ``config.api_tokens``
    cannot be read: better at start-up than as 401s for everyone.
    """
    tokens = TokenTable(parse_tokens(config.api_tokens))
    if not len(tokens):
        LOG.warning("api_tokens is empty: every request will be refused (401)")
    app = FastAPI(
        title="podium cloud",
        version="1.0",
        description="The reference cloud's compute API (Nova-like)",
        responses=documented(*COMMON),
    )
    app.state.api = ApiState(
        config=config,
        tokens=tokens,
        limiter=RateLimiter(config.api_rate_limit),
        compute=ComputeAPI(transport, config),
        compute_task=ComputeTaskAPI(transport, config),
    )
    app.add_middleware(Guard)
    install_error_handlers(app)
    app.include_router(servers.router)
    app.include_router(resources.router)
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
