"""Issue 17, gaps 3 to 5: list base order, oslo's version checker and IndirectionFixture.

Each oslo behaviour is checked against oslo.versionedobjects itself, on a
small object model built twice (once per library) with the same fields.
"""

from __future__ import annotations

import datetime
import inspect
import subprocess
import sys
import unittest
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    # oslo imports eventlet, whose import-time deprecation warning is an error here.
    warnings.simplefilter("ignore")
    from oslo_versionedobjects import base as obase
    from oslo_versionedobjects import fields as ofields

from podium.objects import (
    ObjectListBase,
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    remotable,
)
from podium.objects.fixture import (
    FakeIndirectionAPI,
    ObjectVersionChecker,
    compare_obj,
    obj_fingerprint,
)

# -- gap 3: the list base order ------------------------------------------------


class Item(VersionedObject):
    fields = {"x": fields.IntegerField()}


def test_oslo_base_order_builds_a_working_list() -> None:
    # Tests are not type-checked; typed code would need an ignore here, as the
    # docstring of ObjectListBase says.
    class OsloOrder(VersionedObject, ObjectListBase[Item]):
        fields = {"objects": fields.ListOfObjectsField("Item")}

    class OsloOrderPlain(VersionedObject, ObjectListBase):  # type: ignore[type-arg]
        fields = {"objects": fields.ListOfObjectsField("Item")}

    class PodiumOrder(ObjectListBase[Item], VersionedObject):
        fields = {"objects": fields.ListOfObjectsField("Item")}

    for cls in (OsloOrder, OsloOrderPlain, PodiumOrder):
        assert issubclass(cls, ObjectListBase)
        assert cls.__mro__[1:3] == (ObjectListBase, VersionedObject)
        assert len(cls()) == 0  # unlike oslo's, where VersionedObject.__init__ shadows
        lst = cls(objects=[Item(x=1), Item(x=2)])
        assert [i.x for i in lst] == [1, 2]
        assert lst[1:].objects[0].x == 2
        assert Item(x=9) not in lst
    # The order changes nothing on the wire or in the fingerprint.
    assert (
        obj_fingerprint(OsloOrder).split("-")[1]
        == obj_fingerprint(PodiumOrder).split("-")[1]
        == obj_fingerprint(OsloOrderPlain).split("-")[1]
    )


def test_oslo_base_order_also_builds_in_oslo() -> None:
    class OItem(obase.VersionedObject):
        fields = {"x": ofields.IntegerField()}

    class OList(obase.VersionedObject, obase.ObjectListBase[OItem]):
        fields = {"objects": ofields.ListOfObjectsField("OItem")}

    assert len(OList(objects=[OItem(x=1)])) == 1


def test_other_order_errors_are_still_reported() -> None:
    class Base(VersionedObject):
        pass

    class Child(Base):
        pass

    with pytest.raises(TypeError, match="MRO"):
        type("Bad", (Base, Child), {})


# -- gap 4: ObjectVersionChecker ---------------------------------------------


def podium_model() -> tuple[VersionedObjectRegistry, dict[str, list[type[VersionedObject]]]]:
    registry = VersionedObjectRegistry()

    @registry.register
    class PortDisk(VersionedObject):
        VERSION = "1.2"
        fields = {"size": fields.IntegerField()}

    @registry.register
    class PortMachine(VersionedObject):
        VERSION = "1.1"
        fields = {
            "name": fields.StringField(),
            "disk": fields.ObjectField("PortDisk", nullable=True),
            "spare": fields.ObjectField("PortDisk", nullable=True),
        }
        obj_relationships = {"disk": [("1.0", "1.0"), ("1.1", "1.2")]}

    @registry.register
    class PortMachineList(ObjectListBase[Any], VersionedObject):
        fields = {"objects": fields.ListOfObjectsField("PortMachine")}
        child_versions = {"1.0": "1.1"}

    return registry, registry.obj_classes()


_OSLO: dict[str, list[type[obase.VersionedObject]]] = {}


def oslo_model() -> dict[str, list[type[obase.VersionedObject]]]:
    if _OSLO:
        return _OSLO

    # Registered in oslo's global registry (names unused elsewhere): oslo's
    # ObjectField reads it.
    @obase.VersionedObjectRegistry.register
    class PortDisk(obase.VersionedObject):
        VERSION = "1.2"
        fields = {"size": ofields.IntegerField()}

    @obase.VersionedObjectRegistry.register
    class PortMachine(obase.VersionedObject):
        VERSION = "1.1"
        fields = {
            "name": ofields.StringField(),
            "disk": ofields.ObjectField("PortDisk", nullable=True),
            "spare": ofields.ObjectField("PortDisk", nullable=True),
        }
        obj_relationships = {"disk": [("1.0", "1.0"), ("1.1", "1.2")]}

    @obase.VersionedObjectRegistry.register
    class PortMachineList(obase.ObjectListBase[Any], obase.VersionedObject):
        fields = {"objects": ofields.ListOfObjectsField("PortMachine")}
        child_versions = {"1.0": "1.1"}

    _OSLO.update({cls.obj_name(): [cls] for cls in (PortDisk, PortMachine, PortMachineList)})
    return _OSLO


@pytest.fixture
def ofixture() -> Any:
    pytest.importorskip("fixtures")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_versionedobjects import fixture
    return fixture


def test_checker_accepts_obj_classes_as_oslo_does() -> None:
    registry, classes = podium_model()
    by_registry = ObjectVersionChecker(registry).get_hashes()
    assert ObjectVersionChecker(obj_classes=classes).get_hashes() == by_registry
    assert ObjectVersionChecker(classes).get_hashes() == by_registry
    assert ObjectVersionChecker(registry=registry).get_hashes() == by_registry
    assert list(by_registry) == ["PortDisk", "PortMachine", "PortMachineList"]
    checker = ObjectVersionChecker(registry)
    assert set(checker.obj_classes) == set(classes)
    checker.obj_classes = {"PortDisk": classes["PortDisk"]}
    assert list(checker.get_hashes()) == ["PortDisk"]


def test_checker_reads_the_registry_live() -> None:
    registry, _ = podium_model()
    checker = ObjectVersionChecker(registry)

    @registry.register
    class Late(VersionedObject):
        pass

    assert "Late" in checker.get_hashes()


@pytest.mark.parametrize(
    "name",
    [
        "get_hashes",
        "test_hashes",
        "get_dependency_tree",
        "test_relationships",
        "test_compatibility_routines",
        "test_relationships_in_order",
        "_get_fingerprint",
    ],
)
def test_checker_signatures_match_oslo(ofixture: Any, name: str) -> None:
    ours = inspect.signature(getattr(ObjectVersionChecker, name)).parameters
    theirs = inspect.signature(getattr(ofixture.ObjectVersionChecker, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


def test_checker_init_and_compare_obj_signatures_match_oslo(ofixture: Any) -> None:
    ours = inspect.signature(ObjectVersionChecker).parameters
    theirs = inspect.signature(ofixture.ObjectVersionChecker).parameters
    assert list(ours)[: len(theirs)] == list(theirs)  # then podium's keyword-only registry
    ours = inspect.signature(compare_obj).parameters
    theirs = inspect.signature(ofixture.compare_obj).parameters
    assert [(p.name, p.default) for p in ours.values()] == [
        (p.name, p.default) for p in theirs.values()
    ]


def test_test_hashes_reports_as_oslo(ofixture: Any) -> None:
    registry, _ = podium_model()
    ours = ObjectVersionChecker(registry)
    theirs = ofixture.ObjectVersionChecker(oslo_model())
    assert (
        ours.test_hashes(ours.get_hashes()) == theirs.test_hashes(theirs.get_hashes()) == ({}, {})
    )

    def mangle(hashes: dict[str, str]) -> dict[str, str]:
        changed = dict(hashes, PortDisk="1.2-0", Gone="1.0-0")
        del changed["PortMachineList"]
        return changed

    ours_diff = ours.test_hashes(mangle(ours.get_hashes()))
    theirs_diff = theirs.test_hashes(mangle(theirs.get_hashes()))

    def shape(diff: tuple[dict[str, str | None], ...]) -> list[dict[str, bool]]:
        return [{name: value is None for name, value in side.items()} for side in diff]

    assert shape(ours_diff) == shape(theirs_diff)
    assert ours_diff[0]["PortDisk"] == theirs_diff[0]["PortDisk"] == "1.2-0"


def test_extra_data_func_changes_the_hash(ofixture: Any) -> None:
    registry, _ = podium_model()
    plain = ObjectVersionChecker(registry).get_hashes()
    extra = ObjectVersionChecker(registry).get_hashes(lambda cls: (cls.obj_name(),))
    assert plain.keys() == extra.keys()
    assert all(plain[n] != extra[n] and plain[n][:4] == extra[n][:4] for n in plain)


def test_dependency_tree_and_relationships_as_oslo(ofixture: Any) -> None:
    registry, _ = podium_model()
    ours = ObjectVersionChecker(registry)
    theirs = ofixture.ObjectVersionChecker(oslo_model())
    tree = ours.get_dependency_tree()
    assert tree == theirs.get_dependency_tree() == {"PortMachine": {"PortDisk": "1.2"}}
    assert ours.test_relationships(tree) == theirs.test_relationships(tree) == ({}, {})
    for expected in (
        {"PortMachine": {"PortDisk": "1.1"}},
        {"PortMachine": {"PortDisk": "1.2"}, "Gone": {"PortDisk": "1.0"}},
        {},
    ):
        assert ours.test_relationships(expected) == theirs.test_relationships(expected)


def test_compatibility_routines_as_oslo(ofixture: Any) -> None:
    registry, _ = podium_model()
    theirs_classes = oslo_model()
    for use_manifest in (False, True):
        ObjectVersionChecker(registry).test_compatibility_routines(use_manifest=use_manifest)
    ofixture.ObjectVersionChecker(theirs_classes).test_compatibility_routines()

    seen: list[tuple[str, dict[str, Any]]] = []

    class Broken(VersionedObject):
        VERSION = "1.3"
        fields = {"n": fields.IntegerField(nullable=True)}

        def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
            seen.append((target_version, dict(self.__dict__)))
            if target_version == "1.1":
                raise ValueError("cannot")

    checker = ObjectVersionChecker(obj_classes={"Broken": [Broken]})
    with pytest.raises(ValueError, match="cannot"):
        checker.test_compatibility_routines(init_kwargs={Broken: {"n": 5}})
    # 1.3 is the current version: no backport, as in oslo.
    assert [(v, d.get("n")) for v, d in seen] == [("1.0", 5), ("1.1", 5)]


def test_relationships_in_order_as_oslo(ofixture: Any) -> None:
    class Bad(VersionedObject):
        obj_relationships = {"disk": [("1.1", "1.0"), ("1.0", "1.1")]}

    class OBad(obase.VersionedObject):
        obj_relationships = {"disk": [("1.1", "1.0"), ("1.0", "1.1")]}

    with pytest.raises(AssertionError) as ours:
        ObjectVersionChecker(obj_classes={"Bad": [Bad]}).test_relationships_in_order()
    with pytest.raises(AssertionError) as theirs:
        ofixture.ObjectVersionChecker({"Bad": [OBad]}).test_relationships_in_order()
    assert str(ours.value) == str(theirs.value).replace("OBad", "Bad")
    registry, _ = podium_model()
    ObjectVersionChecker(registry).test_relationships_in_order()


# -- compare_obj ---------------------------------------------------------------


class Row(VersionedObject):
    fields = {
        "id": fields.IntegerField(),
        "name": fields.StringField(nullable=True),
        "when": fields.DateTimeField(nullable=True),
    }


@obase.VersionedObjectRegistry.register  # oslo makes the field properties here
class ORow(obase.VersionedObject):
    fields = {
        "id": ofields.IntegerField(),
        "name": ofields.StringField(nullable=True),
        "when": ofields.DateTimeField(nullable=True),
    }


_WHEN = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("values", "db", "kwargs"),
    [
        ({"id": 1, "name": "a"}, {"id": 1, "name": "a"}, {}),
        ({"id": 1, "name": "a"}, {"id": 2, "name": "a"}, {}),
        ({"id": 1}, {"id": 1, "name": "a"}, {}),
        ({"id": 1, "name": "a"}, {"id": 1}, {}),
        ({"id": 1, "name": "a"}, {"id": 1}, {"allow_missing": ["name"]}),
        ({"id": 1}, {"id": 1, "name": "a"}, {"allow_missing": ["name"]}),
        ({"id": 1, "name": "a"}, {"ident": 1, "name": "a"}, {"subs": {"id": "ident"}}),
        ({"id": 1, "when": _WHEN}, {"id": 1, "when": _WHEN.replace(tzinfo=None)}, {}),
        ({"id": 1, "name": "a"}, {"id": 1, "name": "A"}, {"comparators": {"name": "lower"}}),
    ],
)
def test_compare_obj_as_oslo(
    ofixture: Any, values: dict[str, Any], db: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    case = unittest.TestCase()
    if "comparators" in kwargs:

        def lower(db_val: Any, obj_val: Any) -> None:
            case.assertEqual(db_val.lower(), obj_val.lower())

        kwargs = {"comparators": {"name": lower}}

    def outcome(compare: Any, obj: Any, test: Any) -> str:
        try:
            compare(test, obj, db, **kwargs)
        except AssertionError as exc:
            return f"fails: {str(exc).split(' (db_key')[0]}"
        return "equal"

    theirs = outcome(ofixture.compare_obj, ORow(**values), case)
    assert outcome(compare_obj, Row(**values), case) == theirs
    # The pytest form: the same verdict (its own message for a differing value).
    assert outcome(compare_obj, Row(**values), None).split(":")[0] == theirs.split(":")[0]


def test_compare_obj_compares_datetimes_of_the_row(ofixture: Any) -> None:
    later = {"id": 1, "when": _WHEN.replace(year=2025)}
    case = unittest.TestCase()
    # oslo compares the object's datetime with itself (a slip): any two match.
    ofixture.compare_obj(case, ORow(id=1, when=_WHEN), later)
    with pytest.raises(AssertionError):
        compare_obj(case, Row(id=1, when=_WHEN), later)


# -- gap 5: IndirectionFixture -------------------------------------------------


class Counter(VersionedObject):
    fields = {"n": fields.IntegerField()}

    @remotable
    def bump(self, context: Any = None) -> int:
        self.n += 1
        return int(self.n)


def test_indirection_fixture_takes_no_argument() -> None:
    fixtures = pytest.importorskip("fixtures")
    from podium.objects.fixture import IndirectionFixture

    registry = VersionedObjectRegistry()
    registry.register(Counter)
    assert issubclass(IndirectionFixture, fixtures.Fixture)
    assert IndirectionFixture.__qualname__ == "IndirectionFixture"
    fixture = IndirectionFixture()
    assert isinstance(fixture.indirection_api, FakeIndirectionAPI)
    fixture.indirection_api = FakeIndirectionAPI(registry, registry)
    assert "indirection_api" in VersionedObject.__dict__
    with fixture:
        assert VersionedObject.indirection_api is fixture.indirection_api
        counter = Counter({"user": "u"}, n=1)
        assert counter.bump() == 2
        assert counter.n == 2
    assert fixture.indirection_api.calls == [("object_action", "bump")]
    assert VersionedObject.indirection_api is None


def test_indirection_fixture_in_a_testtools_style_test() -> None:
    fixtures = pytest.importorskip("fixtures")
    from podium.objects.fixture import IndirectionFixture

    api = FakeIndirectionAPI()

    class Case(fixtures.TestWithFixtures):  # type: ignore[misc]
        def test_it(self) -> None:
            self.useFixture(IndirectionFixture(api, target=Counter))
            assert Counter.indirection_api is api

    result = unittest.TestResult()
    Case("test_it").run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert "indirection_api" not in Counter.__dict__


def test_the_module_imports_without_the_fixtures_library() -> None:
    code = (
        "import sys; sys.modules['fixtures'] = None\n"
        "import podium.objects.fixture as f\n"
        "assert 'IndirectionFixture' not in f.__all__\n"
        "try:\n"
        "    f.IndirectionFixture\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "needs the 'fixtures' library" in out
    with pytest.raises(AttributeError):
        import podium.objects.fixture as module

        module.NoSuchThing  # noqa: B018


# -- oslo's other fixture names ----------------------------------------------------


def test_object_hash_mismatch_reads_as_oslos() -> None:
    from oslo_versionedobjects import fixture as ofixture

    from podium.objects.fixture import ObjectHashMismatch

    ours = ObjectHashMismatch({"Widget": "1.0-a"}, {"Widget": "1.0-b"})
    theirs = ofixture.ObjectHashMismatch({"Widget": "1.0-a"}, {"Widget": "1.0-b"})
    assert str(ours) == str(theirs) == "Hashes have changed for Widget"
    assert (ours.expected, ours.actual) == (theirs.expected, theirs.actual)
    assert isinstance(ours, AssertionError)


def _plain(self: Any, context: Any, a: int, b: str = "x", *rest: Any, **more: Any) -> None: ...


def _keyword_only(self: Any, *, flag: bool = False) -> None: ...


def _annotated(self: Any, count: int) -> str:
    return str(count)


@pytest.mark.parametrize("func", [_plain, _keyword_only, _annotated])
def test_get_method_spec_is_oslos(func: Any) -> None:
    from oslo_versionedobjects import fixture as ofixture

    from podium.objects.fixture import ArgSpec, CompatArgSpec, get_method_spec

    ours, theirs = get_method_spec(func), ofixture.get_method_spec(func)
    assert tuple(ours) == tuple(theirs)
    assert type(ours).__name__ == type(theirs).__name__
    assert CompatArgSpec is ArgSpec


def test_registry_fixture_forgets_what_the_test_registered() -> None:
    from podium.objects import default_registry
    from podium.objects import fixture as pfixture

    class Temporary(VersionedObject):
        fields = {"x": fields.IntegerField()}

    known_before = set(default_registry().obj_classes())
    with pfixture.VersionedObjectRegistryFixture() as fix:
        fix.register(Temporary)
        assert "Temporary" in default_registry()
        # What was there before is still readable during the test.
        assert known_before <= set(default_registry().obj_classes())
    assert "Temporary" not in default_registry()
    assert set(default_registry().obj_classes()) == known_before


def test_stable_json_fixture_sorts_changes_as_oslos() -> None:
    from podium.objects import fixture as pfixture

    class Unsorted(VersionedObject):
        fields = {"zeta": fields.IntegerField(), "alpha": fields.IntegerField()}

    obj = Unsorted(zeta=1, alpha=2)
    assert obj.obj_to_primitive()["podium_object.changes"] == ["zeta", "alpha"]
    with pfixture.StableObjectJsonFixture():
        assert obj.obj_to_primitive()["podium_object.changes"] == ["alpha", "zeta"]
    assert obj.obj_to_primitive()["podium_object.changes"] == ["zeta", "alpha"]
