"""``podium keys``: the signing keys of the services (docs/security.md).

``podium keys create --service compute --host NAME`` makes a service
process's Ed25519 key pair: the private key in a file only its owner can
read, for that process (``key_file``), and the public key in the keys
directory (``keys_dir``) the services that check signatures read.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from podium.config_cli import command_flags, import_app_settings, load_settings
from podium.rpc._signing import PUBLIC_SUFFIX, Sender, SigningKey
from podium.service.config import ServiceConfig

__all__ = ["group", "write_atomically"]


@click.group()
def group() -> None:
    """Service signing keys: make them, see which are trusted."""


@group.command()
@click.option("--service", required=True, help="the service type: compute, conductor, api, ...")
@click.option("--host", required=True, help="the host the service runs on (its `host` setting)")
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the public key goes (the verifiers' keys_dir) [keys_dir]",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="where the private key goes [key_file, else ./SERVICE.HOST.key]",
)
@click.option("--force", is_flag=True, help="replace keys that exist")
def create(
    service: str, host: str, keys_dir: Path | None, key_file: Path | None, force: bool
) -> None:
    """Make a service's key pair: private (mode 600) and public (SERVICE.HOST.pub)."""
    import_app_settings()
    config = load_settings(
        ServiceConfig,
        command_flags(
            keys_dir=("--keys-dir", str(keys_dir) if keys_dir else None),
            key_file=("--key-file", str(key_file) if key_file else None),
        ),
    ).config
    try:
        sender = Sender(service, host)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if config.keys_dir is None:
        raise click.UsageError("say where the public key goes: --keys-dir DIR (or keys_dir)")
    public_dir = Path(config.keys_dir)
    private = Path(config.key_file) if config.key_file else Path(f"{sender.name}.key")
    public = public_dir / f"{sender.name}{PUBLIC_SUFFIX}"
    for path in (private, public):
        if path.exists() and not force:
            raise click.ClickException(f"{path} exists: --force replaces it")
    if private.resolve().parent == public_dir.resolve():
        # Whoever reads the keys directory (every verifier) would read it too.
        raise click.ClickException(
            f"the private key must not go in the keys directory {public_dir}: choose --key-file"
        )
    key = SigningKey.generate(sender)
    public_dir.mkdir(parents=True, exist_ok=True)
    private.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(private, key.private_pem(), 0o600)
    write_atomically(public, key.public_pem(), 0o644)
    click.echo(f"private key {private} (mode 600): set key_file on {sender.host}'s {service}")
    click.echo(f"public key {public}: every service with keys_dir = {public_dir} trusts it")


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """``data`` in ``path`` with ``mode`` from its first byte, replacing it whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL and the mode at creation: the private key is never readable by others.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, mode)  # the umask may have removed bits
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@group.command(name="list")
@click.option("--keys-dir", type=click.Path(file_okay=False, path_type=Path), help="[keys_dir]")
def list_keys(keys_dir: Path | None) -> None:
    """The services whose signatures a keys directory trusts."""
    import_app_settings()
    config = load_settings(
        ServiceConfig, command_flags(keys_dir=("--keys-dir", str(keys_dir) if keys_dir else None))
    ).config
    if config.keys_dir is None:
        raise click.UsageError("which keys directory? --keys-dir DIR (or keys_dir)")
    directory = Path(config.keys_dir)
    if not directory.is_dir():
        raise click.ClickException(f"{directory} is not a directory")
    for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")):
        name = path.name[: -len(PUBLIC_SUFFIX)]
        try:
            Sender.parse(name)
        except ValueError:
            click.echo(f"{name}\t(ignored: not SERVICE.HOST)")
            continue
        click.echo(name)
