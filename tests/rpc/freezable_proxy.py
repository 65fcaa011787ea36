"""A TCP proxy in front of the broker that can stop relaying: a frozen broker, as callers see it.

While frozen, connections stay open and new ones are accepted, but no byte
moves either way: what a broker stopped with SIGSTOP looks like from the
client, without stopping the broker other tests share. During an
:meth:`~FreezableProxy.outage` the broker is gone instead: every connection
is cut and new ones are refused, as when a node stops.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from podium.rpc import Transport, get_transport
from podium.testing.outages import Flaky


class FreezableProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._thawed = threading.Event()
        self._thawed.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._down = False
        self._accepting.start()

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The broker is gone inside the block: connections cut, new ones refused."""
        self._cut()
        try:
            yield
        finally:
            if not self._closed.is_set():
                with self._lock:
                    self._down = False
                self.listener = socket.create_server(("127.0.0.1", self.port))
                self._accepting = threading.Thread(target=self._accept, daemon=True)
                self._accepting.start()

    def close(self) -> None:
        self._closed.set()
        self._thawed.set()
        self._cut()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        with contextlib.suppress(OSError):
            self.listener.close()
        self._accepting.join(10)
        with self._lock:
            self._down = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        listener = self.listener
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        self._thawed.wait()
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            if self._down:  # cut while it connected
                client.close()
                server.close()
                return
            self._sockets += [client, server]
        peers = {client: server, server: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in readable:
                    self._thawed.wait()
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):  # ValueError: a socket an outage closed under select()
            return
        finally:
            client.close()
            server.close()


@contextlib.contextmanager
def flaky_rabbit(transport: Transport) -> Iterator[Flaky]:
    """A transport like ``transport`` (same account, vhost and options) whose broker a test
    can take away: it goes through a proxy that cuts and refuses connections on demand."""
    url = transport.url
    host = url.hosts[0]
    proxy = FreezableProxy((host.hostname, host.port or 5672))
    credentials = f"{quote(host.username or 'guest')}:{quote(host.password or 'guest')}"
    query = f"?{urlencode(url.query)}" if url.query else ""
    vhost = quote(url.virtual_host or "", safe="")
    through = get_transport(f"rabbit://{credentials}@127.0.0.1:{proxy.port}/{vhost}{query}")
    try:
        yield Flaky(through, proxy.outage)
    finally:
        through.cleanup()
        proxy.close()
