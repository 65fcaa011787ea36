"""Applications built on podium, found through the entry point group ``podium.apps``.

An application declares itself with one :class:`App` value named by an entry
point, e.g. in its pyproject.toml::

    [project.entry-points."podium.apps"]
    shop = "shop.app:APP"

The framework then migrates its tables (its own Alembic branch), archives its
soft-deleted rows, serves its objects and endpoints on the conductor and lists
its sub-commands under ``podium``, without ever naming the application in code.

An :class:`App` only names modules; nothing here imports them until asked
(``podium --help`` loads every App, and must not pay for SQLAlchemy).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType, ModuleType
from typing import Any

from podium.exceptions import AppError

__all__ = [
    "ENTRY_POINT_GROUP",
    "FRAMEWORK_BRANCH",
    "App",
    "apps_or_installed",
    "conductor_endpoints",
    "import_modules",
    "installed_apps",
    "resolve",
]

ENTRY_POINT_GROUP = "podium.apps"

#: The Alembic branch of the framework's own tables; no application may take it.
FRAMEWORK_BRANCH = "podium"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclass(frozen=True)
class App:
    """What the framework needs to know about one application.

    ``name`` is also the application's Alembic branch label. ``migrations`` is
    the dotted package whose directory holds its Alembic version scripts;
    ``models`` the modules defining its tables (imported before a migration or
    an archive run); ``archive`` its soft-delete tables, archived in that
    order (children first); ``objects`` the modules registering its versioned
    objects (the conductor imports them); ``remote_exceptions`` the exception
    modules a caller may re-raise as themselves; ``conductor_endpoints`` a
    ``"module:callable"`` with ``callable(transport, database, host) ->
    Sequence[object]``, extra endpoints the conductor serves; ``policy`` a
    ``"module:attr"`` naming the application's
    :class:`~podium.conductor.policy.PolicyDefaults` (who may make which of its
    object calls); ``commands`` ``podium`` sub-command name -> ``"module:attr"``
    (a click command).
    """

    name: str
    migrations: str | None = None
    models: tuple[str, ...] = ()
    archive: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    remote_exceptions: tuple[str, ...] = ()
    conductor_endpoints: str | None = None
    policy: str | None = None
    # A dict is not hashable: the App's hash (and equality) leave it out.
    commands: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise AppError(
                f"App name {self.name!r}: lower-case letters, digits and _ (it is an Alembic "
                "branch label and a name on the command line)"
            )
        if self.name == FRAMEWORK_BRANCH:
            raise AppError(f"App name {self.name!r} is the framework's own branch")
        if self.migrations is not None:
            _check_module(self, "migrations", self.migrations)
        for attr in ("models", "objects", "remote_exceptions"):
            values = getattr(self, attr)
            if not isinstance(values, tuple):
                raise AppError(f"App {self.name}: {attr} must be a tuple, not {values!r}")
            for value in values:
                _check_module(self, attr, value)
        if not isinstance(self.archive, tuple) or not all(
            isinstance(table, str) and table for table in self.archive
        ):
            raise AppError(f"App {self.name}: archive must be a tuple of table names")
        for attr in ("conductor_endpoints", "policy"):
            if getattr(self, attr) is not None:
                _check_reference(self, attr, getattr(self, attr))
        if not isinstance(self.commands, Mapping):
            raise AppError(f"App {self.name}: commands must map names to 'module:attr'")
        for command, reference in self.commands.items():
            if not isinstance(command, str) or not command:
                raise AppError(f"App {self.name}: command name {command!r}")
            _check_reference(self, f"commands[{command!r}]", reference)
        # Read-only, so that a cached App cannot be changed behind the cache.
        object.__setattr__(self, "commands", MappingProxyType(dict(self.commands)))


def _check_module(app: App, attr: str, value: object) -> None:
    if not isinstance(value, str) or not _MODULE.match(value):
        raise AppError(f"App {app.name}: {attr} {value!r} is not a dotted module name")


def _check_reference(app: App, attr: str, value: object) -> None:
    if not isinstance(value, str) or not _REFERENCE.match(value):
        raise AppError(f"App {app.name}: {attr} {value!r} is not 'module:attribute'")


@functools.cache
def installed_apps() -> tuple[App, ...]:
    """Every application of the entry point group ``podium.apps``, by name.

    Cached for the process (``installed_apps.cache_clear()`` reads them again).
    An entry point that does not load, or names something that is not an
    :class:`App`, is an :class:`~podium.exceptions.AppError` naming it: an
    application silently left out would lose its tables and objects.
    """
    apps: dict[str, App] = {}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            app = point.load()
        except Exception as error:
            raise AppError(
                f"podium application {point.name!r} ({point.value}) does not load: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(app, App):
            raise AppError(
                f"podium application {point.name!r} ({point.value}) is a "
                f"{type(app).__name__}, not a podium.apps.App"
            )
        if app.name in apps:
            raise AppError(f"two podium applications are named {app.name!r}")
        apps[app.name] = app
    return tuple(apps.values())


def import_modules(apps: Iterable[App], attr: str) -> list[ModuleType]:
    """Import the modules each app lists in ``attr`` (``"models"``, ``"objects"``, ...)."""
    modules = []
    for app in apps:
        for name in getattr(app, attr):
            try:
                modules.append(importlib.import_module(name))
            except ImportError as error:
                raise AppError(f"App {app.name}: {attr} module {name!r}: {error}") from error
    return modules


def apps_or_installed(apps: Iterable[App] | None) -> tuple[App, ...]:
    """``apps`` as given, or (``None``) the installed applications."""
    # installed_apps looked up on this module at each call: tests stand in others.
    return tuple(installed_apps() if apps is None else apps)


def conductor_endpoints(
    apps: Iterable[App], transport: Any, database: Any, host: str
) -> list[object]:
    """The extra endpoints ``apps`` give a conductor on ``transport`` and ``database``."""
    return [
        endpoint
        for app in apps
        if app.conductor_endpoints is not None
        for endpoint in resolve(app, app.conductor_endpoints)(transport, database, host)
    ]


def resolve(app: App, reference: str) -> Callable[..., Any]:
    """The object named by ``"module:attr"`` (``attr`` may be dotted)."""
    module_name, _, path = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in path.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise AppError(f"App {app.name}: {reference!r} does not load: {error}") from error
    if not callable(target):
        raise AppError(f"App {app.name}: {reference!r} is not callable")
    return target  # type: ignore[no-any-return]
