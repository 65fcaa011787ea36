"""Database TLS on PostgreSQL and MariaDB servers of the test's own, with certificates of a
certificate authority the test made: podium verifies the server, the server verifies podium,
and nothing else gets through. See faults_db_servers.py for the servers."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pymysql
import pytest
import sqlalchemy as sa
import trustme
from faults_db_servers import (
    CertFiles,
    MariaDBServer,
    PostgresServer,
    ServerMissing,
    ServerWithoutTls,
    reap_orphaned_servers,
    write_cert,
)

from podium.db import Database, migration
from podium.exceptions import DBConnectionError

pytestmark = pytest.mark.faults

BACKENDS = ["postgresql", "mysql"]
#: What each server says of the TLS it speaks with the connection asking.
TLS_IN_USE = {
    "postgresql": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    "mysql": "SELECT variable_value <> '' FROM information_schema.session_status "
    "WHERE variable_name = 'Ssl_cipher'",
}


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """podium's certificate: PostgreSQL's ``cert`` method takes its common name as the user."""
    where = tmp_path_factory.mktemp("db-tls-client")
    return write_cert(authority, where, "client", "podium.client.test", common_name="podium")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A client certificate, and its authority, that the servers have never heard of."""
    return write_cert(trustme.CA(), tmp_path_factory.mktemp("db-tls-stranger"), "client", "x")


def _started(server: PostgresServer | MariaDBServer) -> Iterator[Any]:
    reap_orphaned_servers()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _absent(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the database TLS tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_server(authority: trustme.CA) -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(authority)
    except ServerMissing as missing:
        _absent(str(missing))
    yield from _started(server)


@pytest.fixture(scope="module")
def mariadb_server(authority: trustme.CA) -> Iterator[MariaDBServer]:
    try:
        server = MariaDBServer(authority)
    except ServerMissing as missing:
        _absent(str(missing))
    yield from _started(server)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def server_of(request: pytest.FixtureRequest, backend: str) -> PostgresServer | MariaDBServer:
    name = "postgres_server" if backend == "postgresql" else "mariadb_server"
    server = request.getfixturevalue(name)
    assert isinstance(server, PostgresServer | MariaDBServer)
    return server


def tls_url(
    server: PostgresServer | MariaDBServer | ServerWithoutTls,
    ca: Path,
    client: CertFiles | None,
    host: str = "127.0.0.1",
) -> str:
    """podium's URL of ``server``: trusting ``ca``, showing ``client``'s certificate."""
    if server.backend == "postgresql":
        names = ("sslrootcert", "sslcert", "sslkey")
        base = f"postgresql+psycopg://podium@{host}:{server.port}/podium"
    else:
        names = ("ssl_ca", "ssl_cert", "ssl_key")
        password = quote(MariaDBServer.password, safe="")
        base = f"mysql+pymysql://podium:{password}@{host}:{server.port}/podium"
    files = [ca, client.cert if client else None, client.key if client else None]
    options = {name: str(path) for name, path in zip(names, files, strict=True) if path}
    return f"{base}?{urlencode(options)}"


@pytest.fixture
def database(request: pytest.FixtureRequest, backend: str, client: CertFiles) -> Iterator[Database]:
    server = server_of(request, backend)
    made = Database(tls_url(server, server.tls.ca, client))
    yield made
    made.dispose()


def refused_at_once(url: str, caplog: pytest.LogCaptureFixture) -> str:
    """The error of a first use of ``url``, which must not have been tried again."""
    database = Database(url)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="podium.db.engine"),
            pytest.raises(DBConnectionError) as info,
        ):
            database.run(lambda session: session.execute(sa.text("SELECT 1")))
    finally:
        database.dispose()
    assert not [r for r in caplog.records if "trying again" in r.getMessage()]
    message = str(info.value)
    # Neither the password nor where the key lies.
    assert MariaDBServer.password not in message and "S3c" not in message
    assert ".key" not in message
    return message


def test_podium_works_over_verified_tls(database: Database, backend: str) -> None:
    with database.session() as session:
        assert session.execute(sa.text(TLS_IN_USE[backend])).scalar_one()
    if backend == "postgresql":  # named no sslmode: podium asked libpq for the strictest
        assert database.url.query["sslmode"] == "verify-full"


def test_a_conductor_saves_objects_over_tls(database: Database) -> None:
    from podium.cloud.models import Instance as InstanceRow
    from podium.cloud.objects import CloudObject, Instance
    from podium.conductor import configure_worker
    from podium.context import RequestContext
    from podium.objects.fixture import indirection_api_set
    from podium.testing import in_process_conductor, memory_transport

    migration.sync(database)
    context = RequestContext(user_id="u1", project_id="p1", is_admin=True)
    with (
        memory_transport("db-tls") as transport,
        in_process_conductor(transport, database),
        indirection_api_set(None, CloudObject),
    ):
        configure_worker(transport, base=CloudObject, timeout=20)
        instance = Instance(context, uuid=str(uuid.uuid4()), hostname="vm", host="h1")
        instance.create()
        instance.display_name = "saved-over-tls"
        instance.save()
    with database.session() as session:
        row = session.execute(
            sa.select(InstanceRow.display_name).where(InstanceRow.uuid == instance.uuid)
        ).scalar_one()
    assert row == "saved-over-tls"


def test_a_server_certificate_of_another_authority_is_refused_at_once(
    request: pytest.FixtureRequest,
    backend: str,
    client: CertFiles,
    stranger: CertFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = tls_url(server_of(request, backend), stranger.ca, client)
    message = refused_at_once(url, caplog)
    assert "over TLS (trying again will not help)" in message
    assert "certificate verify failed" in message


def test_a_server_certificate_for_another_host_name_is_refused_at_once(
    request: pytest.FixtureRequest,
    backend: str,
    client: CertFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_of(request, backend)
    # The server's certificate names 127.0.0.1 only.
    message = refused_at_once(tls_url(server, server.tls.ca, client, host="localhost"), caplog)
    assert "over TLS (trying again will not help)" in message
    expected = {"postgresql": "does not match host name", "mysql": "Hostname mismatch"}
    assert expected[backend] in message


def test_a_client_without_a_certificate_is_refused_at_once(
    request: pytest.FixtureRequest, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_of(request, backend)
    message = refused_at_once(tls_url(server, server.tls.ca, None), caplog)
    expected = {
        "postgresql": "requires a valid client certificate",
        "mysql": "Access denied for user 'podium'",
    }
    assert expected[backend] in message


def test_a_client_certificate_of_another_authority_is_refused(
    request: pytest.FixtureRequest, backend: str, stranger: CertFiles
) -> None:
    # Not necessarily at once: under TLS 1.3 the server checks the client's
    # certificate after the client's handshake is over, and its alert may be
    # lost in the connection's reset, which then reads as a connection lost.
    server = server_of(request, backend)
    database = Database(tls_url(server, server.tls.ca, stranger))
    try:
        with pytest.raises(DBConnectionError, match="Cannot reach the database"):
            database.run(lambda session: session.execute(sa.text("SELECT 1")))
    finally:
        database.dispose()


def test_the_servers_refuse_plain_connections(
    postgres_server: PostgresServer, mariadb_server: MariaDBServer
) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"rejects connection .* no encryption"):
        psycopg.connect(
            host="127.0.0.1", port=postgres_server.port, user="podium", dbname="podium",
            sslmode="disable", connect_timeout=10,
        )  # fmt: skip
    # MariaDB says no more than "Access denied" of a client without TLS; the same
    # credentials over TLS are let in.
    credentials = {"user": "anyone", "password": MariaDBServer.password, "connect_timeout": 10}
    with pytest.raises(pymysql.err.OperationalError, match="Access denied for user 'anyone'"):
        pymysql.connect(
            host="127.0.0.1", port=mariadb_server.port, ssl_disabled=True, **credentials
        )
    pymysql.connect(host="127.0.0.1", port=mariadb_server.port, **credentials).close()


def test_podium_refuses_plain_postgresql_on_a_tls_only_server(
    postgres_server: PostgresServer, client: CertFiles, caplog: pytest.LogCaptureFixture
) -> None:
    url = tls_url(postgres_server, postgres_server.tls.ca, client) + "&sslmode=disable"
    assert "no encryption" in refused_at_once(url, caplog)


def test_a_server_that_offers_no_tls_is_refused_at_once(
    backend: str, client: CertFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS asked for is never dropped, as a server (or someone between) without it would like."""
    fake = ServerWithoutTls(backend)
    try:
        message = refused_at_once(tls_url(fake, client.ca, client), caplog)
    finally:
        fake.close()
    assert "over TLS (trying again will not help)" in message
    expected = {
        "postgresql": "server does not support SSL, but SSL was required",
        "mysql": "SSL is required but the server doesn't support it",
    }
    assert expected[backend] in message


def test_a_key_others_can_read_is_refused_at_once_without_its_path(
    postgres_server: PostgresServer,
    client: CertFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # libpq refuses such a key, naming its file: podium's message hides the name.
    shared_key = tmp_path / "shared.key"
    shared_key.write_bytes(client.key.read_bytes())
    shared_key.chmod(0o644)
    shown = CertFiles(client.ca, client.cert, shared_key)
    message = refused_at_once(tls_url(postgres_server, postgres_server.tls.ca, shown), caplog)
    assert "has group or world access" in message
    assert str(shared_key) not in message and 'private key file "***"' in message
