"""Errors of the reference cloud.

Services re-raise them as themselves across the bus: the cloud registers this
module in its app's ``remote_exceptions``.
"""

from __future__ import annotations

from podium.exceptions import DBError, PodiumError


class CloudError(PodiumError):
    """Root of the reference cloud's errors."""


class UnexpectedTaskStateError(DBError, CloudError):
    """A compare-and-swap on ``task_state`` lost the race: another action got there first."""


class InstanceInvalidState(CloudError):
    """The instance is not in a state that allows the action."""


class NoValidHost(CloudError):
    """No compute host passes the filters with room for the request."""


class FlavorNotFound(CloudError):
    pass


class BuildFailed(CloudError):
    """The hypervisor could not build the instance on this host."""


class UpgradeInProgress(CloudError):
    """A request needs a newer RPC version than some service of its topic runs yet."""
