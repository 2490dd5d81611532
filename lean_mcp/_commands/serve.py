"""`lean-mcp` / `lean-mcp serve`: the MCP server over stdio (default) or streamable HTTP.

Over stdio nothing but protocol reaches stdout: logs go to stderr, and while serving fd 1 points
at stderr (server/stdio.py), so a stray print cannot corrupt the stream. Over HTTP, with
`--api-key` set, every request needs `Authorization: Bearer <key>` (401 otherwise).
SIGTERM, Ctrl-C and (over stdio) the client closing stdin stop the server (`server.listen`, the
one listen / shutdown path); the proof service is closed last, so no REPL outlives it, and jobs it
did not finish stay in the job store for the next start.
"""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from .._mcp import ServiceSlot, build_server
from .._sandbox import unsandboxed_warning
from .._server import listen
from .._server.auth import BearerAuth, mcp_refusal
from .._server.stdio import stdio_streams
from .._settings import Settings

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until stopped; 0 on a clean stop."""
    listener = None if settings.transport == "stdio" else listen.listen_socket(settings.host, settings.port)
    try:
        return listen.run(lambda shutdown: serve(settings, shutdown, listener))
    finally:
        if listener is not None:
            listener.close()


async def serve(settings: Settings, shutdown: listen.Shutdown, listener: socket.socket | None = None) -> int:
    """Run the MCP server over stdio, or over HTTP on `listener`; the proof service starts alongside it.

    The server lists its tools at once; calls wait for the service, or answer with the reason
    it could not start (e.g. no Lean configured).
    """
    slot = ServiceSlot()
    stop_service = anyio.Event()
    roots = settings.allowed_roots or [str(settings.project_dir)]
    server = build_server(slot, allowed_roots=roots, max_proof_bytes=settings.max_proof_bytes)
    async with anyio.create_task_group() as services:
        services.start_soon(slot.provide, settings, stop_service)
        try:
            if listener is None:
                await _serve_stdio(server, settings, shutdown)
            else:
                await _serve_http(server, settings, listener, shutdown)
        finally:
            stop_service.set()
    logger.info("lean-mcp stopped.")
    return 0


async def _serve_stdio(server: MCPServer[Any], settings: Settings, shutdown: listen.Shutdown) -> None:
    with shutdown.serving():  # a signal stops reading
        logger.info("lean-mcp serving MCP over stdio.")
        async with stdio_streams(settings.request_limit_bytes) as (read_stream, write_stream):
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


async def _serve_http(
    server: MCPServer[Any], settings: Settings, listener: socket.socket, shutdown: listen.Shutdown
) -> None:
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
    port = listener.getsockname()[1]
    logger.info("lean-mcp serving MCP on http://%s:%s/mcp", settings.host, port)
    await listen.serve_http(app, settings, listener, shutdown, host=settings.host, port=port)
