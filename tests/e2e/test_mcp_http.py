"""`lean-mcp serve --transport streamable-http` with an API key, end to end over real HTTP."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from .mcp_support import SERVE, http_server, processes_of, server_env, structured, text_of

pytestmark = pytest.mark.anyio

TOKEN = "test-token-1234"
PROVED = "theorem over_http : True := trivial\n"
REJECTED = "theorem nope : False := by\n-- standin: error unsolved goals\n  skip\n"


@pytest.mark.timeout(90)
async def test_http_needs_the_bearer_token_and_serves_proofs_with_it(tmp_path: Path) -> None:
    env = server_env(tmp_path, LEAN_MCP_API_KEY=TOKEN)
    async with http_server(tmp_path, env) as (process, url):
        async with httpx.AsyncClient() as plain:
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
            anonymous = await plain.post(url, json=initialize)
            wrong = await plain.post(url, json=initialize, headers={"Authorization": "Bearer wrong"})
            base = url.removesuffix("/mcp")
            names = ("oauth-protected-resource", "oauth-protected-resource/mcp", "oauth-authorization-server")
            discovery = [await plain.get(f"{base}/.well-known/{name}") for name in names]
        # No OAuth: discovery finds nothing, so a client shows the 401's own words instead.
        assert [answer.status_code for answer in discovery] == [404, 404, 404]
        assert anonymous.status_code == 401
        assert "Authorization: Bearer" in anonymous.json()["error_description"]
        assert wrong.status_code == 401

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as client,
            streamable_http_client(url, http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            proved = await session.call_tool("verify_proof", {"proof": PROVED})
            rejected = await session.call_tool("verify_proof", {"proof": REJECTED})
        assert tools == {"verify_proof", "submit_proof", "get_proof_result", "run_tactic", "try_tactics"}
        assert structured(proved)["verdict"] == "proved"
        assert structured(rejected)["verdict"] == "rejected"
        assert "2:0 error: unsolved goals" in text_of(rejected)

        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await process.wait() == 0
    assert not processes_of(tmp_path)


@pytest.mark.timeout(60)
async def test_a_busy_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [*SERVE, "--transport", "streamable-http", "--port", str(port)]
        done = await anyio.run_process(args, env=server_env(tmp_path), cwd=tmp_path, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in stderr and "--port" in stderr
    assert "Traceback" not in stderr
