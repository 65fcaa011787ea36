"""Instance states, with Nova's names and power-state numbers."""

from __future__ import annotations

from typing import Final

# vm_state: what the instance is.
BUILDING: Final = "building"
ACTIVE: Final = "active"
PAUSED: Final = "paused"
STOPPED: Final = "stopped"
ERROR: Final = "error"
DELETED: Final = "deleted"

# task_state: what is being done to it (None: nothing).
SCHEDULING: Final = "scheduling"
SPAWNING: Final = "spawning"
PAUSING: Final = "pausing"
UNPAUSING: Final = "unpausing"
POWERING_OFF: Final = "powering-off"
POWERING_ON: Final = "powering-on"
REBOOTING: Final = "rebooting"
DELETING: Final = "deleting"

# power_state: what the hypervisor reports.
NOSTATE: Final = 0
RUNNING: Final = 1
PAUSED_POWER: Final = 3
SHUTDOWN: Final = 4
