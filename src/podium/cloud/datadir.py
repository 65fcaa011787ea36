"""The all-in-one's data directory: its database, its API tokens, and a client file.

Light on purpose: the client commands read the client file to find a running
all-in-one, and must not import the server stack to do so.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

__all__ = [
    "CLIENT_CONFIG_NAME",
    "default_data_dir",
    "ensure_tokens",
    "read_tokens",
    "write_client_config",
]

#: A configuration file holding only a ``[client]`` table: the API URL and a token.
CLIENT_CONFIG_NAME = "client.toml"


def default_data_dir() -> Path:
    """The user's data directory for podium (``~/.local/share/podium`` on Linux)."""
    import platformdirs

    return platformdirs.user_data_path("podium", appauthor=False)


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only, never half-written."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def ensure_tokens(data_dir: Path) -> Path:
    """A tokens file with an admin and a member token, made once."""
    path = data_dir / "tokens"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "# podium all-in-one API tokens: TOKEN=user:project:roles",
            f"{secrets.token_urlsafe(24)}=admin:admin:admin",
            f"{secrets.token_urlsafe(24)}=demo:demo:member",
        ]
        _write_private(path, "\n".join(lines) + "\n")
    return path


def read_tokens(path: Path) -> dict[str, str]:
    """user -> token, from a tokens file."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            token, _, rest = line.partition("=")
            found.setdefault(rest.split(":")[0], token)
    return found


def write_client_config(data_dir: Path, api_url: str, token: str) -> Path:
    """Write the client file that ``podium server ...`` reads to reach this all-in-one."""
    path = data_dir / CLIENT_CONFIG_NAME
    # A JSON string is a valid TOML basic string.
    text = (
        "# written by `podium all-in-one`: where its API listens, and its admin token\n"
        f"[client]\napi_url = {json.dumps(api_url)}\ntoken = {json.dumps(token)}\n"
    )
    _write_private(path, text)
    return path
