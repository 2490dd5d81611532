"""One listen / shutdown path for every server: bind, serve, stop on SIGTERM / SIGINT, exit status.

`lean-mcp runner` and `lean-mcp serve` (stdio and streamable HTTP) all run through `run`:

- `listen_socket` binds before anything starts, so a busy port is a clear error (exit 2);
- `run(main)` runs the server on asyncio and owns the signals for its whole life;
- `serve_http` serves an ASGI app with uvicorn (`server.http_limits`); the stdio server marks
  its serving part with `Shutdown.serving()`.

What a SIGTERM or SIGINT does depends on where the server is:

- starting (the service is still opening): the start is abandoned;
- serving: the first signal stops it gracefully (HTTP: no new connections, requests in flight
  get GRACEFUL_SHUTDOWN_SECONDS to finish; stdio: stop reading), a second one stops it at once;
- stopping (the proof service closing after serving): a signal stops at once.

The caller closes its proof service after serving; unfinished jobs stay in the job store and
resume on the next start, so no accepted job is lost. A signal-stopped server exits with 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio

from .._errors import ConfigurationError
from .._settings import Settings
from . import http_limits

logger = logging.getLogger(__name__)

#: Seconds requests in flight get to finish once a shutdown signal arrives.
GRACEFUL_SHUTDOWN_SECONDS = 5
#: The signals that stop a server.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now so that a busy port is a clear error, not a traceback.

    Created with protocol IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets whose protocol
    says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Choose another --port / LEAN_MCP_PORT (or --host), or stop what is using it.",
        ) from None
    sock.set_inheritable(True)
    return sock


class Shutdown:
    """How the signals stop the server that `run` runs (see the module docstring)."""

    def __init__(self) -> None:
        self.everything = anyio.CancelScope()
        self._serving: anyio.CancelScope | None = None
        self._graceful: Callable[[], None] | None = None
        self._started_serving = False

    @contextlib.contextmanager
    def serving(self, graceful: Callable[[], None] | None = None) -> Iterator[None]:
        """The serving part: the first signal calls `graceful` (or, without one, cancels this block)."""
        scope = anyio.CancelScope()
        self._serving, self._graceful, self._started_serving = scope, graceful, True
        try:
            with scope:
                yield
        finally:
            self._serving = self._graceful = None

    def signalled(self, signum: int) -> None:
        """Act on one stop signal."""
        logger.info("Received %s; stopping.", signal.Signals(signum).name)
        if self._serving is None:  # starting or stopping: nothing graceful left to do
            self.everything.cancel()
        elif self._graceful is not None:
            graceful, self._graceful = self._graceful, None
            graceful()
        else:
            self._serving.cancel()


def run(main: Callable[[Shutdown], Awaitable[int]]) -> int:
    """Run the server `main` until it returns or a signal stops it; its exit status (0 after a signal)."""
    code: int = anyio.run(_run, main, backend="asyncio")
    return code


async def _run(main: Callable[[Shutdown], Awaitable[int]]) -> int:
    shutdown = Shutdown()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, shutdown.signalled, signum)
    try:
        with shutdown.everything:
            return await main(shutdown)
        return 0  # stopped by a signal before or after serving
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def serve_http(app: Any, settings: Settings, sock: socket.socket, shutdown: Shutdown, **options: Any) -> bool:
    """Serve the ASGI `app` on `sock` with uvicorn until `shutdown` stops it; True if it started serving.

    `options` go to uvicorn's configuration (`server.http_limits.uvicorn_config`).
    """
    config = http_limits.uvicorn_config(app, settings, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, **options)
    server = _Server(config)

    def graceful() -> None:
        server.should_exit = True

    with shutdown.serving(graceful):
        await server.serve(sockets=[sock])
    return server.started


class _Server(http_limits.Server):
    """uvicorn without its own signal handlers: `run`'s handlers stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
