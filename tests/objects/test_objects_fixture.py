"""Point 9: version fingerprints, the checker, ``podium objects versions``; the export list."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import podium.objects
from podium.cli import main as podium_cli
from podium.objects import (
    ObjectListBase,
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)
from podium.objects.fixture import (
    ObjectVersionChecker,
    isolated_default_registry,
    load_expected,
    obj_fingerprint,
)

HERE = Path(__file__).parent
EXPECTED_FILE = HERE / "expected_object_hashes.json"


def build(
    *,
    version: str = "1.0",
    extra_field: bool = False,
    nullable: bool = False,
    default: Any = fields.UnspecifiedDefault,
    field_type: type[fields.Field[Any]] = fields.StringField,
    method_arg: str = "reason",
    read_only: bool = False,
) -> VersionedObjectRegistry:
    """The same small object model, with one knob turned at a time."""
    registry = VersionedObjectRegistry()

    @registry.register
    class Disk(VersionedObject):
        fields = {"size": fields.IntegerField()}

    disk_fields: dict[str, fields.Field[Any]] = {
        "name": field_type(nullable=nullable, default=default, read_only=read_only),
        "disk": fields.ObjectField("Disk"),
        "tags": fields.ListOfStringsField(),
    }
    if extra_field:
        disk_fields["note"] = fields.StringField(nullable=True)

    @registry.register
    class Machine(VersionedObject):
        VERSION = version
        fields = disk_fields

        @remotable
        def save(self, context: Any, **kwargs: Any) -> None:
            pass

        @remotable_classmethod
        def get(cls, context: Any, ident: int) -> None:
            pass

        def helper(self, anything: int) -> None:
            pass

    ns: dict[str, Any] = {}
    exec(f"def rename(self, {method_arg}=None): pass", ns)
    Machine.rename = remotable(ns["rename"])  # type: ignore[attr-defined]

    @registry.register
    class MachineList(ObjectListBase[Any]):
        fields = {"objects": fields.ListOfObjectsField("Machine")}
        child_versions = {"1.0": "1.0"}

    return registry


def test_fingerprints_are_stable_and_carry_the_version() -> None:
    first = ObjectVersionChecker(build()).get_hashes()
    second = ObjectVersionChecker(build()).get_hashes()
    assert first == second
    assert set(first) == {"Disk", "Machine", "MachineList"}
    assert first["Machine"].startswith("1.0-")
    assert len(first["Machine"]) == len("1.0-") + 32


def test_the_expected_table_in_the_repo_matches() -> None:
    checker = ObjectVersionChecker(build())
    expected, actual = checker.test_hashes(load_expected(EXPECTED_FILE))
    assert expected == actual, checker.explain(expected, actual)


@pytest.mark.parametrize(
    "change",
    [
        {"extra_field": True},
        {"nullable": True},
        {"default": "x"},
        {"field_type": fields.UUIDField},
        {"method_arg": "why"},
    ],
)
def test_changing_an_object_without_bumping_fails(change: dict[str, Any]) -> None:
    checker = ObjectVersionChecker(build(**change))
    expected, actual = checker.test_hashes(load_expected(EXPECTED_FILE))
    assert expected != actual
    assert set(expected) == {"Machine"}
    message = checker.explain(expected, actual)
    assert "Machine changed but VERSION did not: bump it" in message


def test_bumping_the_version_changes_the_fingerprint_prefix() -> None:
    checker = ObjectVersionChecker(build(version="1.1", extra_field=True))
    expected, actual = checker.test_hashes(load_expected(EXPECTED_FILE))
    assert actual["Machine"] is not None and actual["Machine"].startswith("1.1-")
    assert "bump it" not in checker.explain(expected, actual)


def test_changes_that_do_not_touch_the_wire_keep_the_fingerprint() -> None:
    base = ObjectVersionChecker(build()).get_hashes()
    assert ObjectVersionChecker(build(read_only=True)).get_hashes() == base


def test_missing_and_extra_objects_are_reported() -> None:
    checker = ObjectVersionChecker(build())
    table = dict(load_expected(EXPECTED_FILE))
    del table["Disk"]
    table["Gone"] = "1.0-abc"
    expected, actual = checker.test_hashes(table)
    assert expected == {"Disk": None, "Gone": "1.0-abc"}
    assert actual == {"Disk": ObjectVersionChecker(build()).get_hashes()["Disk"], "Gone": None}


def test_extra_data_func_and_child_versions_count() -> None:
    registry = build()
    machine_list = registry.newest("MachineList")
    plain = obj_fingerprint(machine_list)
    assert obj_fingerprint(machine_list, lambda cls: "more") != plain
    machine_list.child_versions = {"1.0": "1.0", "1.1": "1.1"}  # type: ignore[misc]
    assert obj_fingerprint(machine_list) != plain


def test_load_expected_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="name -> fingerprint"):
        load_expected(bad)


# -- podium objects versions ---------------------------------------------------------


@pytest.fixture
def objects_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "podium_cli_sample_objects"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from podium.objects import VersionedObject, VersionedObjectRegistry, fields

            @VersionedObjectRegistry.register
            class PodiumCliSampleWidget(VersionedObject):
                VERSION = "2.3"
                fields = {"size": fields.IntegerField()}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with isolated_default_registry():
        yield name
    sys.modules.pop(name, None)


def test_cli_prints_the_table(objects_module: str) -> None:
    result = CliRunner().invoke(podium_cli, ["objects", "versions", "--module", objects_module])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("PodiumCliSampleWidget"))
    assert line.split()[1].startswith("2.3-")
    json_result = CliRunner().invoke(
        podium_cli, ["objects", "versions", "-m", objects_module, "--json"]
    )
    table = json.loads(json_result.output)
    assert table["PodiumCliSampleWidget"] == line.split()[1]


def test_cli_check_passes_and_fails(objects_module: str, tmp_path: Path) -> None:
    runner = CliRunner()
    table = json.loads(
        runner.invoke(podium_cli, ["objects", "versions", "-m", objects_module, "--json"]).output
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps(table))
    ok = runner.invoke(podium_cli, ["objects", "versions", "--check", str(good)])
    assert ok.exit_code == 0 and "match" in ok.output
    table["PodiumCliSampleWidget"] = "2.3-0000"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(table))
    failed = runner.invoke(podium_cli, ["objects", "versions", "--check", str(bad)])
    assert failed.exit_code == 1
    assert "PodiumCliSampleWidget changed but VERSION did not" in failed.output


def test_cli_reports_an_unimportable_module() -> None:
    result = CliRunner().invoke(podium_cli, ["objects", "versions", "-m", "no_such_module_xyz"])
    assert result.exit_code != 0
    assert "--module no_such_module_xyz: cannot import it" in result.output


# -- the curated public API ----------------------------------------------------------


def test_public_exports_are_sorted_and_complete() -> None:
    exported = podium.objects.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(podium.objects, name), name
    public = {
        name
        for name, value in vars(podium.objects).items()
        if (not name.startswith("_") and not isinstance(value, type(podium))) or name == "fields"
    }
    assert public == set(exported)
    for required in (
        "VersionedObject",
        "VersionedObjectRegistry",
        "fields",
        "remotable",
        "remotable_classmethod",
        "ObjectListBase",
        "VersionedObjectSerializer",
        "IndirectionAPI",
        "obj_tree_get_versions",
    ):
        assert required in exported
