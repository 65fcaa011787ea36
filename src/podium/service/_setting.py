"""One setting of a service's configuration: how it is declared, read, checked and shown.

:func:`setting` declares a field of a :class:`~podium.service.config.ServiceConfig`
with its help, bounds, own check and secrecy; :func:`validate` reads a value
given by one source (:class:`Origin`) as the setting's type; :func:`written`
and :func:`show_value` write a value back for a message or a listing, secrets
masked.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field
from typing import Any, Literal

from podium._urls import mask_url

__all__ = ["Kind", "Origin", "setting", "show_value", "validate", "written"]

Kind = Literal["default", "file", "env", "flag"]


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from: ``kind`` and, but for a default, ``where``."""

    kind: Kind
    #: The file's path, the variable's name, or the flag (``--workers``).
    where: str = ""

    def __str__(self) -> str:
        return {
            "default": "default",
            "file": f"file {self.where}",
            "env": f"environment {self.where}",
            "flag": f"flag {self.where}",
        }[self.kind]


def setting(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | None = None,
    gt: float | None = None,
    ge: float | None = None,
    check: Callable[[Any], Any] | None = None,
    secret: Literal["url", "value"] | None = None,
) -> Any:
    """A setting's field: its help, bounds (``gt``/``ge``), own ``check`` and secrecy.

    ``check`` gets the typed value and returns it (maybe normalised), or
    raises ValueError with the reason; ``secret`` says how it is shown: a URL
    with its passwords masked, or not at all.
    """
    metadata = {"help": help, "gt": gt, "ge": ge, "check": check, "secret": secret}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def show_value(spec: Field[Any], value: Any) -> str:
    """``value`` of the setting ``spec`` for a message or a listing, secrets masked."""
    secret = spec.metadata.get("secret")
    if value is None or value == "":
        return ""
    if secret == "url" and isinstance(value, str):
        return mask_url(value)
    if secret == "value":
        # "@PATH" names the file that holds the secret; the path is no secret.
        return value if isinstance(value, str) and value.startswith("@") else "***"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{key}={entry}" for key, entry in value.items())
    return str(value)


def _table_from_text(value: str) -> dict[str, str]:
    """``KEY=VALUE,KEY=VALUE``: how a table setting is written in a variable or a flag."""
    table: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, entry = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item.strip()!r} is not KEY=VALUE (write KEY=VALUE,KEY=VALUE)")
        table[key.strip()] = entry.strip()
    return table


_REASONS = {
    "float_parsing": "not a number",
    "float_type": "not a number",
    "finite_number": "not a finite number",
    "int_parsing": "not a whole number",
    "int_type": "not a whole number",
    "int_from_float": "not a whole number",
    "bool_parsing": "not a boolean (true or false)",
    "bool_type": "not a boolean (true or false)",
    "string_type": "not a string",
}


def validate(spec: Field[Any], annotation: Any, value: Any, origin: Origin) -> Any:
    """``value`` as the setting's type, in its bounds, through its check; ValueError why not."""
    from typing import Annotated

    import pydantic

    if origin.kind in ("env", "flag") and isinstance(value, str):
        value = value.strip()
        if value == "" and type(None) in typing.get_args(annotation):
            value = None
        elif typing.get_origin(annotation) is dict:
            value = _table_from_text(value)
    bounds = {key: spec.metadata[key] for key in ("gt", "ge") if spec.metadata.get(key) is not None}
    if annotation is float:
        bounds["allow_inf_nan"] = False
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
        Annotated[annotation, pydantic.Field(**bounds)] if bounds else annotation
    )
    try:
        # A variable or a flag is text to be read as the setting's type; a
        # TOML value already has a type, and must have the right one.
        typed = adapter.validate_python(value, strict=origin.kind == "file")
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        kind = first["type"]
        context = first.get("ctx") or {}
        if kind == "greater_than":
            raise ValueError(f"must be greater than {context['gt']:g}") from None
        if kind == "greater_than_equal":
            raise ValueError(f"must be at least {context['ge']:g}") from None
        raise ValueError(_REASONS.get(kind, first["msg"].lower())) from None
    check = spec.metadata.get("check")
    if check is not None and typed is not None:  # None: an optional setting left empty
        typed = check(typed)
    if typed == "" and type(None) in typing.get_args(annotation):
        return None
    return typed


def written(spec: Field[Any], value: Any, origin: Origin) -> str:
    """The value as the operator wrote it, secrets masked, and where."""
    secret = spec.metadata.get("secret")
    if secret == "value":
        value = "***"
    elif secret == "url" and isinstance(value, str):
        value = mask_url(value)
    if origin.kind != "file" and isinstance(value, str) and (not value or value != value.strip()):
        value = repr(value)  # blanks made visible
    if origin.kind == "env":
        return f"{origin.where}={value} (environment)"
    if origin.kind == "file":
        return f"{spec.name} = {_toml(value)} in {origin.where}"
    return f"{origin.where} {value}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)
