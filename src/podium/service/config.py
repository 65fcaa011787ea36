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
import json
import os
import re
import socket
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from podium._urls import mask_url
from podium.config import CONFIG_ENV, ConfigError, read_config_file

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

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

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


C = TypeVar("C", bound="ServiceConfig")


@dataclass(frozen=True)
class LoadedConfig(Generic[C]):
    """A loaded configuration and, for each setting, where its value came from."""

    config: C
    origins: Mapping[str, Origin]
    file: Path | None = None


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


# -- the checks of single settings (typed values in, ValueError out) ---------


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"not a log level (one of {', '.join(LOG_LEVELS)})")
    return level


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _transport_url(value: str) -> str:
    """A transport URL that reads one way and names a transport podium has; "" is none."""
    if not value.strip():
        return ""
    from podium.exceptions import InvalidTransportURL
    from podium.rpc._transport import SCHEMES, TransportURL

    try:
        parsed = TransportURL.parse(value.strip())
    except InvalidTransportURL as error:
        raise ValueError(str(error)) from None
    if parsed.scheme not in SCHEMES:
        close = difflib.get_close_matches(parsed.scheme, SCHEMES, n=1)
        hint = f"did you mean {close[0]}://?" if close else "use rabbit://USER:PASS@HOST:5672/"
        raise ValueError(f"unknown transport {parsed.scheme!r} ({hint})")
    return value.strip()


_TOPIC = re.compile(r"^[A-Za-z0-9_.-]+$")
_LEVEL = re.compile(r"^(?:auto|\d+\.\d+|[a-z][a-z0-9-]*)$")


def _upgrade_levels(value: dict[str, str]) -> dict[str, str]:
    """topic -> ``auto``, a version ``X.Y`` or a release name (lower case)."""
    levels = {}
    for topic, level in value.items():
        if not _TOPIC.match(topic):
            raise ValueError(f"{topic!r} is not a topic name")
        level = level.strip()
        if not _LEVEL.match(level):
            raise ValueError(
                f"{topic} = {level!r}: a level is auto, a version (1.0) or a release name"
            )
        levels[topic] = level
    return levels


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


def _database_url(value: str | None) -> str | None:
    """A database URL SQLAlchemy reads, with its driver installed; "" is none."""
    if value is None or not value.strip():
        return None
    # The engine module is the one place that knows database URLs; it imports
    # SQLAlchemy, which only a process given a database pays for.
    from podium.db.engine import check_url
    from podium.exceptions import InvalidDatabaseURL

    try:
        check_url(value.strip())
    except InvalidDatabaseURL as error:
        raise ValueError(str(error)) from None
    return value.strip()


@dataclass(frozen=True)
class ServiceConfig:
    # memory:// is private to one process: the default of a config built in
    # Python (AllInOne, tests). A command loaded with load() has no default
    # bus ("" until a source gives one): a stand-alone service would otherwise
    # be "ready" on a bus no other process can reach.
    transport_url: str = setting(
        "memory://",
        help="the message bus: rabbit://USER:PASS@HOST:5672/VHOST",
        check=_transport_url,
        secret="url",
    )
    database_url: str | None = setting(
        None,
        help="the conductor's database: postgresql+psycopg://..., mysql+pymysql://..., "
        "sqlite:///PATH",
        check=_database_url,
        secret="url",
    )
    host: str = setting(
        help="this service's host name", default_factory=socket.gethostname, check=_not_blank
    )
    # Run object methods in this process instead of through the conductor.
    use_local: bool = setting(False, help="run object methods here, not on the conductor")
    conductor_topic: str = setting("conductor", help="the conductor's topic", check=_not_blank)
    rpc_timeout: float = setting(60.0, help="seconds a call waits for its reply", gt=0)
    rpc_workers: int = setting(8, help="calls a service handles at once", ge=1)
    log_level: str = setting("INFO", help="DEBUG, INFO, WARNING or ERROR", check=_log_level)
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
        check=_upgrade_levels,
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
                values[name] = _validate(own[name], _resolved_type(cls, name), value, origin)
            except ValueError as error:
                problems.append(f"{_written(own[name], value, origin)}: {error}")
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


def _validate(spec: Field[Any], annotation: Any, value: Any, origin: Origin) -> Any:
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
    if check is not None:
        typed = check(typed)
    if typed == "" and type(None) in typing.get_args(annotation):
        return None
    return typed


def _written(spec: Field[Any], value: Any, origin: Origin) -> str:
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
