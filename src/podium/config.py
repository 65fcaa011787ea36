"""The configuration file: one TOML file for every podium command on a host.

Found from ``--config`` or ``$PODIUM_CONFIG``; there is no default location,
so a command never reads a file nobody named. Top-level keys are service
settings (``transport_url = "rabbit://..."``); tables hold the settings of one
part (``[client]`` for the client commands). Environment variables
(``PODIUM_<NAME>``) override the file, and command-line flags override both.

This module stays cheap to import: the client commands read it too.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from podium.exceptions import PodiumError

__all__ = ["CONFIG_ENV", "ConfigError", "config_file", "read_config_file"]

CONFIG_ENV = "PODIUM_CONFIG"


class ConfigError(PodiumError):
    """A configuration value, file or variable that cannot be used; the text says which."""


def config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file named by ``explicit`` or ``$PODIUM_CONFIG``, or None."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    named = os.environ.get(CONFIG_ENV, "")
    return Path(named) if named else None


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's TOML as a dict; a missing, unreadable or malformed file is a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory") from None
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None
