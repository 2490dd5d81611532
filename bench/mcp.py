"""MCP section: what the MCP layer costs on top of the proof service.

`lean-mcp serve` over stdio with a zero-cost REPL stand-in: `verify_proof` round trips, one at a
time (latency) and 20 at a time (throughput), against `ProofService.verify` in-process on the
same stand-in. The difference is the MCP overhead (JSON-RPC, stdio, formatting).
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from lean_mcp._server.runtime import open_service
from lean_mcp._settings import Settings
from tests.standin import standin_command

from .common import Row, latency_summary, percentile

REPO = Path(__file__).resolve().parents[1]
SECTION = "mcp"


def _proof(i: int) -> str:
    # Distinct text per call, so the result cache never answers.
    return f"theorem bench_{i} : True := trivial\n"


def _env(workdir: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(REPO),
        "LEAN_MCP_REPL": shlex.join(standin_command()),
        "LEAN_MCP_DB": str(workdir / "jobs.sqlite3"),
        "LEAN_MCP_WORKERS": "2",
        "LEAN_MCP_LOG_LEVEL": "WARNING",
        "LEAN_MCP_CACHE": "false",
    }


async def _over_stdio(workdir: Path, calls: int) -> tuple[list[float], float]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "lean_mcp.cli", "serve"], env=_env(workdir), cwd=str(workdir)
    )
    latencies: list[float] = []
    with (workdir / "server.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for i in range(5):  # warm the pool
                await session.call_tool("verify_proof", {"proof": _proof(-1 - i)})
            for i in range(calls):
                started = time.perf_counter()
                result = await session.call_tool("verify_proof", {"proof": _proof(i)})
                latencies.append(time.perf_counter() - started)
                assert not result.is_error and result.structured_content, result
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    tg.start_soon(session.call_tool, "verify_proof", {"proof": _proof(calls + i)})
            throughput = calls / (time.perf_counter() - started)
    return latencies, throughput


async def _in_process(workdir: Path, calls: int) -> list[float]:
    env = _env(workdir) | {"LEAN_MCP_DB": str(workdir / "direct.sqlite3")}
    settings = Settings.load(env)
    latencies: list[float] = []
    async with open_service(settings) as service:
        for i in range(5):
            await service.verify(_proof(-1 - i))
        for i in range(calls):
            started = time.perf_counter()
            await service.verify(_proof(i))
            latencies.append(time.perf_counter() - started)
    return latencies


def run(quick: bool) -> list[Row]:
    """Round-trip latency and throughput of verify_proof over stdio, and the in-process baseline."""
    calls = 30 if quick else 200
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        workdir = Path(tmp)
        stdio, throughput = anyio.run(_over_stdio, workdir, calls)
        direct = anyio.run(_in_process, workdir, calls)
    overhead = percentile(stdio, 50) - percentile(direct, 50)
    note = f"{calls} sequential calls, zero-cost stand-in"
    return [
        Row(SECTION, "verify_proof round trip over stdio", latency_summary(stdio), note=note),
        Row(SECTION, "ProofService.verify in-process (baseline)", latency_summary(direct), note=note),
        Row(SECTION, "MCP overhead per call (p50 difference)", f"{overhead * 1000:.1f} ms", target="< 10 ms"),
        Row(SECTION, "verify_proof throughput over stdio", f"{throughput:.0f} proofs/s", note=f"{calls} concurrent"),
    ]
