"""The oslo side of the conductor benchmark: oslo.versionedobjects + oslo.messaging.

A minimal conductor in Nova's shape (``object_action`` clones, dispatches,
diffs, returns ``(updates, result)``), an ``Instance`` with the same fields as
podium's (its ``flavor`` and ``fault`` nested objects with the same fields as
podium's ``Flavor`` and ``InstanceFault``), and a ``save`` that calls the very
same DB function podium's does, so the two stacks differ only in their object
and messaging layers.

    python _oslo_conductor.py TRANSPORT_URL DATABASE_URL TOPIC   # runs a server
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields as ovo_fields

from podium.cloud import db as db_api
from podium.cloud.objects import Flavor as PodiumFlavor
from podium.cloud.objects import Instance as PodiumInstance
from podium.cloud.objects import InstanceFault as PodiumInstanceFault
from podium.context import RequestContext
from podium.db import Database

_FIELD_MAP = {
    "Integer": ovo_fields.IntegerField,
    "NonNegativeInteger": ovo_fields.NonNegativeIntegerField,
    "String": ovo_fields.StringField,
    "UUID": ovo_fields.UUIDField,
    "DateTime": ovo_fields.DateTimeField,
    "Boolean": ovo_fields.BooleanField,
}
#: podium's nested object names -> the oslo classes below that mirror them.
_OBJECT_MAP = {"Flavor": "BenchFlavor", "InstanceFault": "BenchInstanceFault"}
DATABASE: Database | None = None


def _ovo_fields(podium_cls: Any) -> dict[str, Any]:
    """oslo fields mirroring a podium object's, field for field (same names, kinds, nullability)."""
    out: dict[str, Any] = {}
    for name, field in podium_cls.fields.items():
        kind = type(field.field_type).__name__
        if kind in _FIELD_MAP:
            out[name] = _FIELD_MAP[kind](nullable=field.nullable)
        elif kind == "Object":
            objname = _OBJECT_MAP[field.field_type._obj_name]
            out[name] = ovo_fields.ObjectField(objname, nullable=field.nullable)
        elif type(field).__name__ == "DictOfNullableStringsField":
            out[name] = ovo_fields.DictOfNullableStringsField(nullable=field.nullable)
        else:
            raise TypeError(f"{podium_cls.__name__}.{name}: no oslo twin for a {kind} field")
    return out


class ContextSerializer(ovo_base.VersionedObjectSerializer):
    def serialize_context(self, context: Any) -> dict[str, Any]:
        return context.to_dict()  # type: ignore[no-any-return]

    def deserialize_context(self, context: dict[str, Any]) -> RequestContext:
        return RequestContext.from_dict(context)


@ovo_base.VersionedObjectRegistry.register
class BenchFlavor(ovo_base.VersionedObject):
    VERSION = "1.0"
    fields = _ovo_fields(PodiumFlavor)


@ovo_base.VersionedObjectRegistry.register
class BenchInstanceFault(ovo_base.VersionedObject):
    VERSION = "1.0"
    fields = _ovo_fields(PodiumInstanceFault)


@ovo_base.VersionedObjectRegistry.register
class BenchInstance(ovo_base.VersionedObject):
    VERSION = "1.2"
    fields = _ovo_fields(PodiumInstance)

    @ovo_base.remotable
    def save(self) -> None:
        assert DATABASE is not None
        changes = self.obj_get_changes()
        values = {("metadata_" if k == "metadata" else k): v for k, v in changes.items()}
        row = db_api.instance_update(DATABASE, self._context, self.uuid, values)
        for name in ("updated_at", "task_state"):
            setattr(self, name, getattr(row, name))
        self.obj_reset_changes()


class OsloConductorAPI:
    def __init__(self, transport: Any, topic: str) -> None:
        target = messaging.Target(topic=topic, version="1.0")
        self._client = messaging.get_rpc_client(
            transport, target, serializer=ContextSerializer(), timeout=30
        )

    def object_action(
        self, context: Any, objinst: Any, objmethod: str, args: Any, kwargs: Any
    ) -> Any:
        return self._client.call(
            context,
            "object_action",
            objinst=objinst,
            objmethod=objmethod,
            args=args,
            kwargs=kwargs,
        )


class OsloConductorManager:
    target = messaging.Target(version="1.0")

    def object_action(
        self, context: Any, objinst: Any, objmethod: str, args: Any, kwargs: Any
    ) -> Any:
        oldobj = objinst.obj_clone()
        result = getattr(objinst, objmethod)(*args, **kwargs)
        updates = {}
        for name, field in objinst.fields.items():
            if not objinst.obj_attr_is_set(name):
                continue
            if not oldobj.obj_attr_is_set(name) or getattr(oldobj, name) != getattr(objinst, name):
                updates[name] = field.to_primitive(objinst, name, getattr(objinst, name))
        updates["obj_what_changed"] = objinst.obj_what_changed()
        return updates, result


def oslo_transport(url: str) -> Any:
    # The global CONF, as oslo services use: oslo.messaging registers some of
    # its options (tracing) there only.
    conf = cfg.CONF
    conf([], project="podium-bench")
    transport = messaging.get_rpc_transport(conf, url=url)
    # podium declares the shared exchange durable (casts survive a broker
    # restart); oslo must be configured the same to share the broker.
    conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    return transport


def serve(transport_url: str, database_url: str, topic: str) -> None:
    global DATABASE
    DATABASE = Database(database_url, pool_size=16)
    transport = oslo_transport(transport_url)
    server = messaging.get_rpc_server(
        transport,
        messaging.Target(topic=topic, server="oslo-conductor"),
        [OsloConductorManager()],
        executor="threading",
        serializer=ContextSerializer(),
    )
    server.start()
    print("oslo-conductor ready", flush=True)
    stop = threading.Event()
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    finally:
        stop.set()
        server.stop()
        server.wait()


if __name__ == "__main__":
    serve(*sys.argv[1:4])
