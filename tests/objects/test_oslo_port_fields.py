"""Issue 17: what oslo.versionedobjects' fields and exceptions offer, podium offers too.

Each check runs the same inputs through oslo's class of the same name and
compares, so "ports with an import change" is measured, not assumed.
"""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

import pytest
from oslo_versionedobjects import exception as oslo_exc

from podium import exceptions as exc
from podium.rpc import _codec as codec

# -- gap 8: exceptions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("ObjectActionError", {"action": "save", "reason": "gone"}),
        ("OrphanedObjectError", {"method": "save", "objtype": "Instance"}),
        ("ReadOnlyFieldError", {"field": "uuid"}),
        ("UnsupportedObjectError", {"objtype": "Widget"}),
    ],
)
def test_keyword_construction_formats_as_oslo(name: str, kwargs: dict[str, Any]) -> None:
    ours = getattr(exc, name)(**kwargs)
    theirs = getattr(oslo_exc, name)(**kwargs)
    assert str(ours) == str(theirs)
    assert ours.format_message() == theirs.format_message()
    assert ours.kwargs == theirs.kwargs == {**kwargs, "code": 500}


def test_code_and_message_as_oslo() -> None:
    ours = exc.ObjectActionError(action="a", reason="r", code=123)
    theirs = oslo_exc.ObjectActionError(action="a", reason="r", code=123)
    assert ours.kwargs == theirs.kwargs == {"action": "a", "reason": "r", "code": 123}
    # An explicit message wins over msg_fmt, and keeps the kwargs.
    ours = exc.ObjectActionError("plain text", action="a")
    theirs = oslo_exc.ObjectActionError("plain text", action="a")
    assert str(ours) == str(theirs) == ours.format_message() == "plain text"
    assert ours.kwargs == theirs.kwargs


def test_root_without_arguments_is_oslos_unknown_exception() -> None:
    ours, theirs = exc.PodiumError(), oslo_exc.VersionedObjectsException()
    assert str(ours) == str(theirs) == "An unknown exception occurred."
    assert ours.kwargs == theirs.kwargs == {"code": 500}


def test_missing_format_argument_falls_back_to_the_format(caplog: pytest.LogCaptureFixture) -> None:
    ours = exc.ObjectActionError(action="only")
    assert str(ours) == exc.ObjectActionError.msg_fmt
    assert "ObjectActionError" in caplog.text and "only" not in caplog.text.split("arguments")[0]


def test_podium_constructors_keep_their_messages() -> None:
    # Every podium raise passes one text positionally; it is the message, unchanged.
    for klass in (exc.PodiumError, exc.ObjectFieldError, exc.NotFound, exc.MessagingTimeout):
        error = klass("as written")
        assert str(error) == error.format_message() == "as written"
        assert error.args == ("as written",)
        assert error.kwargs == {"code": 500}
    assert str(exc.PodiumError("a", "b")) == str(Exception("a", "b"))
    iov = exc.IncompatibleObjectVersion("Instance", "1.9", "1.3")
    assert str(iov) == "Version 1.9 of Instance is not supported; newest known is 1.3"
    assert iov.kwargs == {"objname": "Instance", "objver": "1.9", "supported": "1.3", "code": 500}
    # oslo's keyword form gives the same object.
    by_name = exc.IncompatibleObjectVersion(objname="Instance", objver="1.9", supported="1.3")
    assert (str(by_name), by_name.kwargs) == (str(iov), iov.kwargs)
    remote = exc.RemoteError("KeyError", "'x'", ["tb1\n", "tb2\n"])
    assert (remote.exc_type, remote.value, remote.traceback) == ("KeyError", "'x'", "tb1\ntb2\n")
    assert remote.format_message() == str(remote)


@pytest.mark.parametrize(
    "error",
    [
        exc.NotFound("gone"),
        exc.ObjectActionError(action="a", reason="r", code=409),
        exc.IncompatibleObjectVersion("Instance", "1.9", "1.3"),
        exc.IncompatibleObjectVersion("Instance", "1.9"),
    ],
    ids=repr,
)
def test_pickle_and_rpc_rebuild_keep_message_and_kwargs(error: exc.PodiumError) -> None:
    for rebuilt in (
        pickle.loads(pickle.dumps(error)),
        codec.deserialize_remote_exception(
            codec.serialize_remote_exception(error), ["podium.exceptions"]
        ),
    ):
        assert type(rebuilt) is type(error)
        assert str(rebuilt).split("\n")[0] == str(error).split("\n")[0]
        assert rebuilt.kwargs == error.kwargs
    if isinstance(error, exc.IncompatibleObjectVersion):
        assert (rebuilt.objname, rebuilt.objver, rebuilt.supported) == (  # type: ignore[attr-defined]
            error.objname,
            error.objver,
            error.supported,
        )


def test_remote_failure_carries_kwargs_as_oslo_messaging_does() -> None:
    # oslo.messaging imports eventlet, whose import-time deprecation warning
    # the project's filters do not cover (tests/rpc/conftest.py does the same).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_messaging._drivers import common as oslo_common

    try:
        raise exc.ObjectActionError(action="a", reason="r")
    except exc.ObjectActionError as error:
        ours = json.loads(codec.serialize_remote_exception(error))
        theirs = json.loads(
            oslo_common.serialize_remote_exception((type(error), error, error.__traceback__))
        )
    assert ours["kwargs"] == theirs["kwargs"] == {"action": "a", "reason": "r", "code": 500}
