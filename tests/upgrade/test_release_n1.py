"""The previous release kept in the test tree is the one that shipped, and the releases
table says what it knew.

Its objects are fingerprinted in a child process: registered here, they would
join this process's registry beside this release's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from podium.cloud.releases import release_named
from podium.objects.fixture import load_expected

ROOT = Path(__file__).parents[2]
RECORDED = Path(__file__).with_name("release_n1") / "expected_object_hashes.json"


COMMAND = ("objects", "versions", "-m", "tests.upgrade.release_n1.objects", "--json")


def _fingerprints() -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "podium", *COMMAND],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    table: dict[str, str] = json.loads(done.stdout)
    return table


def test_the_kept_release_has_the_fingerprints_it_shipped_with() -> None:
    assert _fingerprints() == load_expected(RECORDED)


def test_the_releases_table_knows_the_versions_acacia_knew() -> None:
    shipped = {name: fp.partition("-")[0] for name, fp in load_expected(RECORDED).items()}
    assert dict(release_named("acacia").objects) == shipped
