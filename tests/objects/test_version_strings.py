"""One reading of version strings for objects and RPC APIs, each caller with its own error."""

from __future__ import annotations

import pytest

from podium._versions import parse_version
from podium.exceptions import InvalidTarget, MalformedMessage, ObjectFormatError
from podium.objects.registry import version_tuple
from podium.rpc import Target
from podium.rpc import _codec as codec


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("1.0", (1, 0)), ("1.10", (1, 10)), ("2.3.4", (2, 3, 4)), ("0.0", (0, 0))],
)
def test_versions_are_read_as_int_tuples(text: str, parsed: tuple[int, ...]) -> None:
    assert parse_version(text) == parsed
    assert version_tuple(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "1", "1.", ".1", "1.2.3.4", "1.x", " 1.0", "+1.0", "1_0.0", "\u0661.0", "1." + "0" * 40],
)
def test_malformed_versions_are_refused(text: str) -> None:
    assert parse_version(text) is None
    with pytest.raises(ObjectFormatError, match="malformed object version"):
        version_tuple(text)


def test_non_strings_are_not_versions() -> None:
    assert parse_version(1.0) is None
    assert parse_version(None) is None


def test_an_rpc_message_version_may_omit_the_minor() -> None:
    # oslo.messaging reads a message's "1" as 1.0 (and "1.3" as 1.3.0).
    assert parse_version("1", min_parts=1) == (1,)
    assert codec.version_is_compatible("1.3", "1")
    assert codec.version_is_compatible("1.0", "1")
    assert not codec.version_is_compatible("2.0", "1")
    assert codec.version_is_compatible("1", "1.0")


@pytest.mark.parametrize("text", ["one", "1.x", "", "1.2.3.4", 2])
def test_a_malformed_message_version_is_a_malformed_message(text: object) -> None:
    with pytest.raises(MalformedMessage, match="bad version string"):
        codec.version_is_compatible("1.0", text)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1", "one", "1.2.3.4", "1.0 "])
def test_a_target_version_needs_major_and_minor(text: str) -> None:
    with pytest.raises(InvalidTarget, match=r"must look like 'major\.minor'"):
        Target(topic="t", version=text)
    assert Target(topic="t", version="1.2.3").version == "1.2.3"
