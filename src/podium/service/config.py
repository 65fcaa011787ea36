"""Service configuration: a typed record, and where each of its values came from.

A command's settings come from three sources, each overriding the one before:

1. the configuration file (``--config`` / ``PODIUM_CONFIG``, TOML): top-level
   keys are settings, tables belong to other parts (``[client]``);
2. environment variables, ``PODIUM_<NAME>``;
3. the command's flags.

:meth:`ServiceConfig.load` merges them and checks every value once, at
start-up (types and bounds with pydantic, then each setting's own check): a
wrong value is a :class:`~podium.config.ConfigError` whose one line says what
is wrong and where it was written (``PODIUM_RPC_TIMEOUT=abc (environment): not
a number``). Unknown keys of the file are errors too, with a did-you-mean.

An application adds settings by subclassing :class:`ServiceConfig` (the cloud's
``CloudConfig``); a file shared by every service of a host may hold the
settings of any subclass this process has imported.

Cheap to import: pydantic is imported by :meth:`ServiceConfig.load` only.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import socket
import typing
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from podium.config import CONFIG_ENV, ConfigError, read_config_file

from ._setting import Origin, setting, show_value, validate, written
from ._setting_checks import database_url, log_level, not_blank, transport_url, upgrade_levels

if typing.TYPE_CHECKING:
    from podium.rpc import MessageSigning

__all__ = [
    "ENV_PREFIX",
    "KNOWN_TABLES",
    "LoadedConfig",
    "Origin",
    "ServiceConfig",
    "command_sources",
    "setting",
    "show_value",
]

ENV_PREFIX = "PODIUM_"
#: Tables of the configuration file that are not service settings, and whose
#: they are. Another part of podium that reads the file adds its table here.
KNOWN_TABLES: dict[str, str] = {"client": "the client commands (api_url, token, timeout)"}

C = TypeVar("C", bound="ServiceConfig")


@dataclass(frozen=True)
class LoadedConfig(Generic[C]):
    """A loaded configuration and, for each setting, where its value came from."""

    config: C
    origins: Mapping[str, Origin]
    file: Path | None = None


@dataclass(frozen=True)
class ServiceConfig:
    # memory:// is private to one process: the default of a config built in
    # Python (AllInOne, tests). A command loaded with load() has no default
    # bus ("" until a source gives one): a stand-alone service would otherwise
    # be "ready" on a bus no other process can reach.
    transport_url: str = setting(
        "memory://",
        help="the message bus: rabbit://USER:PASS@HOST:5672/VHOST",
        check=transport_url,
        secret="url",
    )
    database_url: str | None = setting(
        None,
        help="the conductor's database: postgresql+psycopg://..., mysql+pymysql://..., "
        "sqlite:///PATH",
        check=database_url,
        secret="url",
    )
    host: str = setting(
        help="this service's host name", default_factory=socket.gethostname, check=not_blank
    )
    # Run object methods in this process instead of through the conductor.
    use_local: bool = setting(False, help="run object methods here, not on the conductor")
    conductor_topic: str = setting("conductor", help="the conductor's topic", check=not_blank)
    rpc_timeout: float = setting(60.0, help="seconds a call waits for its reply", gt=0)
    rpc_workers: int = setting(8, help="calls a service handles at once", ge=1)
    log_level: str = setting("INFO", help="DEBUG, INFO, WARNING or ERROR", check=log_level)
    connect_timeout: float = setting(
        15.0,
        help="seconds a service tries to reach the broker at start-up before it gives up "
        "(once it ran, a lost broker is retried for ever)",
        gt=0,
    )
    # A fresh table per config: setting() passes default_factory to field().
    upgrade_levels: dict[str, str] = setting(  # noqa: RUF009
        help="the RPC version each topic may be sent, during an upgrade: a [upgrade_levels] "
        'table (or TOPIC=LEVEL,... in a variable) of topic = "auto" (the default: what its '
        'oldest live service speaks), a release name, or a version ("1.0")',
        default_factory=dict,
        check=upgrade_levels,
    )
    inbox_retention: int = setting(
        3600,
        help="seconds the conductor keeps request records (0: never prune them there, "
        "use `podium db prune-inbox`)",
        ge=0,
    )
    key_file: str | None = setting(
        None,
        help="this service's private signing key (`podium keys create`); its messages go "
        "out signed as SERVICE.HOST. Empty: unsigned",
        check=str.strip,
    )
    keys_dir: str | None = setting(
        None,
        help="the directory of public keys (SERVICE.HOST.pub) whose signatures this service "
        "checks on what it receives. Empty: no checks",
        check=str.strip,
    )
    require_signed: bool = setting(
        False,
        help="refuse requests without a good signature from a key in keys_dir (false: "
        "accept and count unsigned ones, for an upgrade)",
    )
    signature_window: float = setting(
        60.0,
        help="seconds a signed request's send time may differ from this host's clock",
        gt=0,
    )
    policy_file: str | None = setting(
        None,
        help="the conductor's policy overrides (TOML, rule name = rule); read at start-up. "
        "Empty: the applications' default rules",
        check=str.strip,
    )

    #: Settings without a default for a command: load() gives them this value
    #: when no source sets them.
    COMMAND_DEFAULTS: ClassVar[Mapping[str, Any]] = {"transport_url": ""}

    def message_signing(self, service: str) -> MessageSigning | None:
        """What this ``service`` (``"compute"``, ``"conductor"``...) signs with and checks.

        For :func:`podium.rpc.get_transport`'s ``signing``; None when neither
        ``key_file`` nor ``keys_dir`` is set. A key file others may read, a
        missing directory or ``require_signed`` without ``keys_dir`` is a
        :class:`~podium.config.ConfigError`.
        """
        if self.key_file is None and self.keys_dir is None:
            if self.require_signed:
                raise ConfigError("require_signed = true needs keys_dir (the keys to check)")
            return None
        from podium.rpc import KeyRing, MessageSigning, Sender, SigningKey

        try:
            key = (
                SigningKey.load(self.key_file, Sender(service, self.host))
                if self.key_file is not None
                else None
            )
            keys = KeyRing(self.keys_dir) if self.keys_dir is not None else None
            return MessageSigning(
                key, keys, require_signed=self.require_signed, window=self.signature_window
            )
        except ValueError as error:
            raise ConfigError(f"message signing: {error}") from None

    @classmethod
    def load(
        cls,
        *,
        file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        flags: Mapping[str, tuple[str, Any]] | None = None,
    ) -> Self:
        """The settings from ``file``, then ``environ``, then ``flags``, checked.

        ``flags``: setting name -> (the flag as typed, e.g. ``--workers``, its
        value); a value of None is a flag not given. ``environ`` defaults to
        ``os.environ``. :class:`~podium.config.ConfigError` names every wrong
        value, unknown key or unreadable file, and where it was.
        """
        return cls.load_with_origins(file=file, environ=environ, flags=flags).config

    @classmethod
    def load_with_origins(
        cls,
        *,
        file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        flags: Mapping[str, tuple[str, Any]] | None = None,
    ) -> LoadedConfig[Self]:
        """As :meth:`load`, with where each value came from."""
        env = os.environ if environ is None else environ
        own = {f.name: f for f in fields(cls)}
        given: dict[str, tuple[Any, Origin]] = {}
        problems: list[str] = []
        if file is not None:
            document = read_config_file(file)
            problems += _unknown_keys(document, file, set(own) | _all_setting_names())
            for name, value in document.items():
                if name in own:
                    given[name] = (value, Origin("file", str(file)))
        for name in own:
            variable = ENV_PREFIX + name.upper()
            if variable in env:
                given[name] = (env[variable], Origin("env", variable))
        for name, (flag, value) in (flags or {}).items():
            if name not in own:
                raise TypeError(f"{cls.__name__} has no setting {name!r} (flag {flag})")
            if value is not None:
                given[name] = (value, Origin("flag", flag))
        values: dict[str, Any] = {}
        for name, (value, origin) in given.items():
            try:
                values[name] = validate(own[name], _resolved_type(cls, name), value, origin)
            except ValueError as error:
                problems.append(f"{written(own[name], value, origin)}: {error}")
        if problems:
            raise ConfigError("; ".join(problems))
        origins = {name: given[name][1] if name in given else Origin("default") for name in own}
        defaults = {
            name: value
            for name, value in cls.COMMAND_DEFAULTS.items()
            if name in own and name not in values
        }
        return LoadedConfig(replace(cls(), **defaults, **values), origins, file)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """The settings of the running command, or of ``PODIUM_CONFIG`` and ``environ``.

        For code handed no configuration that needs the process's settings (an
        application's conductor endpoints): inside :func:`command_sources`, the
        file, environment and flags the command was given (its flags of the
        settings this class has); elsewhere, the file named by
        ``PODIUM_CONFIG`` and the environment. Then ``overrides`` (None: not
        given).
        """
        sources = _command_sources.get()
        if sources is not None and environ is None:
            file, env, flags = sources
        else:
            env = os.environ if environ is None else environ
            named = env.get(CONFIG_ENV, "")
            file, flags = (Path(named) if named else None), {}
        own = {spec.name for spec in fields(cls)}
        chosen = {name: flag for name, flag in flags.items() if name in own}
        chosen.update({name: (name, value) for name, value in overrides.items()})
        return cls.load(file=file, environ=env, flags=chosen)


_Sources = tuple[Path | None, Mapping[str, str], Mapping[str, tuple[str, Any]]]
_command_sources: contextvars.ContextVar[_Sources | None] = contextvars.ContextVar(
    "podium_command_sources", default=None
)


@contextmanager
def command_sources(
    file: Path | None, environ: Mapping[str, str], flags: Mapping[str, tuple[str, Any]]
) -> Iterator[None]:
    """Within the block, :meth:`ServiceConfig.from_env` reads these sources.

    A command wraps the code it hands no configuration (an application's
    endpoints, built by the framework's conductor) so that it reads the same
    file (``--config`` included), environment and flags as the command.
    """
    token = _command_sources.set((file, environ, flags))
    try:
        yield
    finally:
        _command_sources.reset(token)


def _subclasses(cls: type[ServiceConfig]) -> Iterable[type[ServiceConfig]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _all_setting_names() -> set[str]:
    """Every setting of ServiceConfig and of each subclass imported in this process."""
    return {spec.name for cls in _subclasses(ServiceConfig) for spec in fields(cls)}


def _unknown_keys(document: Mapping[str, Any], path: Path, known: set[str]) -> list[str]:
    problems = []
    for key, value in document.items():
        if key in known:
            continue
        if key in KNOWN_TABLES:
            if not isinstance(value, dict):
                problems.append(f"{key} in {path} must be a table ([{key}]), not a value")
            continue
        if isinstance(value, dict):
            close = difflib.get_close_matches(key, KNOWN_TABLES, n=1)
            hint = (
                f"did you mean [{close[0]}]?"
                if close
                else "known tables: " + ", ".join(f"[{name}]" for name in KNOWN_TABLES)
            )
            problems.append(f"unknown table [{key}] in {path} ({hint})")
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown setting {key!r} in {path}{hint}")
    return problems


def _resolved_type(cls: type[ServiceConfig], name: str) -> Any:
    # The annotations are strings (postponed evaluation): resolve them once.
    return typing.get_type_hints(cls)[name]
