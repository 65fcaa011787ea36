"""The API's request and response bodies: what the OpenAPI document is generated from.

Only pydantic here (no object, no database import), so a client may read the
shapes without the server stack. Shapes follow Nova's compute API where it has
one (``{"server": {...}}`` envelopes, ``flavorRef``, ``os-stop``); every
request model forbids unknown keys, so a misspelt field is a 400, not ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

# Printable, no leading/trailing blanks (Nova's rule for names); the DB column
# holds 255. ``\S`` at both ends also refuses an all-blank name.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^\S(?:[^\x00-\x1f\x7f]*\S)?$"),
]
MetadataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
MetadataValue = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
MAX_METADATA_ITEMS = 128


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: int = Field(description="The HTTP status code, repeated")
    message: str = Field(description="What went wrong, for a person")


class ErrorBody(BaseModel):
    """The body of every failure, whatever its status."""

    error: ErrorDetail


# -- flavors -------------------------------------------------------------------


class FlavorView(BaseModel):
    id: str = Field(description="The flavor's id (what flavorRef names)")
    name: str
    vcpus: int
    ram: int = Field(description="Memory in MiB")
    disk: int = Field(description="Root disk in GiB")
    is_public: bool
    description: str | None = None


class FlavorBody(BaseModel):
    flavor: FlavorView


class FlavorListBody(BaseModel):
    flavors: list[FlavorView]


# -- servers -------------------------------------------------------------------


class ServerCreate(Request):
    name: Name
    flavorRef: Reference = Field(description="The id of a flavor")  # Nova's name
    imageRef: Reference | None = None  # Nova's name
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=MAX_METADATA_ITEMS
    )
    key_name: Name | None = Field(default=None, description="The key pair to inject, by name")


class ServerCreateRequest(Request):
    server: ServerCreate


class ServerFlavor(BaseModel):
    """The flavor as it was when the server was created (a later change does not alter it)."""

    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


class ServerFault(BaseModel):
    code: int
    message: str
    created: datetime | None = None
    details: str | None = Field(default=None, description="Admins only")


ServerStatus = Literal[
    "BUILD",
    "ACTIVE",
    "PAUSED",
    "SHUTOFF",
    "REBOOT",
    "ERROR",
    "DELETED",
    "UNKNOWN",
]


class ServerView(BaseModel):
    id: str
    name: str | None
    status: ServerStatus = Field(description="Nova's status, from vm_state and task_state")
    vm_state: str | None
    task_state: str | None
    power_state: int
    tenant_id: str | None
    user_id: str | None
    host: str | None = Field(default=None, description="Admins only")
    flavor: ServerFlavor | None
    image: str | None
    metadata: dict[str, str | None]
    key_name: str | None = None
    fault: ServerFault | None = Field(default=None, description="When in ERROR")
    guest_status: str | None
    created: datetime | None
    updated: datetime | None
    launched_at: datetime | None
    terminated_at: datetime | None


class ServerBody(BaseModel):
    server: ServerView


class Link(BaseModel):
    rel: str
    href: str


class ServerListBody(BaseModel):
    servers: list[ServerView]
    servers_links: list[Link] = Field(
        default_factory=list, description="A 'next' link when the page is full"
    )


class RebootSpec(Request):
    type: Literal["SOFT", "HARD"] = "SOFT"


# Each action is its own body, as Nova has them: ``{"pause": null}``...
class PauseAction(Request):
    pause: None


class UnpauseAction(Request):
    unpause: None


class StopAction(Request):
    os_stop: None = Field(alias="os-stop")


class StartAction(Request):
    os_start: None = Field(alias="os-start")


class RebootAction(Request):
    reboot: RebootSpec


class ConsoleOutputSpec(Request):
    length: int | None = Field(default=None, ge=1, description="The last lines only")


class ConsoleOutputAction(Request):
    get_console_output: ConsoleOutputSpec = Field(alias="os-getConsoleOutput")


class ConsoleOutputBody(BaseModel):
    output: str


ACTIONS = ("pause", "unpause", "os-stop", "os-start", "reboot", "os-getConsoleOutput")


def _action_name(value: Any) -> str | None:
    """The tag of an action body: its one key (a body with more or fewer names no action)."""
    if isinstance(value, dict) and len(value) == 1:
        name = next(iter(value))
        return name if name in ACTIONS else None
    if isinstance(value, Request):
        return _ACTION_OF_MODEL.get(type(value))
    return None


_ACTION_OF_MODEL: dict[type[Request], str] = {
    PauseAction: "pause",
    UnpauseAction: "unpause",
    StopAction: "os-stop",
    StartAction: "os-start",
    RebootAction: "reboot",
    ConsoleOutputAction: "os-getConsoleOutput",
}

# Tagged by the body's one key, so a wrong body gets one message naming the
# actions instead of one error per union member.
ServerAction = Annotated[
    Annotated[PauseAction, Tag("pause")]
    | Annotated[UnpauseAction, Tag("unpause")]
    | Annotated[StopAction, Tag("os-stop")]
    | Annotated[StartAction, Tag("os-start")]
    | Annotated[RebootAction, Tag("reboot")]
    | Annotated[ConsoleOutputAction, Tag("os-getConsoleOutput")],
    Discriminator(
        _action_name,
        custom_error_type="invalid_action",
        custom_error_message="the body must be one action: " + ", ".join(ACTIONS),
    ),
]


# -- services and hypervisors --------------------------------------------------


class ServiceView(BaseModel):
    id: int
    binary: str
    host: str
    topic: str | None
    status: Literal["enabled", "disabled"]
    state: Literal["up", "down"]
    disabled_reason: str | None
    forced_down: bool
    report_count: int
    last_seen_up: datetime | None
    version: int
    updated_at: datetime | None


class ServiceBody(BaseModel):
    service: ServiceView


class ServiceListBody(BaseModel):
    services: list[ServiceView]


class ServiceUpdate(Request):
    status: Literal["enabled", "disabled"] | None = None
    disabled_reason: MetadataValue | None = Field(
        default=None, description="Only with status disabled"
    )
    forced_down: bool | None = Field(
        default=None,
        description="Down whatever its heartbeats say, until set false again: the scheduler "
        "skips its host, and upgrade levels at auto stop waiting for it",
    )

    @model_validator(mode="after")
    def _says_something(self) -> ServiceUpdate:
        if self.disabled_reason is not None and self.status != "disabled":
            raise ValueError("disabled_reason goes only with status 'disabled'")
        if self.status is None and self.forced_down is None:
            raise ValueError("give status, forced_down or both")
        return self


class HypervisorView(BaseModel):
    id: int
    hypervisor_hostname: str | None
    host: str
    state: Literal["up", "down"] = Field(description="Of the compute service on the host")
    status: Literal["enabled", "disabled"]
    vcpus: int
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int
    local_gb: int
    local_gb_used: int


class HypervisorListBody(BaseModel):
    hypervisors: list[HypervisorView]
