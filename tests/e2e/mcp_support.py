"""Helpers for the MCP end-to-end tests: `lean-mcp serve` as a subprocess over the REPL stand-in."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult

from tests.e2e.runner_support import free_port
from tests.standin import standin_command

REPO = Path(__file__).resolve().parents[2]
SERVE = [sys.executable, "-m", "lean_mcp.cli", "serve"]


def server_env(tmp_path: Path, *, repl: bool = True, **extra: str) -> dict[str, str]:
    """The server's environment: the stand-in as the REPL, the job store in `tmp_path`, no elan."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_MCP_") and k != "ELAN_HOME"}
    env.update(
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        LEAN_MCP_DB=str(tmp_path / "jobs.sqlite3"),
        LEAN_MCP_WORKERS="2",
        LEAN_MCP_LOG_LEVEL="INFO",
    )
    if repl:
        env["LEAN_MCP_REPL"] = shlex.join(standin_command())
    env.update(extra)
    return env


@asynccontextmanager
async def stdio_session(tmp_path: Path, env: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session with `lean-mcp serve` over stdio (stderr in server.log)."""
    params = StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=env or server_env(tmp_path), cwd=str(tmp_path))
    with (tmp_path / "server.log").open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def wait_until_listening(url: str) -> None:
    """Wait (up to 30 s) until an HTTP server answers at `url`."""
    async with httpx2.AsyncClient() as client:
        with anyio.fail_after(30):
            while True:
                try:
                    await client.get(url)
                    return
                except httpx2.TransportError:
                    await anyio.sleep(0.1)


def text_of(result: CallToolResult) -> str:
    """The tool result's text content (the readable summary)."""
    return "\n".join(block.text for block in result.content if block.type == "text")


def structured(result: CallToolResult) -> dict[str, Any]:
    """The tool result's structured content (a ProofResult or Proof as JSON)."""
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def processes_of(tmp_path: Path) -> set[int]:
    """Live processes started for this test: their environment names the job store in `tmp_path`, or
    they run in `tmp_path` (Lean children get no `LEAN_MCP_*` variable, but run in the project)."""
    marker = f"LEAN_MCP_DB={tmp_path / 'jobs.sqlite3'}".encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (marker in environ.split(b"\0") or cwd == str(tmp_path)) and state != "Z":
            found.add(int(entry.name))
    return found


class RawServer:
    """`lean-mcp serve` over stdio driven by hand: raw JSON-RPC lines, every stdout line kept."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._buffer = b""
        self._next_id = 0

    async def send(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> int:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notify:
            self._next_id += 1
            message["id"] = self._next_id
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps(message) + "\n").encode())
        return self._next_id

    async def response(self, request_id: int | None) -> dict[str, Any]:
        """Read stdout lines until the response to `request_id` (None: an id-less error) arrives."""
        while True:
            message = json.loads(await self._line())
            if message.get("id") == request_id and "method" not in message:
                return dict(message)

    async def send_line(self, line: bytes) -> None:
        """Write one raw line to the server's stdin, as is."""
        assert self.process.stdin is not None
        await self.process.stdin.send(line + b"\n")

    async def initialize(self) -> None:
        request = await self.send(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        )
        answer = await self.response(request)
        assert "result" in answer, answer
        await self.send("notifications/initialized", notify=True)

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        request = await self.send("tools/call", {"name": tool, "arguments": arguments})
        answer = await self.response(request)
        assert "result" in answer, answer
        return dict(answer["result"])

    async def rest_of_stdout(self) -> list[str]:
        """Every remaining stdout line, up to EOF."""
        assert self.process.stdout is not None
        async for chunk in self.process.stdout:
            self._buffer += chunk
        if self._buffer.strip():
            self.lines.extend(self._buffer.decode().splitlines())
        self._buffer = b""
        return self.lines

    async def _line(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            self._buffer += await self.process.stdout.receive()
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.lines.append(line.decode())
        return line.decode()


@asynccontextmanager
async def _server_process(
    tmp_path: Path, args: list[str], env: dict[str, str], *, stdout_to_log: bool = False
) -> AsyncIterator[Process]:
    """`args` as a subprocess in `tmp_path`, stderr (and stdout if asked) in server.log; killed if the
    test leaves it running."""
    with (tmp_path / "server.log").open("ab") as errlog:
        stdout = errlog if stdout_to_log else subprocess.PIPE
        process = await anyio.open_process(args, env=env, cwd=tmp_path, stderr=errlog, stdout=stdout)
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
            await process.aclose()


@asynccontextmanager
async def raw_server(tmp_path: Path, env: dict[str, str] | None = None) -> AsyncIterator[RawServer]:
    """`lean-mcp serve` as a bare subprocess (stderr in server.log); killed if the test leaves it running."""
    async with _server_process(tmp_path, SERVE, env or server_env(tmp_path)) as process:
        yield RawServer(process)


@asynccontextmanager
async def http_server(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[tuple[Process, str]]:
    """`lean-mcp serve --transport streamable-http` on a free port, listening: the process and its MCP
    URL (its output in server.log); killed if the test leaves it running."""
    port = free_port()
    args = [*SERVE, "--transport", "streamable-http", "--port", str(port)]
    async with _server_process(tmp_path, args, env, stdout_to_log=True) as process:
        url = f"http://127.0.0.1:{port}/mcp"
        await wait_until_listening(url)
        yield process, url
