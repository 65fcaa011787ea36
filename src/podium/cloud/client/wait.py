"""``--wait``: poll a server until it settles, showing its state as it goes.

On a terminal the state is a live line (rich: a spinner, the status, the task
and the time so far) that gives way to one final line; anywhere else each
change of status or task is printed once, as a line of its own, so a log or a
CI job reads as a history instead of a stream of redraws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium.cloud.client.errors import ClientError
from podium.cloud.client.http import ApiClient, NotFoundError

__all__ = ["DELETED", "Target", "wait_for_server"]

#: The status ``wait_for_server`` reports once a deleted server is gone.
DELETED = "DELETED"
#: First and longest pause between two reads of the server (seconds).
_FIRST_POLL = 0.1
_LONGEST_POLL = 0.5


@dataclass(frozen=True)
class Target:
    """What a server must end as: a status (``DELETED``: gone), and what the action was."""

    status: str
    action: str


def _settled(server: dict[str, Any], target: Target) -> bool:
    status = server.get("status")
    if status == DELETED:
        return True
    if server.get("task_state") is not None:
        return False
    # No task left: the action is over, whatever it came to (ERROR included),
    # except a delete, which is over only once the server is gone.
    return target.status != DELETED or status == "ERROR"


def _fault(server: dict[str, Any]) -> str:
    fault = server.get("fault")
    if isinstance(fault, dict) and isinstance(fault.get("message"), str):
        return str(fault["message"])
    return "the cloud recorded no fault"


class _LiveLine:
    """The live line's text, drawn afresh at each refresh so that the time runs smoothly
    between two reads of the server."""

    def __init__(self, label: str, began: float, clock: Callable[[], float]) -> None:
        self.label = label
        self.began = began
        self.clock = clock
        self.state = "waiting"

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(f"{self.label}: {self.state}  {self.clock() - self.began:.1f} s")


def _read_server(api: ApiClient, server_id: str) -> dict[str, Any]:
    try:
        body = api.get(f"/servers/{server_id}")
    except NotFoundError:
        return {"id": server_id, "status": DELETED, "task_state": None}
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, dict) or not isinstance(server.get("status"), str):
        raise ClientError(f"the API at {api.where} answered GET /servers/ID without a server")
    return server


def _describe(server: dict[str, Any]) -> str:
    task = server.get("task_state")
    return f"{server['status']}" + (f" ({task})" if task else "")


def wait_for_server(
    api: ApiClient,
    server_id: str,
    label: str,
    target: Target,
    *,
    timeout: float,
    stderr: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any] | None:
    """The server once settled at ``target`` (None once deleted).

    ClientError if it ends elsewhere (in ERROR: with its fault's message), or
    is still busy after ``timeout`` seconds. The display goes to stdout, or to
    stderr with ``stderr`` (``--json``: stdout holds the document only).
    """
    from rich.text import Text

    from podium.cloud.client.output import console

    out = console(stderr=stderr)
    began = clock()
    line = _LiveLine(label, began, clock)
    status_line = out.status(line, spinner="dots") if out.is_terminal else None
    if status_line is not None:
        status_line.start()
    try:
        server = _poll(
            api, server_id, target, line, timeout, clock, out if status_line is None else None
        )
    finally:
        if status_line is not None:
            status_line.stop()
    status = server["status"]
    if status == "ERROR" and target.status != "ERROR":
        raise ClientError(f"server {label} is in ERROR after {target.action}: {_fault(server)}")
    if status != target.status:
        raise ClientError(f"server {label} is {status} after {target.action}, not {target.status}")
    elapsed = clock() - began
    out.print(Text(f"{label}: {'deleted' if status == DELETED else status} after {elapsed:.1f} s"))
    return None if status == DELETED else server


def _poll(
    api: ApiClient,
    server_id: str,
    target: Target,
    line: _LiveLine,
    timeout: float,
    clock: Callable[[], float],
    history: Any,
) -> dict[str, Any]:
    """Read the server until it settles; each change goes to ``history`` (a console) when
    there is no live line to show it."""
    from rich.text import Text

    deadline = line.began + timeout
    pause = _FIRST_POLL
    last: tuple[Any, Any] | None = None
    while True:
        server = _read_server(api, server_id)
        state = (server.get("status"), server.get("task_state"))
        line.state = _describe(server)
        if history is not None and state != last:
            history.print(Text(f"{clock() - line.began:6.1f} s  {line.label}: {line.state}"))
        last = state
        if _settled(server, target):
            return server
        if clock() >= deadline:
            raise ClientError(
                f"gave up after {timeout:g} s: server {line.label} is still {line.state}"
            )
        time.sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 1.5, _LONGEST_POLL)
