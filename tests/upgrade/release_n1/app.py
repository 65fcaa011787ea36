# Release acacia (the one before this code's), as it shipped. Do not edit it to follow
# later changes; a release that shipped does not change.
"""The reference cloud as a podium application (entry point group ``podium.apps``).

Loaded by ``podium --help``: this module names modules, it imports none of them.
"""

from __future__ import annotations

from podium.apps import App

APP = App(
    name="cloud",
    # Acacia shipped one migration, the one this code still ships (re-exported there).
    migrations="tests.upgrade.release_n1.migrations",
    models=("podium.cloud.models",),
    # Children first: a fault outlives nothing it describes.
    archive=("instance_faults", "instances", "compute_nodes", "services", "flavors"),
    objects=("podium.cloud.objects",),
    remote_exceptions=("podium.cloud.exceptions",),
    conductor_endpoints="podium.cloud.conductor:conductor_endpoints",
    commands={
        "api": "podium.cloud.cli:api",
        "scheduler": "podium.cloud.cli:scheduler",
        "compute": "podium.cloud.cli:compute",
        "all-in-one": "podium.cloud.cli:all_in_one",
        # The client commands, over the REST API. Compute nodes are `hypervisor`
        # (as in Nova's API and openstack's CLI): `compute` runs a compute host.
        "server": "podium.cloud.client.commands:server",
        "flavor": "podium.cloud.client.commands:flavor",
        "service": "podium.cloud.client.commands:service",
        "hypervisor": "podium.cloud.client.commands:hypervisor",
    },
)
