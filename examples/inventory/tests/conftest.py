from __future__ import annotations

import pytest
from inventory.app import APP

from podium.apps import App


@pytest.fixture
def podium_apps() -> list[App]:
    # Served by the kit's fixtures whether or not the application is installed.
    return [APP]
