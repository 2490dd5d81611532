"""`lean-mcp` / `lean-mcp serve`: the MCP server over stdio (default) or streamable HTTP.

Over stdio nothing but protocol reaches stdout: logs go to stderr, and while serving fd 1 points
at stderr (server/stdio.py), so a stray print cannot corrupt the stream. Over HTTP, with
`--api-key` set, every request needs `Authorization: Bearer <key>` (401 otherwise).
SIGTERM, Ctrl-C and (over stdio) the client closing stdin stop the server; the proof service is
closed last, so no REPL outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from ..mcp import ServiceSlot, build_server
from ..sandbox import unsandboxed_warning
from ..server import http_limits
from ..server.auth import BearerAuth, mcp_refusal
from ..server.stdio import stdio_streams
from ..settings import Settings
from .runner import listen_socket

__all__ = ["run", "serve"]

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until stopped; 0 on a clean stop."""
    anyio.run(serve, settings)
    return 0


async def serve(settings: Settings) -> None:
    """Run the MCP server on `settings.transport`; the proof service starts alongside it.

    The server lists its tools at once; calls wait for the service, or answer with the reason
    it could not start (e.g. no Lean configured).
    """
    slot = ServiceSlot()
    stop_service = anyio.Event()
    roots = settings.allowed_roots or [str(settings.project_dir)]
    server = build_server(slot, allowed_roots=roots, max_proof_bytes=settings.max_proof_bytes)
    listener = None if settings.transport == "stdio" else listen_socket(settings.host, settings.port)
    async with anyio.create_task_group() as services:
        services.start_soon(slot.provide, settings, stop_service)
        try:
            if listener is None:
                await _serve_stdio(server, settings)
            else:
                await _serve_http(server, settings, listener)
        finally:
            stop_service.set()
    logger.info("lean-mcp stopped.")


async def _serve_stdio(server: MCPServer[Any], settings: Settings) -> None:
    with anyio.CancelScope() as serving:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, serving.cancel, serving.cancel)
            logger.info("lean-mcp serving MCP over stdio.")
            async with stdio_streams(settings.request_limit_bytes) as (read_stream, write_stream):
                lowlevel = server._lowlevel_server
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()


async def _serve_http(server: MCPServer[Any], settings: Settings, listener: socket.socket) -> None:
    app: ASGIApp = server.streamable_http_app(
        host=settings.host,
        max_request_body_size=settings.request_limit_bytes,
    )
    if settings.api_key:
        app = BearerAuth(app, settings.api_key, refusal=mcp_refusal, no_oauth=True)
    elif settings.host not in _LOOPBACK:
        logger.warning("Serving on %s with no --api-key: anyone who can reach it can use it.", settings.host)
    warning = unsandboxed_warning(settings) if settings.host not in _LOOPBACK else None
    if warning:
        logger.warning("%s", warning)
    config = http_limits.uvicorn_config(
        app, settings, host=settings.host, port=settings.port, timeout_graceful_shutdown=5
    )
    http = _UvicornServer(config)

    def graceful() -> None:
        http.should_exit = True

    with anyio.CancelScope() as serving:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, graceful, serving.cancel)
            port = listener.getsockname()[1]
            logger.info("lean-mcp serving MCP on http://%s:%s/mcp", settings.host, port)
            await http.serve(sockets=[listener])
            tg.cancel_scope.cancel()


class _UvicornServer(http_limits.Server):
    """uvicorn without its own signal handlers: ours stop it, then close the proof service."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _watch_signals(first: Callable[[], None], again: Callable[[], None]) -> None:
    """On SIGTERM / SIGINT call `first` (a graceful stop); on a second signal call `again`."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        seen = 0
        async for signum in signals:
            logger.info("Received %s; stopping.", signal.Signals(signum).name)
            (first if seen == 0 else again)()
            seen += 1
