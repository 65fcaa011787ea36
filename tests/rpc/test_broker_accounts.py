"""Broker accounts restricted per service, on the real RabbitMQ (docs/broker.md).

``podium broker setup`` makes the accounts of a conductor, an api and two
compute hosts on a throwaway vhost; the services run with ``routing=exchange``
on them. What a compute's account may do works; what it may not, the broker
refuses (ACCESS_REFUSED), whatever the client tries.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions as pex
import pytest
from click.testing import CliRunner

from podium import testing
from podium.broker_cli import group
from podium.exceptions import MessagingTimeout, TransportError
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport
from podium.testing import DEFAULT_RABBIT_URL
from polling import wait_for

pytestmark = pytest.mark.rabbit

CTX: dict[str, Any] = {}


class Echo:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cast_values: list[Any] = []

    def echo(self, ctxt: Any, value: Any) -> list[Any]:
        return [self.name, value]

    def record(self, ctxt: Any, value: Any) -> None:
        self.cast_values.append(value)

    def fail(self, ctxt: Any) -> None:
        raise RuntimeError("always")


class Accounts:
    def __init__(self, base: str, vhost: str, secrets_dir: Path, prefix: str) -> None:
        self.base = base
        self.vhost = vhost
        self.secrets_dir = secrets_dir
        self.prefix = prefix

    def url(self, account: str) -> str:
        return (self.secrets_dir / f"{self.prefix}{account}.url").read_text().strip()

    def amqp(self, account: str) -> pika.BlockingConnection:
        url = self.url(account).replace("rabbit://", "amqp://", 1).split("?")[0]
        return pika.BlockingConnection(pika.URLParameters(url))

    def admin(self) -> pika.BlockingConnection:
        url = f"{self.base.replace('rabbit://', 'amqp://', 1).rstrip('/')}/{self.vhost}"
        return pika.BlockingConnection(pika.URLParameters(url))

    def setup_args(
        self,
        services: tuple[str, ...] = ("conductor", "api"),
        hosts: tuple[str, ...] = ("h1", "h2"),
    ) -> list[str]:
        args = ["setup", "--vhost", self.vhost, "--prefix", self.prefix]
        args += ["--secrets-dir", str(self.secrets_dir), "--broker", "127.0.0.1:5672"]
        for service in services:
            args += ["--service", service]
        for host in hosts:
            args += ["--compute-host", host]
        return args


def _users_named(prefix: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_users", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    testing.require_service("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"podium-test-{secrets.token_hex(3)}-"
    with testing.rabbit_vhost(DEFAULT_RABBIT_URL, prefix="podium-broker-test") as url:
        vhost = url.rsplit("/", 1)[1]
        made = Accounts(DEFAULT_RABBIT_URL, vhost, tmp_path_factory.mktemp("accounts"), prefix)
        try:
            done = CliRunner().invoke(group, made.setup_args())
            assert done.exit_code == 0, done.output
            yield made
        finally:
            for user in _users_named(prefix):
                subprocess.run(["rabbitmqctl", "-q", "delete_user", user], timeout=60)


@contextlib.contextmanager
def serving(transport: Transport, target: Target, endpoint: Any) -> Iterator[RPCServer]:
    server = RPCServer(transport, target, [endpoint])
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.wait()


@pytest.fixture(scope="module")
def conductor(accounts: Accounts) -> Iterator[Echo]:
    """The conductor, serving first: its account creates the topic exchange."""
    echo = Echo("conductor")
    with (
        get_transport(accounts.url("conductor")) as transport,
        serving(transport, Target(topic="conductor", server="c1"), echo),
    ):
        yield echo


@pytest.fixture
def compute_h1(accounts: Accounts, conductor: Echo) -> Iterator[Transport]:
    with get_transport(accounts.url("compute.h1")) as transport:
        yield transport


def test_setup_writes_each_account_url_for_its_owner_alone(accounts: Accounts) -> None:
    for name in ("conductor", "api", "compute.h1", "compute.h2"):
        path = accounts.secrets_dir / f"{accounts.prefix}{name}.url"
        assert path.stat().st_mode & 0o777 == 0o600
        assert accounts.url(name).endswith(f"/{accounts.vhost}?routing=exchange")


def test_setup_again_keeps_the_passwords_and_the_accounts_work(accounts: Accounts) -> None:
    before = accounts.url("compute.h1")
    done = CliRunner().invoke(group, accounts.setup_args(services=(), hosts=("h1",)))
    assert done.exit_code == 0, done.output
    assert accounts.url("compute.h1") == before
    accounts.amqp("compute.h1").close()  # the password still authenticates


def test_a_compute_serves_its_own_queue_and_calls_the_conductor(
    accounts: Accounts, conductor: Echo, compute_h1: Transport
) -> None:
    compute = Echo("h1")
    with (
        serving(compute_h1, Target(topic="compute", server="h1"), compute),
        get_transport(accounts.url("api")) as api,
    ):
        # compute -> conductor, the reply back through the compute's own reply queue
        to_conductor = RPCClient(compute_h1, Target(topic="conductor"), timeout=20)
        assert to_conductor.call(CTX, "echo", value=1) == ["conductor", 1]
        # api -> this compute (a console output), the reply from the compute's account
        to_h1 = RPCClient(api, Target(topic="compute", server="h1"), timeout=20)
        assert to_h1.call(CTX, "echo", value=2) == ["h1", 2]
        to_h1.cast(CTX, "record", value=3)
        wait_for(lambda: compute.cast_values == [3], what="the api's cast to h1")


def test_a_compute_cannot_consume_another_hosts_queue(
    accounts: Accounts, conductor: Echo, compute_h1: Transport
) -> None:
    with (
        get_transport(accounts.url("compute.h2")) as h2,
        serving(h2, Target(topic="compute", server="h2"), Echo("h2")),
    ):
        with contextlib.closing(accounts.amqp("compute.h1")) as connection:
            with pytest.raises(pex.ChannelClosedByBroker) as refused:
                connection.channel().basic_consume("compute.h2", lambda *_: None)
            assert refused.value.reply_code == 403
            assert "access to queue 'compute.h2'" in refused.value.reply_text
            # Nor get a copy: bind its own queue with the other host's key.
            with pytest.raises(pex.ChannelClosedByBroker) as refused:
                connection.channel().queue_bind("compute.h1", "openstack", "compute.h2")
            assert "access to topic 'compute.h2'" in refused.value.reply_text
        # podium says so at once, without retrying
        with pytest.raises(TransportError, match="403 ACCESS_REFUSED"):
            RPCServer(compute_h1, Target(topic="compute", server="h2"), [Echo("x")]).start()


def test_a_compute_cannot_send_to_another_hosts_or_services_topic(
    accounts: Accounts, conductor: Echo, compute_h1: Transport
) -> None:
    scheduler = Echo("scheduler")
    with (
        get_transport(accounts.url("compute.h2")) as h2,
        serving(h2, Target(topic="compute", server="h2"), Echo("h2")),
        get_transport(accounts.url("conductor")) as as_conductor,
        # the conductor's account may serve what the test needs: it is trusted
        serving(as_conductor, Target(topic="compute_task", server="c1"), scheduler),
    ):
        for target in (Target(topic="compute", server="h2"), Target(topic="compute")):
            with pytest.raises(TransportError, match="ACCESS_REFUSED - access to topic"):
                RPCClient(compute_h1, target, timeout=20).call(CTX, "echo", value=0)
        # What it may send goes on working on a new connection.
        to_conductor = RPCClient(compute_h1, Target(topic="conductor"), timeout=20)
        assert to_conductor.call(CTX, "echo", value=1) == ["conductor", 1]


def test_a_refused_cast_is_dropped_with_an_error_and_reaches_nobody(
    accounts: Accounts, conductor: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    h2 = Echo("h2")
    with (
        get_transport(accounts.url("compute.h2")) as h2_transport,
        serving(h2_transport, Target(topic="compute", server="h2"), h2),
    ):
        with get_transport(accounts.url("compute.h1")) as h1, caplog.at_level(logging.ERROR):
            RPCClient(h1, Target(topic="compute", server="h2")).cast(CTX, "record", value=1)
            # the next cast finds the channel the broker closed, and goes
            RPCClient(h1, Target(topic="conductor")).cast(CTX, "record", value=2)
            # closing waits for the broker's confirms: the allowed cast is in
        wait_for(lambda: conductor.cast_values[-1:] == [2], what="the allowed cast")
        assert any(
            "refused" in r.getMessage() and "compute.h2" in r.getMessage() for r in caplog.records
        )
        assert h2.cast_values == []


def test_a_compute_cannot_publish_on_the_default_exchange(accounts: Accounts) -> None:
    with contextlib.closing(accounts.amqp("compute.h1")) as connection:
        channel = connection.channel()
        channel.basic_publish("", "conductor", b"{}")
        with pytest.raises(pex.ChannelClosedByBroker) as refused:
            channel.queue_declare("conductor", passive=True)  # a round trip: the refusal is in
        assert refused.value.reply_code == 403
        assert "exchange 'amq.default'" in refused.value.reply_text


def test_a_compute_cannot_delete_or_redeclare_the_shared_exchange(
    accounts: Accounts, conductor: Echo
) -> None:
    with contextlib.closing(accounts.amqp("compute.h1")) as connection:
        for attempt in (
            lambda ch: ch.exchange_delete("openstack"),
            lambda ch: ch.exchange_declare("openstack", "fanout"),
            lambda ch: ch.queue_delete("conductor"),
            lambda ch: ch.basic_consume(f"reply_{accounts.prefix}api_{'0' * 32}", print),
        ):
            with pytest.raises(pex.ChannelClosedByBroker) as refused:
                attempt(connection.channel())
            assert refused.value.reply_code == 403


@pytest.mark.parametrize(
    ("reply", "says"),
    [("direct", "cannot reply to"), ("queue", "nothing took the message it sent to 'reply_")],
)
def test_a_restricted_server_says_why_an_unrestricted_caller_gets_no_reply(
    accounts: Accounts,
    conductor: Echo,
    compute_h1: Transport,
    caplog: pytest.LogCaptureFixture,
    reply: str,
    says: str,
) -> None:
    admin_url = f"{DEFAULT_RABBIT_URL.rstrip('/')}/{accounts.vhost}?reply={reply}"
    with (
        serving(compute_h1, Target(topic="compute", server="h1"), Echo("h1")),
        get_transport(admin_url) as unrestricted,
        caplog.at_level(logging.ERROR),
    ):
        client = RPCClient(unrestricted, Target(topic="compute", server="h1"), timeout=2)
        with pytest.raises(MessagingTimeout):
            client.call(CTX, "echo", value=1)
        wait_for(
            lambda: any(says in r.getMessage() for r in caplog.records), what="the server's error"
        )


class ExplodingServer(RPCServer):
    """A server whose own machinery fails on one method: the request is sent again."""

    def _handle(self, incoming: Any) -> None:
        if incoming.message.get("method") == "explode":
            raise RuntimeError("boom")
        super()._handle(incoming)


def test_a_restricted_server_retries_and_sets_aside_through_the_exchange(
    accounts: Accounts, conductor: Echo
) -> None:
    with (
        get_transport(accounts.url("compute.h1") + "&max_attempts=2") as h1,
        ExplodingServer(h1, Target(topic="compute", server="h1"), [Echo("h1")]),
        get_transport(accounts.url("api")) as api,
    ):
        RPCClient(api, Target(topic="compute", server="h1")).cast(CTX, "explode")
        with contextlib.closing(accounts.admin()) as admin:
            channel = admin.channel()

            def dead_letter() -> Any:
                method, props, _body = channel.basic_get("compute.dead", auto_ack=True)
                return props if method is not None else None

            props = wait_for(dead_letter, what="the failing cast set aside")
    assert props.headers["x-podium-attempts"] == 2
    assert props.headers["x-podium-queue"] == "compute.h1"


def test_before_the_conductor_made_the_exchange_a_compute_says_it_is_missing(
    accounts: Accounts, tmp_path: Path
) -> None:
    # The same account (its password kept from its file) on a vhost of its own.
    (tmp_path / f"{accounts.prefix}compute.h1.url").write_text(accounts.url("compute.h1"))
    with testing.rabbit_vhost(DEFAULT_RABBIT_URL, prefix="podium-broker-test") as url:
        fresh = Accounts(DEFAULT_RABBIT_URL, url.rsplit("/", 1)[1], tmp_path, accounts.prefix)
        done = CliRunner().invoke(group, fresh.setup_args(services=(), hosts=("h1",)))
        assert done.exit_code == 0, done.output
        with get_transport(fresh.url("compute.h1") + "&connect_retries=0") as h1:
            server = RPCServer(h1, Target(topic="compute", server="h1"), [Echo("h1")])
            with pytest.raises(TransportError, match="exchange 'openstack' does not exist"):
                server.start()


def test_the_conductor_casts_to_every_compute_at_once(
    accounts: Accounts, conductor: Echo, compute_h1: Transport
) -> None:
    h1, h2 = Echo("h1"), Echo("h2")
    with (
        serving(compute_h1, Target(topic="compute", server="h1"), h1),
        get_transport(accounts.url("compute.h2")) as h2_transport,
        serving(h2_transport, Target(topic="compute", server="h2"), h2),
        get_transport(accounts.url("conductor")) as as_conductor,
    ):
        RPCClient(as_conductor, Target(topic="compute", fanout=True)).cast(CTX, "record", value=9)
        wait_for(lambda: h1.cast_values == [9] and h2.cast_values == [9], what="both computes")
