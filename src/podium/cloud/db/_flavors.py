"""Flavors: the sizes an instance is built in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.cloud.models import Flavor
from podium.context import RequestContext
from podium.db import Database
from podium.db.api import create, get, soft_delete
from podium.db.query import model_query


def flavor_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Flavor:
    return create(db, Flavor, values)


def flavor_get_by_flavor_id(db: Database, context: RequestContext, flavorid: str) -> Flavor:
    return get(db, context, Flavor, flavorid=flavorid)


def flavor_get_all(db: Database, context: RequestContext) -> list[Flavor]:
    query = model_query(Flavor, context).order_by(Flavor.memory_mb, Flavor.flavorid)
    return db.run(lambda session: list(session.scalars(query)))


def flavor_destroy(db: Database, context: RequestContext, flavorid: str) -> Flavor:
    return db.run(lambda session: soft_delete(session, Flavor, flavorid=flavorid))
