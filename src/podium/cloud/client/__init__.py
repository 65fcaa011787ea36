"""The cloud's client commands: ``podium server|flavor|service|hypervisor ...`` over the REST API.

A client runs on a laptop against a remote API, so nothing here reaches the
server stack: the modules import click and light podium modules at their top,
httpx and rich only inside the functions that talk or draw, and no pydantic
(the settings are checked by hand, :mod:`podium.cloud.client.settings`).

Every expected failure is a :class:`ClientError` (a ``click.ClickException``):
one line on stderr and exit status 1.
"""

from __future__ import annotations

from podium.cloud.client.errors import ClientError

__all__ = ["ClientError"]
