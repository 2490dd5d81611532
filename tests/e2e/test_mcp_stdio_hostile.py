"""Hostile lines on `lean-mcp serve`'s stdin: each is answered (or rightly ignored) and the server keeps serving.

Raw bytes go down the real pipe of a real server subprocess; a ping after each case proves it still
serves, and the SDK's own stdio client checks that a message past the limit is a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from .mcp_support import raw_server, server_env, stdio_session

pytestmark = pytest.mark.anyio

PROVED = "theorem add_zero' (n : Nat) : n + 0 = n := rfl\n"
DEEP = b"[" * 1200 + b"]" * 1200

#: (raw line, the id its answer must carry (None: id null; "none": no answer is due), words the answer names)
CASES: list[tuple[bytes, Any, str]] = [
    (b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":' + DEEP + b"}}", 5, "nested too deeply"),
    (b'{"jsonrpc":"2.0","method":"tools/list","params":{"x":' + DEEP + b'},"id":6}', 6, "nested too deeply"),
    (b'{"jsonrpc":"2.0","id":"\\ud800","method":"tools/list"}', None, "Unicode"),
    (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":[1,2]}', 7, '"params" must be a JSON object'),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', None, "id must be a string or an integer"),
    (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', None, "id must be a string or an integer"),
    (b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', None, "id must be a string or an integer"),
    (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', None, "id must be a string or an integer"),
    (b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"tools/list"}', None, "not JSON"),
    (b'[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":9,"method":"ping"}]', 8, "batches"),
    (b"[]", None, "batches"),
    (b"5", None, "must be a JSON object"),
    (b'"text"', None, "must be a JSON object"),
    (b"{not json", None, "not JSON"),
    (b'{"jsonrpc":"1.0","id":10,"method":"ping"}', 10, '"jsonrpc" must be "2.0"'),
    (b'{"jsonrpc":"2.0","id":11,"method":42}', 11, '"method" must be a string'),
    (b'{"jsonrpc":"2.0","id":12,"method":"no/such/method"}', 12, "Method not found"),
    (b'{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":5}}', 13, "Invalid"),
    (b'{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"verify_proof","arguments":[1]}}', 14, ""),
    (b'{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"nope","arguments":{}}}', 15, "nope"),
    (b'{"jsonrpc":"2.0","id":16,"method":"ping","params":{"a":NaN,"b":Infinity}}', 16, ""),
    (b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[1]}}', "none", ""),
    (b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":' + DEEP + b"}", "none", ""),
    (b'{"jsonrpc":"2.0","id":99999,"result":{}}', "none", ""),
    (b"", "none", ""),
    (b"   \t", "none", ""),
    (b'\xef\xbb\xbf{"jsonrpc":"2.0","id":17,"method":"ping"}', 17, ""),
    (b'{"jsonrpc":"2.0","id":18,"method":"ping"}\r', 18, ""),
    (b'{"jsonrpc":"2.0","id":"\xff\xfe","method":"ping"}', None, "Unicode"),
]


@pytest.mark.timeout(120)
async def test_every_hostile_line_is_answered_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async with raw_server(tmp_path) as server:
        await server.initialize()
        for line, answer_id, words in CASES:
            await server.send_line(line)
            ping = await server.send("ping")
            with anyio.fail_after(30, reason=f"no answer to {line[:80]!r}"):
                if answer_id != "none":
                    answer = await server.response(answer_id)
                    assert words in str(answer), (line[:80], answer)
                    refused = "error" in answer or answer["result"].get("isError")
                    assert refused or words == "", (line[:80], answer)
                pong = await server.response(ping)
            assert pong.get("result") == {}, (line[:80], pong)
        fine = await server.call("verify_proof", {"proof": PROVED})
        assert server.process.returncode is None
    assert fine["structuredContent"]["verdict"] == "proved"
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.timeout(120)
async def test_a_line_past_the_limit_is_refused_under_its_id_without_being_kept_in_memory(tmp_path: Path) -> None:
    env = server_env(tmp_path, LEAN_MCP_MAX_REQUEST_BYTES=str(1 << 20))
    async with raw_server(tmp_path, env) as server:
        await server.initialize()
        rss_before = _memory_kb(server.process.pid, "VmRSS")
        huge = b'{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"verify_proof","arguments":{"proof":"'
        await server.send_line(huge + b"a" * (64 << 20) + b'"}}}')
        with anyio.fail_after(60):
            refused = await server.response(41)
        peak = _memory_kb(server.process.pid, "VmHWM")
        fine = await server.call("verify_proof", {"proof": PROVED})
    message = refused["error"]["message"]
    assert "over the limit of 1,048,576 bytes" in message and "--max-request-bytes" in message, message
    assert peak - rss_before < 32 * 1024, f"the server's memory grew by {(peak - rss_before) // 1024} MB"
    assert fine["structuredContent"]["verdict"] == "proved"


@pytest.mark.timeout(90)
async def test_the_sdk_client_gets_a_clear_error_for_a_message_past_the_limit(tmp_path: Path) -> None:
    env = server_env(tmp_path, LEAN_MCP_MAX_REQUEST_BYTES=str(256 * 1024))
    async with stdio_session(tmp_path, env) as session:
        with anyio.fail_after(30), pytest.raises(MCPError) as refused:
            await session.call_tool("verify_proof", {"proof": "-- padding\n" * 50_000})
        proved = await session.call_tool("verify_proof", {"proof": PROVED})
    assert "over the limit of 262,144 bytes" in str(refused.value)
    assert proved.structured_content is not None and proved.structured_content["verdict"] == "proved"


def _memory_kb(pid: int, field: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    raise AssertionError(f"no {field} for process {pid}")
