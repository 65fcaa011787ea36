"""podium.objects vs oslo.versionedobjects: primitive round trips, same process.

    python bench/run.py objects

Measures ``obj_to_primitive`` + ``obj_from_primitive`` (and the same with a
JSON encode/decode in between) for a 10-field object (ints, strings, a
datetime, a uuid, a list of strings, a nested object) and for a list object
holding 100 of them. Each side uses the JSON codec it ships with on the wire:
orjson for podium, the stdlib ``json`` (what oslo.serialization's jsonutils
wraps) for oslo; the "same codec" row gives podium with the stdlib too.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import orjson

from podium.objects import ObjectListBase, VersionedObject, VersionedObjectRegistry
from podium.objects import fields as pf

ROUNDS_SECONDS = 0.25


def _podium_classes() -> tuple[type[VersionedObject], type[VersionedObject], Any]:
    registry = VersionedObjectRegistry()

    @registry.register
    class BenchFlavor(VersionedObject):
        fields = {"flavorid": pf.IntegerField(), "name": pf.StringField()}

    @registry.register
    class BenchInstance(VersionedObject):
        VERSION = "1.3"
        fields = {
            "id": pf.IntegerField(),
            "memory_mb": pf.IntegerField(),
            "vcpus": pf.IntegerField(),
            "hostname": pf.StringField(),
            "host": pf.StringField(nullable=True),
            "display_name": pf.StringField(),
            "created_at": pf.DateTimeField(),
            "uuid": pf.UUIDField(),
            "tags": pf.ListOfStringsField(),
            "flavor": pf.ObjectField("BenchFlavor"),
        }

    @registry.register
    class BenchInstanceList(ObjectListBase[Any]):
        fields = {"objects": pf.ListOfObjectsField("BenchInstance")}

    return BenchInstance, BenchInstanceList, BenchFlavor


def _oslo_classes() -> tuple[Any, Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_versionedobjects import base as obase
        from oslo_versionedobjects import fields as of

    @obase.VersionedObjectRegistry.register
    class BenchFlavor(obase.VersionedObject):
        fields = {"flavorid": of.IntegerField(), "name": of.StringField()}

    @obase.VersionedObjectRegistry.register
    class BenchInstance(obase.VersionedObject):
        VERSION = "1.3"
        fields = {
            "id": of.IntegerField(),
            "memory_mb": of.IntegerField(),
            "vcpus": of.IntegerField(),
            "hostname": of.StringField(),
            "host": of.StringField(nullable=True),
            "display_name": of.StringField(),
            "created_at": of.DateTimeField(),
            "uuid": of.UUIDField(),
            "tags": of.ListOfStringsField(),
            "flavor": of.ObjectField("BenchFlavor"),
        }

    @obase.VersionedObjectRegistry.register
    class BenchInstanceList(obase.ObjectListBase, obase.VersionedObject):
        fields = {"objects": of.ListOfObjectsField("BenchInstance")}

    return BenchInstance, BenchInstanceList, BenchFlavor


def _values(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "memory_mb": 2048,
        "vcpus": 2,
        "hostname": f"vm-{i}",
        "host": "compute-1",
        "display_name": f"server {i}",
        # Whole seconds: oslo's wire format drops microseconds.
        "created_at": datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=datetime.UTC),
        "uuid": str(uuid.UUID(int=i + 1)),
        "tags": ["web", "prod", "eu"],
    }


def _build(instance_cls: Any, list_cls: Any, flavor_cls: Any) -> tuple[Any, Any]:
    def one(i: int) -> Any:
        obj = instance_cls(**_values(i))
        obj.flavor = flavor_cls(flavorid=1, name="m1.small")
        return obj

    return one(0), list_cls(objects=[one(i) for i in range(100)])


def _rate(func: Callable[[], Any]) -> float:
    func()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= ROUNDS_SECONDS:
            return n / elapsed
        n *= 2 if elapsed < ROUNDS_SECONDS / 4 else 1
        n = max(n, int(n * ROUNDS_SECONDS / max(elapsed, 1e-6)))


def _cases() -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    p_inst, p_list, p_flavor = _podium_classes()
    o_inst, o_list, o_flavor = _oslo_classes()
    p_one, p_many = _build(p_inst, p_list, p_flavor)
    o_one, o_many = _build(o_inst, o_list, o_flavor)
    p_base: Any = p_inst
    o_base: Any = o_inst
    assert p_base.obj_from_primitive(p_one.obj_to_primitive()).flavor.name == "m1.small"
    assert o_base.obj_from_primitive(o_one.obj_to_primitive()).flavor.name == "m1.small"

    def p_plain(obj: Any) -> Callable[[], Any]:
        return lambda: p_base.obj_from_primitive(obj.obj_to_primitive())

    def o_plain(obj: Any) -> Callable[[], Any]:
        return lambda: o_base.obj_from_primitive(obj.obj_to_primitive())

    def p_orjson(obj: Any) -> Callable[[], Any]:
        return lambda: p_base.obj_from_primitive(orjson.loads(orjson.dumps(obj.obj_to_primitive())))

    def p_json(obj: Any) -> Callable[[], Any]:
        return lambda: p_base.obj_from_primitive(json.loads(json.dumps(obj.obj_to_primitive())))

    def o_json(obj: Any) -> Callable[[], Any]:
        return lambda: o_base.obj_from_primitive(json.loads(json.dumps(obj.obj_to_primitive())))

    return [
        ("1 object, to+from primitive", p_plain(p_one), o_plain(o_one)),
        ("1 object, +JSON (orjson vs json)", p_orjson(p_one), o_json(o_one)),
        ("1 object, +JSON (json both)", p_json(p_one), o_json(o_one)),
        ("list of 100, to+from primitive", p_plain(p_many), o_plain(o_many)),
        ("list of 100, +JSON (orjson vs json)", p_orjson(p_many), o_json(o_many)),
        ("list of 100, +JSON (json both)", p_json(p_many), o_json(o_many)),
    ]


def main() -> None:
    print(f"{'case':<38} {'podium ops/s':>14} {'oslo ops/s':>12} {'ratio':>7}")
    print("(best of 3 alternating runs each; the machine may be shared)")
    for label, podium, oslo in _cases():
        p_rate = o_rate = 0.0
        for _ in range(3):
            p_rate = max(p_rate, _rate(podium))
            o_rate = max(o_rate, _rate(oslo))
        print(f"{label:<38} {p_rate:>14,.0f} {o_rate:>12,.0f} {p_rate / o_rate:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
