"""``podium server|flavor|service|hypervisor``: the cloud's client commands.

The groups live in :mod:`.servers` and :mod:`.admin`, their shared options in
:mod:`.options`. Imported by ``podium <group> --help``: click and light podium
modules only at the top; httpx and rich are imported by the functions that
use them.
"""

from __future__ import annotations

from podium.cloud.client.admin import flavor, hypervisor, service
from podium.cloud.client.servers import server

__all__ = ["flavor", "hypervisor", "server", "service"]
