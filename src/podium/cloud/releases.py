"""The reference cloud's releases: what each one's services speak.

A service reports its release's ``service_version`` in its Service row. With
``upgrade_levels`` at ``auto``, a client caps what it sends to a topic at what
the oldest live service of that topic speaks, looked up here, and backports
the objects it sends to that release's versions (its manifest) so the
receiver needs no round trip to a conductor to read them.

Add a release here when a service version is bumped; its ``objects`` is the
object manifest of that release (a test checks the newest one against the
registry, and its RPC versions against the API classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from podium.exceptions import PodiumError
from podium.objects.registry import version_tuple

__all__ = [
    "RELEASES",
    "Release",
    "UnknownRelease",
    "check_upgrade_levels",
    "newest_release",
    "release_for",
    "release_named",
    "release_speaking",
]


class UnknownRelease(PodiumError):
    """An upgrade level names no release, or a version no release of the topic has."""


@dataclass(frozen=True)
class Release:
    name: str
    #: What its services report in their Service rows.
    service_version: int
    #: topic -> the RPC API version its services serve there.
    rpc: Mapping[str, str]
    #: object name -> the version its services know.
    objects: Mapping[str, str]


_ACACIA_OBJECTS = {
    "ComputeNode": "1.0",
    "ComputeNodeList": "1.0",
    "Flavor": "1.0",
    "FlavorList": "1.0",
    "Instance": "1.2",
    "InstanceFault": "1.0",
    "InstanceList": "1.2",
    "Service": "1.0",
    "ServiceList": "1.0",
}

#: Oldest first.
RELEASES: tuple[Release, ...] = (
    Release(
        "acacia",
        1,
        {"compute": "1.0", "scheduler": "1.0", "compute_task": "1.0"},
        _ACACIA_OBJECTS,
    ),
    Release(
        "birch",
        2,
        # compute 1.1: reboot_instance(reboot_type), get_console_output
        {"compute": "1.1", "scheduler": "1.0", "compute_task": "1.0"},
        {
            **_ACACIA_OBJECTS,
            "Flavor": "1.1",
            "FlavorList": "1.1",
            "Instance": "1.3",
            "InstanceList": "1.3",
            "Service": "1.1",
            "ServiceList": "1.1",
        },
    ),
)


def newest_release() -> Release:
    return RELEASES[-1]


def release_for(service_version: int) -> Release:
    """The release whose services report ``service_version`` (the oldest one for older ones)."""
    found = RELEASES[0]
    for release in RELEASES:
        if release.service_version <= service_version:
            found = release
    return found


def release_named(name: str) -> Release:
    for release in RELEASES:
        if release.name == name:
            return release
    known = ", ".join(release.name for release in RELEASES)
    raise UnknownRelease(f"no release is named {name!r} (releases: {known})")


def release_speaking(topic: str, version: str) -> Release:
    """The newest release whose ``topic`` API is not newer than ``version`` (same major)."""
    wanted = version_tuple(version)
    found = None
    for release in RELEASES:
        have = version_tuple(release.rpc[topic])
        if have[0] == wanted[0] and have <= wanted:
            found = release
    if found is None:
        versions = ", ".join(sorted({release.rpc[topic] for release in RELEASES}))
        raise UnknownRelease(f"no release speaks {topic} {version} (versions: {versions})")
    return found


def check_upgrade_levels(levels: Mapping[str, str]) -> None:
    """Refuse an ``upgrade_levels`` table naming an unknown topic, release or version."""
    topics = RELEASES[0].rpc
    for topic, level in levels.items():
        if topic not in topics:
            raise UnknownRelease(
                f"upgrade_levels: no RPC API has the topic {topic!r} "
                f"(topics: {', '.join(sorted(topics))})"
            )
        if level == "auto":
            continue
        if level[:1].isdigit():
            release_speaking(topic, level)
        else:
            release_named(level)
