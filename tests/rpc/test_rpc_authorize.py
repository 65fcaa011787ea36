"""An RPC server's ``authorize`` hook: a refusal reaches the caller and the method never runs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from podium.exceptions import PolicyNotAuthorized
from podium.rpc import MemoryBroker, RPCClient, RPCServer, Target, get_transport
from polling import wait_for


class Ledger:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    def write(self, ctxt: Any, entry: Any) -> str:
        self.entries.append(entry)
        return "written"


def test_a_refused_request_is_an_error_on_the_caller_and_runs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def authorize(ctxt: Any, method: str, arguments: dict[str, Any]) -> None:
        asked.append((method, arguments))
        if arguments.get("entry") == "forbidden":
            raise PolicyNotAuthorized("not this entry", sender="x", action=method)

    ledger = Ledger()
    with get_transport("memory://authorize", broker=MemoryBroker()) as transport:
        target = Target(topic="ledger")
        with RPCServer(transport, target, [ledger], authorize=authorize):
            client = RPCClient(transport, target, timeout=10)
            assert client.call({}, "write", entry="fine") == "written"
            with pytest.raises(PolicyNotAuthorized, match="not this entry"):
                client.call({}, "write", entry="forbidden")
            with caplog.at_level(logging.WARNING, logger="podium.rpc"):
                client.cast({}, "write", entry="forbidden")
                wait_for(lambda: len(asked) == 3, "the cast's check")
                wait_for(lambda: caplog.records, "the cast's refusal logged")
    assert ledger.entries == ["fine"]
    assert asked[0] == ("write", {"entry": "fine"})
    # A refused cast is a warning, not a crash with a traceback.
    assert all(record.exc_info is None for record in caplog.records)
    assert "rejected request write" in caplog.records[0].getMessage()
