"""Reading the authority of ``scheme://user:password@host:port,.../rest`` URLs, and masking it.

Shared by ``podium.rpc`` (transport URLs) and ``podium.db`` (database URLs),
which do not import each other; this module imports nothing of podium's.

A password may hold any character once percent-encoded. Unencoded, some
characters make a URL ambiguous: a ``/``, ``?`` or ``#`` ends the host list
early (the rest of the password then shows up as a path), and a ``,`` splits a
host in two. A URL is read only when it cannot be read two ways; otherwise
:class:`UnreadableURL` says what is wrong and where, and never quotes the URL,
since any part of it may be a piece of the password.

Options of the query that hold a secret (a key's passphrase) or say where one
lies (a private key file) are masked too: see :func:`is_secret_option`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HIDDEN = "***"
#: Options whose value is a password, or the path of a private key.
_SECRET_OPTION = re.compile(r"[^=&#]*password|sslkey|ssl_key|keyfile", re.IGNORECASE)
_OPTION = re.compile(r"(?<=[?&])([^=&#]*)=([^&#]*)")


def is_secret_option(name: str) -> bool:
    """Whether the value of the URL option ``name`` must never be shown."""
    return _SECRET_OPTION.fullmatch(name) is not None


class UnreadableURL(ValueError):
    """A URL that cannot be split safely; the text names no part of the URL."""


@dataclass(frozen=True)
class Authority:
    """One ``[user[:password]@]host[:port]`` of the host list, still percent-encoded."""

    userinfo: str | None
    hostport: str


@dataclass(frozen=True)
class SplitURL:
    scheme: str
    hosts: tuple[Authority, ...]
    tail: str
    """Everything after the host list (path, query, fragment), as written."""


def split_url(url: str) -> SplitURL:
    """``url`` cut into scheme, hosts and the rest; :class:`UnreadableURL` if ambiguous."""
    if not isinstance(url, str):
        raise UnreadableURL(f"a URL must be a string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnreadableURL("it does not start with scheme://")
    if not _SCHEME.match(scheme):
        raise UnreadableURL("the text before :// is not a scheme name")
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    if "@" in tail:
        # Either a password holds an unencoded '/', '?' or '#' (and this is its
        # '@'), or the path or options hold an '@': the two cannot be told apart.
        raise UnreadableURL(
            "an '@' follows the host list: percent-encode '/', '?', '#' in a user name "
            "or password (%2F, %3F, %23) and an '@' in the path or options (%40)"
        )
    hosts: list[Authority] = []
    for chunk in netloc.split(","):
        if not chunk:
            continue
        if "@" in chunk:
            # The last '@' ends the credentials: a host name never holds one.
            userinfo, _, hostport = chunk.rpartition("@")
            hosts.append(Authority(userinfo, hostport))
        else:
            hosts.append(Authority(None, chunk))
    with_credentials = [i for i, host in enumerate(hosts, 1) if host.userinfo is not None]
    if with_credentials and len(with_credentials) != len(hosts):
        # A ',' in a password splits its host in two, one half without an '@'.
        bare = next(i for i, host in enumerate(hosts, 1) if host.userinfo is None)
        raise UnreadableURL(
            f"host {bare} has no user name while host {with_credentials[0]} has one: "
            "give every host its credentials, and write a ',' in a password as %2C"
        )
    return SplitURL(scheme, tuple(hosts), tail)


def mask_url(url: str) -> str:
    """``url`` with every password (and secret option) replaced by ``***``, for messages and logs.

    A URL that cannot be split safely keeps only its scheme (``rabbit://***``),
    or nothing (``***``) when even that is unclear.
    """
    try:
        split = split_url(url)
    except UnreadableURL:
        scheme, sep, _ = url.partition("://") if isinstance(url, str) else ("", "", "")
        return f"{scheme}://{_HIDDEN}" if sep and _SCHEME.match(scheme) else _HIDDEN
    hosts = []
    for host in split.hosts:
        if host.userinfo is None:
            hosts.append(host.hostport)
            continue
        user, colon, _ = host.userinfo.partition(":")
        hosts.append(f"{user}:{_HIDDEN}@{host.hostport}" if colon else f"{user}@{host.hostport}")
    tail = _OPTION.sub(_mask_option, split.tail)
    return f"{split.scheme}://{','.join(hosts)}{tail}"


def _mask_option(option: re.Match[str]) -> str:
    name = option.group(1)
    return f"{name}={_HIDDEN}" if is_secret_option(name) else option.group(0)
