"""A bare JSON-RPC client for `lean-mcp serve` over stdio, to tell the server's cost from the client's.

The real MCP SDK client (what users run) also parses every answer into its models and checks the
structured content against the tool's output schema, on the same cores as the server. This one
writes one JSON line per request and matches answer lines to requests by id, nothing else, so a
row measured with it is the server (and the pipes), not the SDK client. Benchmarks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["RawClient", "raw_client"]

#: The protocol version the SDK client asks for; the handshake is the SDK client's, byte for byte.
PROTOCOL_VERSION = "2025-11-25"


class RawClient:
    """Requests out as JSON lines, answers matched by id; many calls may be in flight at once."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.pid = process.pid
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its `result` (raises on a JSON-RPC error)."""
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._stdin.write(json.dumps(message).encode() + b"\n")
        await self._stdin.drain()
        reply = await answer
        if "error" in reply:
            raise RuntimeError(f"{method} answered {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """`tools/call`: the CallToolResult as JSON (its `structuredContent`, `content`, `isError`)."""
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def _read(self) -> None:
        while line := await self._stdout.readline():
            reply = json.loads(line)
            waiter = self._waiting.pop(reply.get("id"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError("the server closed its stdout"))

    async def _handshake(self) -> None:
        info = {"name": "bench-raw", "version": "0"}
        await self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": info})
        self._stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        await self._stdin.drain()


@contextlib.asynccontextmanager
async def raw_client(
    env: Mapping[str, str],
    cwd: Path,
    errlog: IO[str],
    server: Sequence[str] = ("lean_mcp.cli", "serve"),
    launcher: Sequence[str] = (),
) -> AsyncIterator[RawClient]:
    """`lean-mcp serve` (or `python -m` the `server` module and arguments; under `launcher`, e.g.
    valgrind, when given) started with `env` in `cwd`, initialized, and a RawClient on its stdio."""
    process = await asyncio.create_subprocess_exec(
        *launcher,
        sys.executable,
        "-m",
        *server,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=errlog,
        limit=64 << 20,
    )
    client = RawClient(process)
    reader = asyncio.ensure_future(client._read())
    try:
        await client._handshake()
        yield client
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        await reader
