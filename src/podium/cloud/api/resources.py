"""Flavors, and for admins the services and the hypervisors."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from podium.cloud.api import views
from podium.cloud.api.deps import PRINTABLE, Admin, State, User, find_flavor
from podium.cloud.api.errors import ApiError, documented
from podium.cloud.api.schemas import (
    FlavorBody,
    FlavorListBody,
    HypervisorListBody,
    ServiceBody,
    ServiceListBody,
    ServiceUpdate,
)
from podium.cloud.objects import ComputeNodeList, FlavorList, Service, ServiceList
from podium.cloud.rpcapi import COMPUTE_TOPIC
from podium.exceptions import NotFound

router = APIRouter()


# -- flavors ---------------------------------------------------------------


@router.get("/flavors", tags=["flavors"])
def get_flavors(context: User) -> FlavorListBody:
    flavors = FlavorList.get_all(context)
    return FlavorListBody(
        flavors=[
            views.flavor_view(flavor) for flavor in flavors if flavor.is_public or context.is_admin
        ]
    )


@router.get("/flavors/{flavor_id}", tags=["flavors"], responses=documented(404))
def get_flavor(
    flavor_id: Annotated[str, Path(max_length=255, pattern=PRINTABLE)], context: User
) -> FlavorBody:
    return FlavorBody(flavor=views.flavor_view(find_flavor(context, flavor_id, 404)))


# -- services and hypervisors (admins) -------------------------------------


@router.get("/os-services", tags=["admin"], responses=documented(403))
def get_services(
    context: Admin,
    state: State,
    binary: Annotated[str | None, Query(max_length=255, pattern=PRINTABLE)] = None,
) -> ServiceListBody:
    services = ServiceList.get_all(context, binary=binary)
    return ServiceListBody(
        services=[views.service_view(s, state.config.service_down_time) for s in services]
    )


@router.put("/os-services/{service_id}", tags=["admin"], responses=documented(403, 404, 413))
def update_service(
    service_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ServiceUpdate,
    context: Admin,
    state: State,
) -> ServiceBody:
    try:
        service = Service.get_by_id(context, service_id)
    except NotFound:
        raise ApiError(404, f"Service {service_id} could not be found") from None
    if body.status is not None:
        service.disabled = body.status == "disabled"
        service.disabled_reason = body.disabled_reason if service.disabled else None
    if body.forced_down is not None:
        service.forced_down = body.forced_down
    service.save()
    return ServiceBody(service=views.service_view(service, state.config.service_down_time))


@router.get("/os-hypervisors", tags=["admin"], responses=documented(403))
def get_hypervisors(context: Admin, state: State) -> HypervisorListBody:
    nodes = ComputeNodeList.get_all(context)
    computes = {s.host: s for s in ServiceList.get_all(context) if s.topic == COMPUTE_TOPIC}
    return HypervisorListBody(
        hypervisors=[
            views.hypervisor_view(node, computes.get(node.host), state.config.service_down_time)
            for node in nodes
        ]
    )
