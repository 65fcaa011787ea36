"""Changing a reference-app object without bumping its VERSION must fail here.

After a deliberate change: bump VERSION, then refresh the table with::

    podium objects versions -m podium.cloud.objects --json \
        > tests/cloud/expected_object_hashes.json
"""

from pathlib import Path

from podium.cloud import objects as cloud_objects
from podium.objects.fixture import ObjectVersionChecker, load_expected

EXPECTED = Path(__file__).with_name("expected_object_hashes.json")


def test_reference_objects_match_their_recorded_fingerprints() -> None:
    checker = ObjectVersionChecker()
    ours = {
        name
        for name, versions in checker.registry.obj_classes().items()
        if versions[0].__module__ == cloud_objects.__name__
    }
    expected = load_expected(EXPECTED)
    assert ours == set(expected)
    actual = {name: fp for name, fp in checker.get_hashes().items() if name in ours}
    assert actual == expected, checker.explain(expected, actual)
