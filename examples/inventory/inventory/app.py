"""How podium finds this application (``[project.entry-points."podium.apps"]``)."""

from __future__ import annotations

from podium.apps import App

APP = App(
    name="inventory",
    migrations="inventory.migrations",
    models=("inventory.models",),
    objects=("inventory.objects",),
    remote_exceptions=("inventory.objects",),  # OutOfStock reaches a worker as itself
    conductor_endpoints="inventory.conductor:endpoints",
)
