"""`lean-mcp` / `lean-mcp serve`: the MCP server over stdio (default) or streamable HTTP.

Over stdio nothing but protocol reaches stdout: logs go to stderr, and while serving fd 1 points
at stderr (the SDK's stdio claim), so a stray print cannot corrupt the stream. Over HTTP, with
`--api-key` set, every request needs `Authorization: Bearer <key>` (401 otherwise).
SIGTERM, Ctrl-C and (over stdio) the client closing stdin stop the server; the proof service is
closed last, so no REPL outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hmac
import json
import logging
import os
import signal
import socket
import stat
from collections.abc import AsyncIterable, Callable, Iterator
from typing import Any, cast

import anyio
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..mcp_server import ServiceSlot, build_server
from ..sandbox import unsandboxed_warning
from ..settings import Settings
from .runner import listen_socket

__all__ = ["BearerAuthMiddleware", "run", "serve"]

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
                await _serve_stdio(server)
            else:
                await _serve_http(server, settings, listener)
        finally:
            stop_service.set()
    logger.info("lean-mcp stopped.")


async def _serve_stdio(server: MCPServer[Any]) -> None:
    with anyio.CancelScope() as serving, _claimed_stdin() as stdin:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, serving.cancel, serving.cancel)
            logger.info("lean-mcp serving MCP over stdio.")
            # The SDK's stdio_server claims fd 1 (stdout goes to stderr while serving); stdin is
            # ours, read without a worker thread so that a signal stops the server at once.
            async with stdio_server(stdin=cast(Any, stdin)) as (read_stream, write_stream):
                readable_send, readable = anyio.create_memory_object_stream[SessionMessage | Exception](0)
                tg.start_soon(_answer_unreadable, read_stream, readable_send, write_stream)
                lowlevel = server._lowlevel_server
                await lowlevel.run(readable, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()


async def _answer_unreadable(
    source: AsyncIterable[SessionMessage | Exception],
    sink: MemoryObjectSendStream[SessionMessage | Exception],
    replies: Any,
) -> None:
    """Pass the client's messages on; answer a line the SDK could not read instead of dropping it.

    The SDK skips such a line silently, so its caller would wait forever. A line that is not JSON
    gets a parse error (id null); a request that is JSON but not valid (e.g. a lone surrogate
    escape like `\\ud800`, which is not text) gets an error naming why, under its own id.
    """
    async with sink:
        async for item in source:
            try:
                if not isinstance(item, ValidationError):
                    await sink.send(item)
                elif (reply := _unreadable_reply(item)) is not None:
                    await replies.send(SessionMessage(reply))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the server stopped reading: it is shutting down


def _unreadable_reply(error: ValidationError) -> JSONRPCError | None:
    """The error answer to a line that is not a JSON-RPC message, or None when none is due."""
    details = error.errors()
    line = details[0].get("input") if details else None
    if not isinstance(line, str):  # JSON, but not a JSON-RPC message: its id cannot be told
        logger.warning("Ignored a message that is not JSON-RPC: %s", "; ".join(d["msg"] for d in details[:3]))
        return None
    if not line.strip():
        return None
    try:
        message = json.loads(line)  # Python reads what the SDK's parser refuses, e.g. lone surrogates
    except ValueError:
        logger.warning("Answered a line that is not JSON with a parse error: %.200r", line)
        text = "Parse error: the line is not JSON. Send one JSON-RPC message per line."
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message=text))
    request_id = message.get("id") if isinstance(message, dict) and "method" in message else None
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        logger.warning("Ignored an unreadable message: %.200r", line)
        return None
    reason = "; ".join(detail["msg"] for detail in details[:3])
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        reason = "it is not valid Unicode text (bytes that are not UTF-8, or a lone surrogate escape like \\ud800)"
    logger.warning("Refused unreadable request %r: %s", request_id, reason)
    text = f"Invalid request: {reason}. Send valid JSON-RPC with valid Unicode (UTF-8) text."
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=text))


async def _serve_http(server: MCPServer[Any], settings: Settings, listener: socket.socket) -> None:
    app: ASGIApp = server.streamable_http_app(
        host=settings.host,
        max_request_body_size=max(DEFAULT_MAX_REQUEST_BODY_SIZE, 3 * settings.max_proof_bytes),
    )
    if settings.api_key:
        app = BearerAuthMiddleware(app, settings.api_key)
    elif settings.host not in _LOOPBACK:
        logger.warning("Serving on %s with no --api-key: anyone who can reach it can use it.", settings.host)
    warning = unsandboxed_warning(settings) if settings.host not in _LOOPBACK else None
    if warning:
        logger.warning("%s", warning)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
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


class _UvicornServer(uvicorn.Server):
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


class BearerAuthMiddleware:
    """ASGI middleware: HTTP requests need `Authorization: Bearer <token>`, else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/.well-known/oauth"):
            # No OAuth here: a 404 makes MCP clients give up on OAuth discovery and show our 401's text.
            response = JSONResponse(
                {"error": "not_found", "error_description": "This server takes an API key, not OAuth."},
                status_code=404,
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and not self._authorized(scope):
            response = JSONResponse(
                {
                    "error": "unauthorized",
                    "error_description": "Send the server's API key as `Authorization: Bearer <key>`.",
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="lean-mcp"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                return hmac.compare_digest(bytes(value), self._expected)
        return False


class _PipeLines:
    """The text lines of a pipe, read without a worker thread so that cancellation is immediate."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._scanned = 0
        self._eof = False

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                return self._take(newline + 1)
            self._scanned = len(self._buffer)
            if self._eof:
                if self._buffer:
                    return self._take(len(self._buffer))
                raise StopAsyncIteration
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            self._eof = not chunk
            self._buffer += chunk

    def _take(self, end: int) -> str:
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._scanned = 0
        # Bytes that are not UTF-8 stay visible (as lone surrogates) so the line is refused, not altered.
        return line.decode("utf-8", errors="surrogateescape")


@contextlib.contextmanager
def _claimed_stdin() -> Iterator[_PipeLines | None]:
    """Take the protocol pipe off fd 0 (children see /dev/null) and read it without threads.

    Yields None when stdin is not a pipe, socket or terminal (e.g. a file); the SDK then reads it.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        mode = 0
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
        yield None
        return
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.set_blocking(private, False)
    try:
        yield _PipeLines(private)
    finally:
        os.set_blocking(private, True)
        os.dup2(private, 0)
        os.close(private)
