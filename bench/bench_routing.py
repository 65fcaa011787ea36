"""The cost of ``rabbit://?routing=exchange`` (docs/broker.md) against the default routing.

    python bench/bench_routing.py

Three podium stacks on one throwaway vhost, their echo servers in processes
of their own, measured in alternating rounds (bench_rpc's figures: a
sequential call, one with a 10-field object, casts, 16 callers on 2 servers):

- ``default``: the default exchange by queue name, direct reply-to;
- ``exchange``: ``?routing=exchange`` on an account that may do anything;
- ``exchange, restricted``: the same on an account restricted as
  ``podium broker setup`` restricts a service's (the broker checks its topic
  permissions on every message).

It needs rabbitmqctl. Knobs as bench_rpc's (PODIUM_BENCH_CALLS, ...).
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from _common import delete_queues
from bench_rpc import (
    CALLS_PER_THREAD,
    CASTS,
    SEQ_CALLS,
    THREADS,
    URL,
    Stack,
    echo_stack,
    measure,
    podium_objects,
    podium_server,
    processes,
    record_values,
)
from podium.testing import rabbit_vhost


def _ctl(*args: str, secret: str | None = None) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *args], input=secret or "", text=True, check=True, timeout=120
    )


@contextmanager
def restricted_account(vhost: str, topic: str) -> Iterator[tuple[str, str]]:
    """An account serving and calling ``topic`` only, as ``podium broker setup`` makes one."""
    from podium.rpc._rabbit.accounts import Role, permissions

    user, password = f"podium-bench-{secrets.token_hex(3)}", secrets.token_hex(16)
    role = Role(serves=(topic,), sends=(topic,), sends_to_servers=(topic,), creates_exchange=True)
    granted = permissions(role, user)
    _ctl("add_user", user, secret=password)
    try:
        _ctl("set_permissions", "-p", vhost, user, granted.configure, granted.write, granted.read)
        for exchange, (write, read) in granted.topics.items():
            _ctl("set_topic_permissions", "-p", vhost, user, exchange, write, read)
        yield user, password
    finally:
        _ctl("delete_user", user)


@contextmanager
def stack(url: str, admin_url: str, label: str, topic: str) -> Iterator[Stack]:
    from podium.context import RequestContext
    from podium.rpc import RPCClient, Target, get_transport

    record_cls, serializer = podium_objects()
    transport = get_transport(url)
    try:
        with ExitStack() as servers:
            servers.enter_context(processes(podium_server, url, topic, count=2))
            client = RPCClient(transport, Target(topic=topic), timeout=60, serializer=serializer)
            context = RequestContext(user_id="bench", project_id="bench")
            yield echo_stack(f"podium {label}", client, context, record_cls(**record_values()))
    finally:
        transport.cleanup()
        delete_queues(admin_url, [topic, f"{topic}.s0", f"{topic}.s1", f"{topic}.dead"])


def main() -> None:
    print(
        f"sequential calls {SEQ_CALLS}, casts {CASTS}, {THREADS} threads x {CALLS_PER_THREAD} "
        "calls; stacks measured in alternating rounds"
    )
    with rabbit_vhost(URL, prefix="podium-bench-routing") as admin_url:
        vhost = admin_url.rsplit("/", 1)[1]
        topics = [f"bench-routing-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        with restricted_account(vhost, topics[2]) as (user, password):
            restricted_url = f"rabbit://{user}:{password}@127.0.0.1:5672/{vhost}?routing=exchange"
            with (
                stack(admin_url, admin_url, "default", topics[0]) as default,
                stack(f"{admin_url}?routing=exchange", admin_url, "exchange", topics[1]) as open_,
                stack(restricted_url, admin_url, "exchange, restricted", topics[2]) as closed,
            ):
                results = measure([default, open_, closed])
    rows = {result.label: result for result in results}
    for result in results:
        print(result.row())
    print("against the default routing, same run")
    for figure in ("call", "call, 10-field object", "cast", f"{THREADS} callers x 2 servers"):
        base = rows[f"podium default {figure}"].rate
        for label in ("exchange", "exchange, restricted"):
            rate = rows[f"podium {label} {figure}"].rate
            print(f"  {label:<22} {figure:<28} {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
