"""The reference cloud as a podium application (entry point group ``podium.apps``).

Loaded by ``podium --help``: this module names modules, it imports none of them.
"""

from __future__ import annotations

from podium.apps import App

APP = App(
    name="cloud",
    migrations="podium.cloud.migrations.versions",
    models=("podium.cloud.models",),
    # Children first: a fault outlives nothing it describes.
    archive=("instance_faults", "instances", "compute_nodes", "services", "flavors"),
    objects=("podium.cloud.objects",),
    remote_exceptions=("podium.cloud.exceptions",),
    conductor_endpoints="podium.cloud.conductor:conductor_endpoints",
    policy="podium.cloud.policy:defaults",
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
