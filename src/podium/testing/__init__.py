"""podium's testing kit: what a service built on podium needs to test itself.

With podium installed, pytest loads its plugin (``podium.testing.plugin``) and
these fixtures exist in every test suite:

``podium_transport``
    a ``memory://`` transport on an in-process broker of its own
``podium_rabbit_url``
    the URL of a throwaway RabbitMQ vhost, deleted after the session
``podium_database``
    a SQLite database in the test's ``tmp_path``, migrated to head
``podium_conductor``
    a conductor running in the test process on ``podium_transport`` and
    ``podium_database``; the test process plays a worker, so every object's
    remotable method goes through it
``podium_registry``
    an empty default object registry for the test, the previous one restored after
``podium_apps``
    the applications the fixtures above serve (their tables, objects, exceptions
    and conductor endpoints): by default the installed ones; override it in a
    ``conftest.py`` to test an application that is not installed

The context managers behind them serve other test runners, and the object
fixtures (:class:`FakeIndirectionAPI`, :class:`ObjectVersionChecker`,
:func:`compare_obj`) are here too. :mod:`podium.testing.conformance` holds the
transport conformance suite a new driver can run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from podium.apps import apps_or_installed
from podium.objects.fixture import (
    FakeIndirectionAPI,
    ObjectVersionChecker,
    compare_obj,
    indirection_api_set,
    isolated_default_registry,
)

if TYPE_CHECKING:
    from podium.apps import App
    from podium.conductor import ConductorAPI, Policy
    from podium.db import Database
    from podium.objects import VersionedObject
    from podium.rpc import Transport

__all__ = [
    "DEFAULT_RABBIT_URL",
    "FakeIndirectionAPI",
    "ObjectVersionChecker",
    "ServiceMissing",
    "compare_obj",
    "in_process_conductor",
    "indirection_api_set",
    "isolated_default_registry",
    "memory_transport",
    "migrated_sqlite",
    "rabbit_vhost",
    "require_service",
]

DEFAULT_RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


class ServiceMissing(Exception):
    """A service a test needs does not answer; ``required`` says whether that is a failure."""

    def __init__(self, message: str, *, required: bool) -> None:
        super().__init__(message)
        self.required = required


def require_service(name: str, host: str, port: int) -> None:
    """Return if ``host:port`` accepts a connection, else raise :class:`ServiceMissing`.

    Under ``CI=true`` a missing service is ``required`` (the test must fail: a
    green CI run means the integration tests really ran); elsewhere, a laptop
    without it may skip.
    """
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        pass
    ci = os.environ.get("CI", "").lower() == "true"
    reason = f"{name} is not reachable on {host}:{port}"
    hint = " (CI=true: services are required)" if ci else "; start it to run this test"
    raise ServiceMissing(reason + hint, required=ci)


@contextlib.contextmanager
def memory_transport(name: str = "", apps: Sequence[App] | None = None) -> Iterator[Transport]:
    """A ``memory://`` transport on an in-process broker nothing else reaches.

    The exceptions of ``apps`` (default: the installed applications) travel as
    themselves, as in ``podium conductor`` and the cloud's services.
    """
    from podium.rpc import MemoryBroker, get_transport

    with get_transport(f"memory://{name}", broker=MemoryBroker()) as transport:
        transport.allowed_remote_exmods.extend(
            module for app in apps_or_installed(apps) for module in app.remote_exceptions
        )
        yield transport


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def rabbit_vhost(
    base_url: str = DEFAULT_RABBIT_URL, user: str = "guest", prefix: str = "podium-test"
) -> Iterator[str]:
    """``base_url`` on a new vhost that ``user`` may use, deleted at the end.

    Everything declared on it (queues, exchanges, podium's and any peer's)
    goes with it, so runs leave nothing behind on a shared broker. It needs
    ``rabbitmqctl`` on the broker's machine; without it, ``base_url`` itself.
    """
    if shutil.which("rabbitmqctl") is None:
        yield base_url
        return
    vhost = f"{prefix}-{secrets.token_hex(4)}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield f"{base_url.rstrip('/')}/{vhost}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def migrated_sqlite(path: str | Path, apps: Sequence[App] | None = None) -> Iterator[Database]:
    """A SQLite database at ``path`` with the tables of ``apps`` (default: the installed ones)."""
    from podium.db import Database
    from podium.db.migration import sync

    database = Database(f"sqlite:///{path}")
    try:
        sync(database, apps=apps)
        yield database
    finally:
        database.dispose()


@contextlib.contextmanager
def in_process_conductor(
    transport: Transport,
    database: Database,
    *,
    apps: Sequence[App] | None = None,
    base: type[VersionedObject] | None = None,
    host: str = "conductor-test",
    workers: int = 4,
    timeout: float = 10.0,
    policy: Policy | Literal["apps"] | None = "apps",
) -> Iterator[ConductorAPI]:
    """A conductor on ``transport`` and ``database``, with this process as its worker.

    It serves the objects and conductor endpoints of ``apps`` (default: the
    installed applications) under their policy, as ``podium conductor`` does
    (``policy``: another :class:`~podium.conductor.Policy`, or None for none).
    Remotable methods of ``base`` (every object: ``VersionedObject``) go
    through it for the duration, as on a worker host; yields the worker's
    :class:`~podium.conductor.ConductorAPI`.
    """
    from podium.apps import conductor_endpoints, import_modules
    from podium.conductor import ConductorService, configure_worker
    from podium.conductor.policy import policy_of
    from podium.objects import VersionedObject

    chosen = apps_or_installed(apps)
    import_modules(chosen, "objects")
    endpoints = conductor_endpoints(chosen, transport, database, host)
    target = base or VersionedObject
    enforced = policy_of(chosen) if policy == "apps" else policy
    with (
        ConductorService(
            transport,
            database,
            host=host,
            workers=workers,
            endpoints=endpoints,
            policy=enforced,
        ),
        indirection_api_set(None, target),  # what was there before comes back after
    ):
        api = configure_worker(transport, base=target, timeout=timeout)
        assert api is not None  # use_local=False always configures
        yield api
