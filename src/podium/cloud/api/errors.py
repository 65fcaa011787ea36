"""How the API fails: its one error body, its exception handlers, and its outer guard."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.cloud.api.schemas import ErrorBody
from podium.cloud.exceptions import InstanceInvalidState, UnexpectedTaskStateError
from podium.exceptions import (
    DBConnectionError,
    MessagingTimeout,
    NoConsumer,
    NotFound,
    PodiumError,
    PolicyNotAuthorized,
    TransportError,
)

LOG = logging.getLogger("podium.cloud.api")

#: Largest request body: a server create with 128 metadata items of 255+255
#: characters is about 70 KiB (Nova's sizelimit middleware allows 112 KiB).
MAX_BODY_BYTES = 112 * 1024
#: Seconds a client is told to wait when the conductor or a host is unreachable.
UNAVAILABLE_RETRY_AFTER = 5
#: What every operation may answer besides its own codes.
COMMON = (400, 401, 429, 500, 503)

_UNAVAILABLE = (MessagingTimeout, NoConsumer, TransportError, DBConnectionError)


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


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
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


class Guard:
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


def validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        # ("body", "server", "name"): the part of the request, then where in it.
        where = ".".join(str(step) for step in item.get("loc", ()) if step != "body")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(error.errors()) - len(parts)
    return "Invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers the API's error body, with the status that says what it is."""

    @app.exception_handler(ApiError)
    def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(error))

    @app.exception_handler(NotFound)
    def _not_found(request: Request, error: NotFound) -> JSONResponse:
        return error_response(404, "Not found")

    @app.exception_handler(UnexpectedTaskStateError)
    def _conflict(request: Request, error: UnexpectedTaskStateError) -> JSONResponse:
        return error_response(
            409, "Another action on this server got there first; reload it and try again"
        )

    @app.exception_handler(PolicyNotAuthorized)
    def _refused(request: Request, error: PolicyNotAuthorized) -> JSONResponse:
        # The conductor's audit log has the rule; the client learns only no.
        return error_response(403, "The cloud's policy does not allow this request")

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
