"""The RabbitMQ driver's one contact with pika: nothing else imports it, and the pika
internals it relies on are there in the pinned release."""

from __future__ import annotations

import ast
import contextlib
import re
from importlib.metadata import version
from pathlib import Path

import pika
import pytest

from podium.rpc._rabbit import amqp

SRC = Path(amqp.__file__).resolve().parents[2]  # src/podium
AMQP_MODULE = Path(amqp.__file__).resolve()


def _imports_pika(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if any(name == "pika" or name.startswith("pika.") for name in names):
            return True
    return False


def test_only_the_amqp_module_imports_pika() -> None:
    importers = {path.relative_to(SRC) for path in SRC.rglob("*.py") if _imports_pika(path)}
    assert importers == {AMQP_MODULE.relative_to(SRC)}


def test_the_pinned_pika_release_is_the_one_installed() -> None:
    # The internals below are checked against this release; another needs a new look.
    assert re.match(r"1\.4\.\d+$", version("pika")), version("pika")


@pytest.mark.rabbit
def test_the_pika_internals_the_driver_uses_are_there(rabbit_url: str) -> None:
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    with contextlib.closing(pika.BlockingConnection(params)) as connection:
        channel = connection.channel()
        impl = connection._impl
        for owner, names in [
            (
                connection,
                ["_impl", "_flush_output", "_ready_events", "_dispatch_connection_events"],
            ),
            (connection, ["_closed_result", "_cleanup"]),
            (
                impl,
                [
                    "_body_max_length",
                    "_transport",
                    "_adapter_emit_data",
                    "_adapter_call_later",
                    "_adapter_remove_timeout",
                    "_terminate_stream",
                    "_get_write_buffer_size",
                    "server_capabilities",
                    "bytes_sent",
                    "frames_sent",
                ],
            ),
            (
                impl._transport,
                ["_tx_buffers", "_state", "_STATE_ACTIVE", "_sigint_safe_send", "_sock"],
            ),
            (
                channel._impl,
                [
                    "_consumers",
                    "add_on_return_callback",
                    "add_on_cancel_callback",
                    "confirm_delivery",
                ],
            ),
        ]:
            missing = [name for name in names if not hasattr(owner, name)]
            assert not missing, f"{type(owner).__name__} lacks {missing}"
        # The fast write path is taken for a plain (not TLS) connection.
        assert isinstance(impl._transport, amqp._PlainTransport)
