"""Passwords in transport and database URLs: parsed back exactly, never printed.

Every test uses a password made of two marker halves around one reserved
character; neither half may appear in any text podium produces (errors, their
chained causes, reprs, masked URLs, log records).
"""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

import pytest

from podium._urls import mask_url
from podium.db import Database
from podium.exceptions import InvalidDatabaseURL, InvalidTransportURL, TransportError
from podium.rpc import RPCClient, Target, TransportURL, get_transport

RESERVED = [*":/?#[]@!$&'()*+,;=%", " "]
# Unescaped in a rabbit URL, these end the host list (or split it) before the
# password does, so such a URL cannot be read and is refused.
RABBIT_REFUSED = set("/?#,")
# SQLAlchemy reads every unescaped character but '@' correctly; podium refuses that one.
DB_REFUSED = {"@"}


def _password(char: str) -> str:
    return f"S3c{char}retPW"


def _assert_hidden(text: str) -> None:
    assert "S3c" not in text and "retPW" not in text, text


def _full_text(error: BaseException) -> str:
    """What a log line with the traceback shows of the error and the errors it chains.

    Not ``traceback.format_exception``: it quotes the test's own source lines.
    """
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts.append("".join(traceback.format_exception_only(seen)))
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return "\n".join(texts)


# -- rabbit:// -------------------------------------------------------------------


@pytest.mark.parametrize("char", RESERVED)
def test_a_percent_encoded_password_parses_back_exactly(char: str) -> None:
    password = _password(char)
    encoded = quote(password, safe="")
    url = TransportURL.parse(
        f"rabbit://user:{encoded}@host:5672,u2:{encoded}@[::1]:5673/vhost?heartbeat=10"
    )
    assert [(h.username, h.password, h.hostname, h.port) for h in url.hosts] == [
        ("user", password, "host", 5672),
        ("u2", password, "::1", 5673),
    ]
    assert (url.virtual_host, url.query) == ("vhost", {"heartbeat": "10"})
    for text in (repr(url), str(url), repr(url.hosts[0])):
        _assert_hidden(text)
    masked = TransportURL.masked(f"rabbit://user:{encoded}@host:5672/vhost")
    assert masked == "rabbit://user:***@host:5672/vhost"


@pytest.mark.parametrize("char", RESERVED)
def test_an_unescaped_password_parses_exactly_or_is_refused_unseen(char: str) -> None:
    password = _password(char)
    raw = f"rabbit://user:{password}@host:5672/vhost"
    _assert_hidden(TransportURL.masked(raw))
    if char in RABBIT_REFUSED:
        with pytest.raises(InvalidTransportURL) as info:
            TransportURL.parse(raw)
        _assert_hidden(_full_text(info.value))
        with pytest.raises(InvalidTransportURL) as info:
            get_transport(raw)
        _assert_hidden(_full_text(info.value))
        return
    url = TransportURL.parse(raw)
    assert [(h.username, h.password, h.hostname, h.port) for h in url.hosts] == [
        ("user", password, "host", 5672)
    ]
    assert url.virtual_host == "vhost"
    _assert_hidden(repr(url))
    assert TransportURL.masked(raw) == "rabbit://user:***@host:5672/vhost"


@pytest.mark.parametrize("char", RESERVED)
def test_the_unknown_scheme_error_hides_the_password(char: str) -> None:
    with pytest.raises(InvalidTransportURL, match="kafka") as info:
        get_transport(f"kafka://user:{quote(_password(char), safe='')}@host:9092/")
    _assert_hidden(_full_text(info.value))
    assert "kafka://user:***@host:9092/" in str(info.value)
    with pytest.raises(InvalidTransportURL) as info:
        get_transport(f"kafka://user:{_password(char)}@host:9092/")
    _assert_hidden(_full_text(info.value))


def test_a_password_read_as_a_port_is_never_echoed() -> None:
    with pytest.raises(InvalidTransportURL) as info:
        TransportURL.parse("rabbit://user:S3c/retPW@host/")
    _assert_hidden(_full_text(info.value))
    with pytest.raises(InvalidTransportURL, match="host 2: port is not a number") as info:
        TransportURL.parse("rabbit://u:p@h1:5672,u:p@h2:S3cretPW/")
    _assert_hidden(_full_text(info.value))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("S3cretPW", "scheme"),
        ("rabbit://u:p@h1,S3cretPW@h2:5672,h3/", "host 3"),
        ("rabbit://u:p@h:99999/", "host 1: port"),
        ("rabbit://u:p@[::1/", "host 1"),
        ("rabbit://u:p@h/S3c@retPW", "'@'"),
    ],
)
def test_an_unreadable_url_says_what_and_where_without_echoing_it(url: str, why: str) -> None:
    with pytest.raises(InvalidTransportURL, match=why) as info:
        TransportURL.parse(url)
    _assert_hidden(_full_text(info.value))
    _assert_hidden(TransportURL.masked(url))


def test_repr_of_a_transport_and_its_url_hides_passwords() -> None:
    transport = get_transport(f"memory://user:{quote('S3c@retPW', safe='')}@bus")
    try:
        for text in (repr(transport), repr(transport.url), str(transport.url)):
            _assert_hidden(text)
        assert "password" not in repr(transport.url)
    finally:
        transport.cleanup()


def test_logs_and_errors_of_an_unreachable_broker_hide_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoded = quote(_password("".join(RESERVED)), safe="")
    transport = get_transport(f"rabbit://user:{encoded}@127.0.0.1:1/?connect_retries=1")
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(TransportError) as info:
            RPCClient(transport, Target(topic="t"), timeout=5).call({}, "m")
        _assert_hidden(_full_text(info.value))
    finally:
        transport.cleanup()
    assert "127.0.0.1:1" in str(info.value)  # the broker is named, only not its password
    assert caplog.records
    for record in caplog.records:
        _assert_hidden(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            _assert_hidden(_full_text(record.exc_info[1]))


# -- database URLs -----------------------------------------------------------------


@pytest.mark.parametrize("char", RESERVED)
def test_a_percent_encoded_database_password_parses_back_exactly(char: str) -> None:
    password = _password(char)
    database = Database(f"postgresql+psycopg://user:{quote(password, safe='')}@host:5432/podium")
    url = database.url
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "user",
        password,
        "host",
        5432,
        "podium",
    )
    assert database.safe_url == "postgresql+psycopg://user:***@host:5432/podium"
    assert repr(database) == "Database('postgresql+psycopg://user:***@host:5432/podium')"


@pytest.mark.parametrize("char", RESERVED)
def test_an_unescaped_database_password_parses_exactly_or_is_refused_unseen(char: str) -> None:
    password = _password(char)
    database = Database(f"postgresql+psycopg://user:{password}@host:5432/podium?sslmode=require")
    _assert_hidden(database.safe_url)
    _assert_hidden(repr(database))
    if char in DB_REFUSED:
        with pytest.raises(InvalidDatabaseURL, match="%40") as info:
            database.url  # noqa: B018
        _assert_hidden(_full_text(info.value))
        with pytest.raises(InvalidDatabaseURL) as info:
            database.engine  # noqa: B018
        _assert_hidden(_full_text(info.value))
        assert database.safe_url == "<invalid URL>"
        return
    url = database.url
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "user",
        password,
        "host",
        5432,
        "podium",
    )
    assert url.query == {"sslmode": "require"}
    assert database.safe_url == "postgresql+psycopg://user:***@host:5432/podium?sslmode=require"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql+psycopg://user:pw@host:S3cretPW/podium", "port"),
        ("postgresql+psycopg://user:S3c@retPW@host/podium", "%40"),
        ("postgresql+psycopg://user:S3c@ret?PW@host/podium", "%40"),
        ("postgresql+psycopg://us/er:S3cretPW@host/podium", "'@'"),
        ("S3cretPW", "dialect"),
        ("oracle://user:S3cretPW@host/x", "oracle"),
    ],
)
def test_database_url_errors_never_echo_the_password(url: str, why: str) -> None:
    database = Database(url)
    with pytest.raises(InvalidDatabaseURL, match=why) as info:
        database.engine  # noqa: B018
    _assert_hidden(_full_text(info.value))
    _assert_hidden(repr(database))


def test_a_user_name_with_an_at_sign_still_reads() -> None:
    # Azure Database for PostgreSQL names users "user@server".
    url = Database("postgresql+psycopg://me@srv:S3cretPW@srv.example/db").url
    assert (url.username, url.password, url.host) == ("me@srv", "S3cretPW", "srv.example")
    assert Database("sqlite:////tmp/a@b/podium.sqlite").url.database == "/tmp/a@b/podium.sqlite"


# -- the one masking function ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rabbit://u1:pw1@h1:5672,u2:pw2@h2:5672/vh", "rabbit://u1:***@h1:5672,u2:***@h2:5672/vh"),
        ("rabbit://guest@h/", "rabbit://guest@h/"),
        ("memory://", "memory://"),
        ("sqlite:///relative.sqlite", "sqlite:///relative.sqlite"),
        ("postgresql://u:S3c%2FretPW@h/db?x=1", "postgresql://u:***@h/db?x=1"),
        ("rabbit://u:S3c@retPW@h/", "rabbit://u:***@h/"),
        ("rabbit://u:S3c/retPW@h/", "rabbit://***"),
        ("rabbit://u:S3c,retPW@h/", "rabbit://***"),
        ("S3cretPW", "***"),
        ("S3c:/retPW://h", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
