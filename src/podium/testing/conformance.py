"""The behaviour every podium transport shows, as a suite a driver's own tests can run.

Subclass :class:`TransportConformance` in a test module and give it a
``transport`` fixture yielding a :class:`~podium.rpc.Transport` on the driver
under test (a fresh one per test, on a bus nobody else uses)::

    import pytest
    from podium.rpc import Transport, TransportURL
    from podium.testing.conformance import TransportConformance

    class TestMyDriver(TransportConformance):
        @pytest.fixture
        def transport(self):
            url = TransportURL.parse("mybus://localhost/")
            with Transport(MyDriver(url), url) as transport:
                yield transport

podium runs it on ``memory://``, ``rabbit://`` and ``rabbit://?reply=queue``,
together with :class:`podium.testing.outages.OutageConformance`, what fails and
what recovers while the broker is away.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from podium.context import RequestContext, current_request_id
from podium.exceptions import (
    MalformedMessage,
    MessagingTimeout,
    NoConsumer,
    NoSuchMethod,
    NotFound,
    RemoteError,
    UnsupportedVersion,
)
from podium.rpc import RPCClient, RPCServer, Serializer, Target, Transport

__all__ = ["TransportConformance"]


class CustomError(Exception):
    """Not on the default allow-list."""


class Recorder:
    """An endpoint that remembers what it saw."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.seen: list[tuple[str, Any]] = []
        self.cast_done = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def record(self, ctxt: Any, value: Any) -> None:
        with self.lock:
            self.seen.append(("record", value))
        self.cast_done.set()

    def context(self, ctxt: RequestContext) -> dict[str, Any]:
        return {
            "type": type(ctxt).__name__,
            "ctxt": ctxt.to_dict(),
            "logged_request_id": current_request_id.get(),
        }

    def not_found(self, ctxt: Any) -> None:
        raise NotFound("no such instance")

    def custom(self, ctxt: Any) -> None:
        raise CustomError("custom failure", 42)

    def value_error(self, ctxt: Any) -> None:
        raise ValueError("bad value")

    def slow(self, ctxt: Any, tag: str) -> str:
        self.release.wait(10)
        return tag

    def grow(self, ctxt: Any, size: int) -> str:
        return "x" * size

    def unencodable(self, ctxt: Any) -> Any:
        return object()

    def _private(self, ctxt: Any) -> str:
        return "secret"


@contextmanager
def serving(
    transport: Transport, topic: str, endpoints: list[Any], server: str = "a", **kw: Any
) -> Iterator[RPCServer]:
    kw.setdefault("max_workers", 4)  # each rabbit:// worker is a connection: keep tests light
    srv = RPCServer(transport, Target(topic=topic, server=server), endpoints, **kw)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.wait()


CTX = RequestContext(user_id="u1", project_id="p1", roles=["reader"], request_id="req-abc")


class V13:
    target = Target(version="1.3")

    def which(self, ctxt: Any) -> str:
        return "1.3"


class V20:
    target = Target(version="2.0")

    def which(self, ctxt: Any) -> str:
        return "2.0"


class Admin:
    target = Target(namespace="admin", version="1.0")

    def which(self, ctxt: Any) -> str:
        return "admin"


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class PointSerializer(Serializer):
    """Turns Point into a tagged primitive and back; the context into a dict and back."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, Point):
            return {"point": [entity.x, entity.y]}
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, dict) and "point" in entity:
            return Point(*entity["point"])
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        return dict(ctxt)

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return ctxt


class Geometry:
    def move(self, ctxt: dict[str, Any], p: Point, dx: int) -> Point:
        assert isinstance(p, Point) and isinstance(ctxt, dict)
        return Point(p.x + dx, p.y)


class TransportConformance:
    """Calls, casts, fanout, errors, versions, contexts, limits and shutdown, on ``transport``."""

    @pytest.fixture
    def topic(self) -> str:
        return f"t-{uuid.uuid4().hex[:12]}"

    def forget_routes(self, transport: Transport) -> None:
        """Drop what the driver cached about who consumes which queue.

        Called after a server stopped, before a test expects the driver to
        see that nobody consumes its queue now. Override it for a driver that
        caches such answers.
        """

    def test_call_returns_the_result(self, transport: Transport, topic: str) -> None:
        with serving(transport, topic, [Recorder()]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            value = {"a": [1, 2.5, None, True], "b": {"nested": "ü"}}
            assert client.call(CTX, "echo", value=value) == value

    def test_cast_is_delivered(self, transport: Transport, topic: str) -> None:
        endpoint = Recorder()
        with serving(transport, topic, [endpoint]):
            RPCClient(transport, Target(topic=topic)).cast(CTX, "record", value=7)
            assert endpoint.cast_done.wait(10)
        assert endpoint.seen == [("record", 7)]

    def test_cast_before_any_server_waits_in_the_topic_queue(
        self, transport: Transport, topic: str
    ) -> None:
        # Declare the queue once (a deployment's first start), then cast while nobody serves.
        with serving(transport, topic, [Recorder()]):
            pass
        RPCClient(transport, Target(topic=topic)).cast(CTX, "record", value="queued")
        endpoint = Recorder()
        with serving(transport, topic, [endpoint]):
            assert endpoint.cast_done.wait(10)
        assert endpoint.seen == [("record", "queued")]

    def test_topic_queue_is_shared_by_competing_servers(
        self, transport: Transport, topic: str
    ) -> None:
        a, b = Recorder("a"), Recorder("b")
        with serving(transport, topic, [a], server="a"), serving(transport, topic, [b], server="b"):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            answers = [client.call(CTX, "whoami") for _ in range(20)]
        assert set(answers) == {"a", "b"}

    def test_server_directed_call_reaches_only_that_server(
        self, transport: Transport, topic: str
    ) -> None:
        with (
            serving(transport, topic, [Recorder("a")], server="a"),
            serving(transport, topic, [Recorder("b")], server="b"),
        ):
            client = RPCClient(transport, Target(topic=topic, server="b"), timeout=10)
            assert {client.call(CTX, "whoami") for _ in range(10)} == {"b"}
            assert client.prepare(server="a").call(CTX, "whoami") == "a"

    def test_fanout_reaches_every_server(self, transport: Transport, topic: str) -> None:
        a, b = Recorder("a"), Recorder("b")
        with serving(transport, topic, [a], server="a"), serving(transport, topic, [b], server="b"):
            RPCClient(transport, Target(topic=topic, fanout=True)).cast(CTX, "record", value="all")
            assert a.cast_done.wait(10)
            assert b.cast_done.wait(10)
        assert a.seen == b.seen == [("record", "all")]

    def test_allowed_exception_is_reraised_as_itself(
        self, transport: Transport, topic: str
    ) -> None:
        with serving(transport, topic, [Recorder()]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            with pytest.raises(NotFound) as info:
                client.call(CTX, "not_found")
        assert type(info.value) is NotFound
        assert str(info.value) == "no such instance"
        assert "in not_found" in info.value.remote_traceback  # type: ignore[attr-defined]

    def test_builtin_exception_is_reraised_as_itself(
        self, transport: Transport, topic: str
    ) -> None:
        with serving(transport, topic, [Recorder()]), pytest.raises(ValueError, match="bad value"):
            RPCClient(transport, Target(topic=topic), timeout=10).call(CTX, "value_error")

    def test_other_exception_becomes_remote_error(self, transport: Transport, topic: str) -> None:
        with serving(transport, topic, [Recorder()]), pytest.raises(RemoteError) as info:
            RPCClient(transport, Target(topic=topic), timeout=10).call(CTX, "custom")
        err = info.value
        assert err.exc_type == "CustomError"
        assert "custom failure" in err.value
        assert "raise CustomError" in err.traceback

    def test_allow_list_lets_the_caller_rebuild_its_own_exceptions(
        self, transport: Transport, topic: str
    ) -> None:
        transport.allowed_remote_exmods.append(__name__)
        with serving(transport, topic, [Recorder()]), pytest.raises(CustomError) as info:
            RPCClient(transport, Target(topic=topic), timeout=10).call(CTX, "custom")
        assert info.value.args == ("custom failure", 42)

    def test_unknown_and_private_methods_raise_no_such_method(
        self, transport: Transport, topic: str
    ) -> None:
        with serving(transport, topic, [Recorder()]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            with pytest.raises(NoSuchMethod, match="nothing_here"):
                client.call(CTX, "nothing_here")
            with pytest.raises(NoSuchMethod):
                client.call(CTX, "_private")

    def test_version_and_namespace_select_the_endpoint(
        self, transport: Transport, topic: str
    ) -> None:
        with serving(transport, topic, [V13(), V20(), Admin()]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            assert client.prepare(version="1.0").call(CTX, "which") == "1.3"
            assert client.prepare(version="1.3").call(CTX, "which") == "1.3"
            assert client.prepare(version="2.0").call(CTX, "which") == "2.0"
            assert client.prepare(namespace="admin").call(CTX, "which") == "admin"
            with pytest.raises(UnsupportedVersion):
                client.prepare(version="1.4").call(CTX, "which")
            with pytest.raises(UnsupportedVersion):
                client.prepare(version="3.0").call(CTX, "which")
            with pytest.raises(NoSuchMethod):
                client.prepare(namespace="other").call(CTX, "which")

    def test_context_travels_and_request_id_is_logged_on_both_sides(
        self, transport: Transport, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="podium.rpc")
        ctx = RequestContext(
            user_id="u1",
            project_id="p1",
            roles=["admin"],
            is_admin=True,
            read_deleted="yes",
            request_id="req-travels",
            extra={"tenant_name": "demo"},
        )
        with serving(transport, topic, [Recorder()]):
            seen = RPCClient(transport, Target(topic=topic), timeout=10).call(ctx, "context")
        assert seen["type"] == "RequestContext"
        assert RequestContext.from_dict(seen["ctxt"]) == ctx
        assert seen["logged_request_id"] == "req-travels"
        messages = [r.getMessage() for r in caplog.records]
        assert any("call context" in m and "req-travels" in m for m in messages)
        assert any("dispatching context" in m and "req-travels" in m for m in messages)

    def test_plain_dict_context_is_accepted(self, transport: Transport, topic: str) -> None:
        with serving(transport, topic, [Recorder()]):
            seen = RPCClient(transport, Target(topic=topic), timeout=10).call(
                {"user_id": "u9", "request_id": "req-dict"}, "context"
            )
        assert seen["ctxt"]["user_id"] == "u9"
        assert seen["ctxt"]["request_id"] == "req-dict"

    def test_timeout_names_the_destination_and_late_reply_is_dropped(
        self, transport: Transport, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="podium.rpc")
        endpoint = Recorder()
        with serving(transport, topic, [endpoint], max_workers=4):
            client = RPCClient(transport, Target(topic=topic), timeout=0.3)
            with pytest.raises(MessagingTimeout) as info:
                client.call(CTX, "slow", tag="late")
            text = str(info.value)
            assert repr(topic) in text and "'slow'" in text and "0.3s" in text
            endpoint.release.set()
            # The late reply to the first call must not be taken for this one.
            assert client.prepare(timeout=10).call(CTX, "slow", tag="fresh") == "fresh"
            assert client.prepare(timeout=10).call(CTX, "echo", value=1) == 1
            # The late reply is dropped with a log line (calls drive the connection).
            for _ in range(50):
                if any("stopped waiting" in r.getMessage() for r in caplog.records):
                    break
                assert client.prepare(timeout=10).call(CTX, "echo", value=2) == 2
                threading.Event().wait(0.1)
            assert any("stopped waiting" in r.getMessage() for r in caplog.records)

    def test_call_with_no_consumer_fails_fast(self, transport: Transport, topic: str) -> None:
        client = RPCClient(transport, Target(topic=topic), timeout=30)
        with pytest.raises(NoConsumer, match=topic):
            client.call(CTX, "echo", value=1)
        with (
            serving(transport, topic, [Recorder()], server="a"),
            pytest.raises(NoConsumer, match="zz"),
        ):
            client.prepare(server="zz").call(CTX, "echo", value=1)

    def test_call_to_a_stopped_server_fails_fast(self, transport: Transport, topic: str) -> None:
        with serving(transport, topic, [Recorder()], server="a"):
            client = RPCClient(transport, Target(topic=topic, server="a"), timeout=30)
            assert client.call(CTX, "echo", value=1) == 1
        # The durable queue of server "a" outlives it; nobody consumes it now.
        self.forget_routes(transport)
        with pytest.raises(NoConsumer):
            client.call(CTX, "echo", value=1)

    def test_cast_to_a_server_nobody_runs_fails_fast_but_waits_for_a_stopped_one(
        self, transport: Transport, topic: str
    ) -> None:
        with pytest.raises(NoConsumer, match=rf"queue '{topic}.zz' does not exist"):
            RPCClient(transport, Target(topic=topic, server="zz")).cast(CTX, "record", value=0)
        recorder = Recorder()
        with serving(transport, topic, [recorder], server="a"):
            pass
        # Server "a" is down; its queue keeps the cast until it is back.
        RPCClient(transport, Target(topic=topic, server="a")).cast(CTX, "record", value=1)
        with serving(transport, topic, [recorder], server="a"):
            assert recorder.cast_done.wait(10)
        assert recorder.seen == [("record", 1)]

    def test_unencodable_arguments_fail_on_the_caller(
        self, transport: Transport, topic: str
    ) -> None:
        with serving(transport, topic, [Recorder()]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            with pytest.raises(MalformedMessage):
                client.call(CTX, "echo", value=object())
            with pytest.raises(MalformedMessage):
                client.call(CTX, "unencodable")
            assert client.call(CTX, "echo", value="still serving") == "still serving"

    def test_messages_over_the_size_limit_fail_alike_for_requests_and_replies(
        self, transport: Transport, topic: str
    ) -> None:
        # A lower limit than the default, as get_transport(max_message_bytes=) sets it.
        transport.driver.max_message_bytes = 4096
        endpoint = Recorder()
        with serving(transport, topic, [endpoint]):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            # Too big to send: refused on the caller, the server never sees it.
            with pytest.raises(
                MalformedMessage, match=r"message of .* exceeds the 4096-byte limit"
            ):
                client.call(CTX, "echo", value="x" * 5000)
            with pytest.raises(MalformedMessage, match="exceeds the 4096-byte limit"):
                client.cast(CTX, "record", value="x" * 5000)
            # A request that fits whose reply does not: the caller reads why, not a timeout.
            with pytest.raises(MalformedMessage, match=r"reply of .* exceeds the 4096-byte limit"):
                client.call(CTX, "grow", size=5000)
            assert client.call(CTX, "echo", value="still serving") == "still serving"
        assert endpoint.seen == []

    def test_concurrent_callers_each_get_their_own_reply(
        self, transport: Transport, topic: str
    ) -> None:
        results: dict[int, Any] = {}
        errors: list[BaseException] = []

        def caller(n: int) -> None:
            client = RPCClient(transport, Target(topic=topic), timeout=20)
            try:
                for i in range(10):
                    results[n * 100 + i] = client.call(CTX, "echo", value=n * 100 + i)
            except BaseException as exc:
                errors.append(exc)

        with serving(transport, topic, [Recorder()], max_workers=4):
            threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert not errors
        assert results == {k: k for k in results} and len(results) == 80

    def test_stop_lets_running_requests_finish(self, transport: Transport, topic: str) -> None:
        endpoint = Recorder()
        srv = RPCServer(transport, Target(topic=topic, server="a"), [endpoint], max_workers=2)
        srv.start()
        client = RPCClient(transport, Target(topic=topic), timeout=20)
        result: list[Any] = []
        caller = threading.Thread(target=lambda: result.append(client.call(CTX, "slow", tag="x")))
        caller.start()
        while not srv._inflight:  # wait until the request is running
            threading.Event().wait(0.01)
        srv.stop()
        endpoint.release.set()
        srv.wait()
        caller.join(20)
        assert result == ["x"]

    def test_serializer_hook_on_both_sides(self, transport: Transport, topic: str) -> None:
        with serving(transport, topic, [Geometry()], serializer=PointSerializer()):
            client = RPCClient(
                transport, Target(topic=topic), timeout=10, serializer=PointSerializer()
            )
            moved = client.call({"user_id": "u"}, "move", p=Point(1, 2), dx=3)
        assert isinstance(moved, Point) and (moved.x, moved.y) == (4, 2)
