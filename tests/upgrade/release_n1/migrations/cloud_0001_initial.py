"""Release acacia's one migration of the cloud: the one this code still ships, unchanged."""

from podium.cloud.migrations.versions.cloud_0001_initial import (
    branch_labels,
    depends_on,
    down_revision,
    downgrade,
    revision,
    upgrade,
)

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]
