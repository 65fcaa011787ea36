"""A second application, living in the tests: its own tables and Alembic branch ``toy``.

It shows that podium.db serves any application, not only the reference
cloud: passed explicitly as ``apps=[..., TOY]`` (it is not installed through
the entry point group, so other test sessions never see it).
"""

from __future__ import annotations

from podium.apps import App

TOY = App(
    name="toy",
    migrations="toy_app.migrations.versions",
    models=("toy_app.models",),
    # Parts first: a part belongs to a widget.
    archive=("toy_parts", "toy_widgets"),
)
