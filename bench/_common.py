"""Helpers shared by the benchmark suites."""

from __future__ import annotations

import contextlib

import pika


def delete_queues(url: str, names: list[str]) -> None:
    """Remove the durable queues a benchmark declared (missing ones are fine)."""
    params = pika.URLParameters(url.replace("rabbit://", "amqp://", 1))
    with contextlib.closing(pika.BlockingConnection(params)) as conn:
        for name in names:
            channel = conn.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                channel.queue_delete(name)
            if channel.is_open:
                channel.close()
