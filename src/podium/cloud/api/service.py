"""Running the API: uvicorn on a thread of its own, beside the service heartbeat.

The socket is bound when the service is built, in the caller's thread: a port
in use fails there, with the caller's error handling, and ``port`` is known
(``api_listen`` may ask for port 0) before anything starts. uvicorn runs on a
background thread so the caller keeps its own signal handling (``StopSignals``)
and stops the API like every other service: ``stop()`` then ``wait()``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn

from podium.cloud.api.app import create_app
from podium.cloud.config import CloudConfig
from podium.cloud.service import CloudService
from podium.rpc import Transport
from podium.service import Lifecycle

LOG = logging.getLogger(__name__)

BINARY = "podium-api"
#: Seconds open requests get to finish once the API is told to stop.
GRACEFUL_SHUTDOWN = 10.0


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6addr]:port`` for IPv6) -> (host, port); ValueError names the setting."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"api_listen must be HOST:PORT (port 0-65535), not {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


class _Server(uvicorn.Server):
    """uvicorn's server, telling a thread when it serves (or gave up starting)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class ApiService(Lifecycle):
    """The API on ``config.api_listen``, plus its ``podium-api`` heartbeat."""

    def __init__(self, transport: Transport, config: CloudConfig, host: str) -> None:
        bind_host, port = parse_listen(config.api_listen)
        self.app = create_app(config, transport)
        self._socket = socket.create_server(
            (bind_host, port),
            family=socket.AF_INET6 if ":" in bind_host else socket.AF_INET,
            reuse_port=False,
        )
        # uvicorn takes the socket as is; it must not block its event loop.
        self._socket.setblocking(False)
        bound = self._socket.getsockname()
        self.host: str = bind_host
        self.port: int = bound[1]
        self._server = _Server(
            uvicorn.Config(
                self.app,
                log_config=None,  # the process's logging, not uvicorn's own
                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
                # Behind a proxy the client address is the proxy's; nothing
                # here trusts it, so no forwarded headers are honoured.
                proxy_headers=False,
                server_header=False,
            )
        )
        self._heartbeat = CloudService(
            transport, binary=BINARY, host=host, config=config, topic=None
        )
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a background thread; returns once requests are accepted."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="podium-api", daemon=True)
        self._thread.start()
        self._server.ready.wait()
        if not self._server.started:
            self._thread.join()
            self._thread = None
            self._socket.close()
            raise RuntimeError(f"the API could not start on {self.url}: {self._failure}")
        self._heartbeat.start()
        LOG.info("API listening on %s", self.url)

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # reported by start(), or logged if it served
            self._failure = error
            if self._server.started:
                LOG.exception("the API server stopped on an error")
        finally:
            self._server.ready.set()

    def stop(self) -> None:
        """Stop taking requests; open ones get GRACEFUL_SHUTDOWN seconds (see ``wait``)."""
        self._heartbeat.stop()
        self._server.should_exit = True

    def wait(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self._heartbeat.wait()
        self._socket.close()


def api_service(transport: Transport, config: CloudConfig, host: str) -> ApiService:
    """The API service, bound but not started (``start()``; ``stop()`` then ``wait()``)."""
    return ApiService(transport, config, host)
