"""Service configuration: a typed record filled from the environment and CLI options.

Every setting has an environment variable (``PODIUM_<NAME>``) so a fleet can be
configured without files; CLI options override it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"PODIUM_{name.upper()} must be a boolean (true/false), not {text!r}")


@dataclass(frozen=True)
class ServiceConfig:
    transport_url: str = "memory://"
    database_url: str | None = None
    host: str = field(default_factory=socket.gethostname)
    # Run object methods in this process instead of through the conductor.
    use_local: bool = False
    conductor_topic: str = "conductor"
    rpc_timeout: float = 60.0
    rpc_workers: int = 8
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Self:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = env.get(f"PODIUM_{f.name.upper()}")
            if text is None:
                continue
            if f.type == "bool":
                values[f.name] = _parse_bool(f.name, text)
            elif f.type == "float":
                values[f.name] = float(text)
            elif f.type == "int":
                values[f.name] = int(text)
            else:
                values[f.name] = text
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)
