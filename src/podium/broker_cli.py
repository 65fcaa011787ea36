"""``podium broker``: RabbitMQ accounts restricted per service (docs/broker.md).

``podium broker setup --service conductor --service api --compute-host h1``
creates (or updates) one broker account per service type, and one per
compute host, on a vhost: a password of its own, written with the account's
transport URL to a file only its owner can read, and the permissions of
:mod:`podium.rpc._rabbit.accounts`. It runs ``rabbitmqctl``, on the broker's
machine; ``--dry-run`` prints the commands instead.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import click

from podium.keys_cli import write_atomically
from podium.rpc import TransportURL
from podium.rpc._transport import DEFAULT_EXCHANGE

if TYPE_CHECKING:
    from podium.rpc._rabbit.accounts import Permissions, Role

__all__ = ["ROLES", "group"]


def _roles(conductor: str) -> dict[str, Role]:
    """What each service of the cloud serves and sends to (``podium.cloud.rpcapi``)."""
    # Here, not at the top: `podium --help` must import neither the cloud nor pika.
    from podium.cloud.rpcapi import COMPUTE_TASK_TOPIC, COMPUTE_TOPIC, SCHEDULER_TOPIC
    from podium.rpc._rabbit.accounts import Role

    return {
        "conductor": Role(
            serves=(conductor, COMPUTE_TASK_TOPIC),
            sends=(conductor, COMPUTE_TASK_TOPIC, SCHEDULER_TOPIC),
            sends_to_servers=(COMPUTE_TOPIC,),
            creates_exchange=True,
        ),
        "scheduler": Role(serves=(SCHEDULER_TOPIC,), sends=(conductor,)),
        "api": Role(sends=(conductor, COMPUTE_TASK_TOPIC), sends_to_servers=(COMPUTE_TOPIC,)),
        "compute": Role(
            serves=(COMPUTE_TOPIC,), sends=(conductor, COMPUTE_TASK_TOPIC), per_host=True
        ),
        # A plain podium application's worker: it calls the conductor, and serves nothing.
        "worker": Role(sends=(conductor,)),
    }


#: The services ``--service`` knows (``compute`` goes per host: ``--compute-host``).
ROLES = ("conductor", "scheduler", "api", "compute", "worker")


@dataclass(frozen=True)
class Account:
    name: str
    service: str
    host: str | None
    permissions: Permissions


class Broker:
    """``rabbitmqctl``, run or (dry run) only printed."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        if not dry_run and shutil.which("rabbitmqctl") is None:
            raise click.ClickException(
                "rabbitmqctl is not on the PATH: run this on the broker's machine (as a user "
                "allowed to run rabbitmqctl), or print the commands with --dry-run"
            )

    def run(self, *args: str, secret: str | None = None) -> str:
        """Run ``rabbitmqctl args``; ``secret`` goes to its standard input, not its arguments."""
        if self.dry_run:
            shown = " ".join(_quoted(a) for a in args)
            click.echo(f"rabbitmqctl {shown}" + (' <<< "$PASSWORD"' if secret else ""))
            return ""
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args],
            input=secret or "",
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            problem = (done.stderr or done.stdout).strip().splitlines()
            raise click.ClickException(
                f"rabbitmqctl {args[0]} failed: {problem[-1] if problem else done.returncode}"
            )
        return done.stdout

    def names(self, what: str, column: str) -> set[str]:
        """The names of the broker's vhosts or users (none in a dry run)."""
        if self.dry_run:
            return set()
        rows = json.loads(self.run(f"list_{what}", "--formatter", "json") or "[]")
        return {str(row[column]) for row in rows}


def _quoted(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=" for c in arg) else f"'{arg}'"


@click.group()
def group() -> None:
    """RabbitMQ accounts restricted per service."""


@group.command()
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice([r for r in ROLES if r != "compute"]),
    help="a service type that gets an account (repeat)",
)
@click.option("--compute-host", "hosts", multiple=True, help="a compute host (repeat)")
@click.option("--vhost", default="/", show_default=True, help="the RabbitMQ vhost (made if new)")
@click.option(
    "--prefix", default="podium-", show_default=True, help="put before every account's name"
)
@click.option(
    "--broker",
    default="127.0.0.1:5672",
    show_default=True,
    help="HOST:PORT the services reach the broker at (for their URLs)",
)
@click.option("--tls", is_flag=True, help="the services' URLs are rabbits:// (AMQP over TLS)")
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("broker-accounts"),
    show_default=True,
    help="where each account's URL file goes (mode 600); read again on a later run",
)
@click.option("--exchange", default=DEFAULT_EXCHANGE, show_default=True, help="the topic exchange")
@click.option(
    "--conductor-topic",
    default="conductor",
    show_default=True,
    help="the conductor's topic (the services' conductor_topic setting)",
)
@click.option("--dry-run", is_flag=True, help="print the rabbitmqctl commands, change nothing")
def setup(
    services: tuple[str, ...],
    hosts: tuple[str, ...],
    vhost: str,
    prefix: str,
    broker: str,
    tls: bool,
    secrets_dir: Path,
    exchange: str,
    conductor_topic: str,
    dry_run: bool,
) -> None:
    """Create or update the services' broker accounts and their permissions.

    Run it again after adding a host: it keeps the passwords it wrote.
    """
    from podium.rpc._rabbit.accounts import permissions

    if not services and not hosts:
        raise click.UsageError("which accounts? --service NAME and/or --compute-host HOST")
    roles = _roles(conductor_topic)
    wanted: list[tuple[str, str | None]] = [(s, None) for s in dict.fromkeys(services)]
    wanted += [("compute", host) for host in dict.fromkeys(hosts)]
    accounts = []
    for service, host in wanted:
        name = f"{prefix}{service}" + (f".{host}" if host else "")
        accounts.append(
            Account(name, service, host, permissions(roles[service], name, host, exchange))
        )
    ctl = Broker(dry_run)
    if dry_run:
        click.echo("# each password goes on rabbitmqctl's standard input, never its arguments;")
        click.echo("# an account that exists gets change_password instead of add_user")
    if vhost not in ctl.names("vhosts", "name"):
        ctl.run("add_vhost", vhost)
    users = ctl.names("users", "user")
    scheme = "rabbits" if tls else "rabbit"
    for account in accounts:
        url_file = _url_file(secrets_dir, account)
        _set_up(ctl, account, vhost, users, url_file, f"{scheme}://{{}}@{broker}/")


def _url_file(secrets_dir: Path, account: Account) -> Path:
    return secrets_dir / f"{account.name}.url"


def _set_up(
    ctl: Broker, account: Account, vhost: str, users: set[str], url_file: Path, base: str
) -> None:
    """One account: made or its password set again, then its permissions, then its URL."""
    password = _known_password(url_file) or secrets.token_urlsafe(24)
    command = "change_password" if account.name in users else "add_user"
    ctl.run(command, account.name, secret=password)
    p = account.permissions
    ctl.run("set_permissions", "-p", vhost, account.name, p.configure, p.write, p.read)
    for exchange, (write, read) in p.topics.items():
        ctl.run("set_topic_permissions", "-p", vhost, account.name, exchange, write, read)
    where = f"{account.service}" + (f" on {account.host}" if account.host else "")
    if ctl.dry_run:
        click.echo(f"# {account.name}: the transport_url of {where} would go to {url_file}")
        return
    path = "" if vhost == "/" else quote(vhost, safe="")
    credentials = f"{quote(account.name, safe='')}:{quote(password, safe='')}"
    url = base.format(credentials) + f"{path}?routing=exchange"
    url_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(url_file, (url + "\n").encode(), 0o600)
    click.echo(f"{account.name}: transport_url of {where} in {url_file} (mode 600)")


def _known_password(url_file: Path) -> str | None:
    """The password an earlier run wrote for the account, kept so its services go on."""
    try:
        text = url_file.read_text().strip()
    except FileNotFoundError:
        return None
    hosts = TransportURL.parse(text).hosts
    return hosts[0].password if hosts else None
