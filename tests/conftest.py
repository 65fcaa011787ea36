"""Shared fixtures: the real services of the machine, and how their absence is treated.

Under ``CI=true`` a missing service is a failure, never a skip: a green CI run
must mean the integration tests really ran.
"""

from __future__ import annotations

import os
import socket

import pytest

RABBIT_URL = os.environ.get("PODIUM_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "PODIUM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("PODIUM_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip on a laptop without the service; fail under CI=true."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
    pytest.skip(f"{reason}; start it to run this test")


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return RABBIT_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    require_service("MariaDB", "127.0.0.1", 3306)
    return MYSQL_URL
