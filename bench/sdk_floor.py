"""The MCP SDK's own cost per tool call: an `MCPServer` whose one tool does nothing, on lean-mcp's stdio.

`python -m bench.sdk_floor` serves it. The `throughput` section drives it with the same bare
JSON-RPC load generator as `lean-mcp serve`, so the gap between the two is lean-mcp's work per call
(job store, pool, audit, rendering), and this server's rate is the most any tool served by the
SDK's `MCPServer` can answer on this machine, whatever the tool does. Benchmarks only.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent

from lean_mcp._server.stdio import stdio_streams
from lean_mcp._settings import Settings

#: The tool's name; it takes a `proof` (as verify_proof does) and answers a fixed result.
TOOL = "noop"


def build() -> MCPServer[Any]:
    """The SDK's server with one tool that answers at once."""
    server: MCPServer[Any] = MCPServer("sdk-floor")

    async def noop(proof: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text="proved")], structured_content={"verdict": "proved"}
        )

    server.add_tool(noop, name=TOOL, description="Answer at once (a benchmark's floor).")
    return server


async def _serve() -> None:
    lowlevel = build()._lowlevel_server
    async with stdio_streams(Settings().request_limit_bytes) as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


if __name__ == "__main__":
    anyio.run(_serve)
