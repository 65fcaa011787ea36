"""The cloud's REST API (FastAPI on uvicorn).

``create_app(config, transport)`` builds the ASGI app; ``api_service(transport,
config, host)`` runs it with uvicorn and the service heartbeat. Both are
loaded on first use: ``podium.cloud.api.schemas`` (pydantic only) stays
importable without FastAPI, uvicorn or the object layer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.cloud.api.app import create_app
    from podium.cloud.api.service import ApiService, api_service

__all__ = ["ApiService", "api_service", "create_app"]

_WHERE = {
    "create_app": "podium.cloud.api.app",
    "ApiService": "podium.cloud.api.service",
    "api_service": "podium.cloud.api.service",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
