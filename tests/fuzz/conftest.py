"""How many examples each fuzz property runs: 500 by default, 10,000 with ``-m nightly``.

``PODIUM_FUZZ_EXAMPLES=<n>`` sets any other number. The settings are a
hypothesis profile of their own (``podium-fuzz``), registered here before the
test module is imported, so the rest of the suite keeps hypothesis' defaults.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 500
NIGHTLY_EXAMPLES = 10_000
PROFILE = "podium-fuzz"


def _nightly_selected(markexpr: str) -> bool:
    """Does ``-m`` select the nightly marker (``nightly``, ``nightly and ...``)?"""
    words = re.findall(r"\w+", markexpr)
    return any(
        word == "nightly" and (index == 0 or words[index - 1] != "not")
        for index, word in enumerate(words)
    )


def pytest_configure(config: pytest.Config) -> None:
    examples = DEFAULT_EXAMPLES
    if _nightly_selected(config.getoption("markexpr", "") or ""):
        examples = NIGHTLY_EXAMPLES
    if os.environ.get("PODIUM_FUZZ_EXAMPLES"):
        examples = int(os.environ["PODIUM_FUZZ_EXAMPLES"])
    settings.register_profile(
        PROFILE,
        max_examples=examples,
        deadline=None,
        # CI runs must leave no example database behind in the working tree.
        database=None if os.environ.get("CI", "").lower() == "true" else settings().database,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
