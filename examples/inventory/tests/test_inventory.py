"""The inventory service's tests, on podium's testing kit (its pytest plugin is loaded
by pytest itself): a conductor in the test process, the test playing a worker."""

from __future__ import annotations

import pytest
from inventory.conductor import StocktakeAPI
from inventory.objects import Item, OutOfStock

from podium.conductor import ConductorAPI
from podium.context import RequestContext
from podium.exceptions import NotFound
from podium.rpc import Transport

CTX = RequestContext(user_id="clerk", project_id="shop")


def test_an_item_is_stored_by_the_conductor_and_read_back(podium_conductor: ConductorAPI) -> None:
    Item(CTX, sku="bolt-m6", stock=40).create()
    item = Item.get_by_sku(CTX, "bolt-m6")
    assert (item.sku, item.stock) == ("bolt-m6", 40)
    assert item.id > 0


def test_reserving_takes_stock_until_there_is_none_left(podium_conductor: ConductorAPI) -> None:
    Item(CTX, sku="nut-m6", stock=5).create()
    item = Item.get_by_sku(CTX, "nut-m6")
    item.reserve(3)
    assert item.stock == 2
    assert not item.obj_what_changed()
    # The application's own error reaches the worker as itself.
    with pytest.raises(OutOfStock, match="only 2 of nut-m6 left, 4 wanted"):
        item.reserve(4)
    assert Item.get_by_sku(CTX, "nut-m6").stock == 2


def test_a_missing_item_is_not_found(podium_conductor: ConductorAPI) -> None:
    with pytest.raises(NotFound, match="no item 'washer'"):
        Item.get_by_sku(CTX, "washer")


def test_the_conductor_endpoint_answers_from_the_database(
    podium_conductor: ConductorAPI, podium_transport: Transport
) -> None:
    for sku, stock in [("a", 1), ("b", 2), ("c", 3)]:
        Item(CTX, sku=sku, stock=stock).create()
    assert StocktakeAPI(podium_transport, timeout=10).total_stock(CTX) == 6
