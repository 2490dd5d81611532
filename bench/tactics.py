"""Tactics section: tactic mode over MCP stdio, on a zero-cost REPL stand-in.

`run_tactic` round trips one at a time from the same proof state (latency, target ≤ 5 ms p50),
`try_tactics` with 8 tactics per call, and `ReplBackend.run_tactic` in-process as the baseline
(what the REPL exchange itself costs, without MCP). The round trips are measured with the real
MCP SDK client (what users run), and once more with a bare JSON-RPC client (`raw_mcp`): that row
is the server and the pipes alone, so the difference is what the SDK client itself costs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from lean_mcp._backends.repl import ReplBackend
from lean_mcp._models import ProofConfig
from tests.standin import standin_command

from .common import Row, latency_summary
from .mcp import _env  # the same server, configured the same way
from .raw_mcp import raw_client

SECTION = "tactics"
SKETCH = "theorem bench_and (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  sorry\n"
EIGHT = ["skip", "apply And.intro", "constructor", "exact ⟨hp, hq⟩", "trivial", "simp", "bogus", "intro"]


async def _timed(calls: int, call: Any) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    return latencies


async def _over_stdio(workdir: Path, calls: int) -> tuple[list[float], list[float]]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "lean_mcp.cli", "serve"], env=_env(workdir), cwd=str(workdir)
    )
    with (workdir / "server.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            sketch = await session.call_tool("verify_proof", {"proof": SKETCH})
            assert sketch.structured_content is not None, sketch
            start = sketch.structured_content["result"]["sorries"][0]["proof_state_id"]

            async def one() -> None:
                result = await session.call_tool("run_tactic", {"proof_state_id": start, "tactic": "skip"})
                assert not result.is_error, result

            async def eight() -> None:
                result = await session.call_tool("try_tactics", {"proof_state_id": start, "tactics": EIGHT})
                assert not result.is_error and result.structured_content is not None, result
                assert len(result.structured_content["results"]) == len(EIGHT)

            await _timed(10, one)  # warm up
            run = await _timed(calls, one)
            tried = await _timed(max(10, calls // 4), eight)
    return run, tried


async def _raw_stdio(workdir: Path, calls: int) -> tuple[list[float], list[float]]:
    """The same calls from a bare JSON-RPC client: no SDK parsing, no output-schema check."""
    with (workdir / "raw-server.log").open("w") as errlog:
        async with raw_client(_env(workdir) | {"LEAN_MCP_DB": str(workdir / "raw.sqlite3")}, workdir, errlog) as client:
            sketch = await client.call_tool("verify_proof", {"proof": SKETCH})
            start = sketch["structuredContent"]["result"]["sorries"][0]["proof_state_id"]

            async def one() -> None:
                result = await client.call_tool("run_tactic", {"proof_state_id": start, "tactic": "skip"})
                assert not result["isError"], result

            async def eight() -> None:
                result = await client.call_tool("try_tactics", {"proof_state_id": start, "tactics": EIGHT})
                assert not result["isError"] and len(result["structuredContent"]["results"]) == len(EIGHT), result

            await _timed(10, one)
            run = await _timed(calls, one)
            tried = await _timed(max(10, calls // 4), eight)
    return run, tried


async def _in_process(calls: int) -> list[float]:
    async with ReplBackend(standin_command(), project=Path(".")) as backend:
        start = (await backend.check(SKETCH, ProofConfig())).sorries[0].proof_state_id
        assert start is not None

        async def one() -> None:
            await backend.run_tactic(start, "skip")

        await _timed(10, one)
        return await _timed(calls, one)


def run(quick: bool) -> list[Row]:
    """run_tactic latency over stdio and in-process, try_tactics(8) latency over stdio."""
    calls = 40 if quick else 400
    with tempfile.TemporaryDirectory(prefix="bench-tactics-") as tmp:
        stdio, tried = anyio.run(_over_stdio, Path(tmp), calls)
        raw, raw_tried = anyio.run(_raw_stdio, Path(tmp), calls)
    direct = anyio.run(_in_process, calls)
    note = f"{calls} sequential calls from one proof state, zero-cost stand-in"
    raw_note = "bare JSON-RPC client: the server and the pipes, without the SDK client"
    per_tactic = [t / len(EIGHT) for t in tried]
    return [
        Row(SECTION, "run_tactic round trip over stdio", latency_summary(stdio), target="p50 ≤ 5 ms", note=note),
        Row(SECTION, "run_tactic round trip, raw JSON-RPC client", latency_summary(raw), note=raw_note),
        Row(SECTION, "ReplBackend.run_tactic in-process (baseline)", latency_summary(direct), note=note),
        Row(SECTION, "try_tactics, 8 tactics per call, over stdio", latency_summary(tried), note=f"{len(tried)} calls"),
        Row(SECTION, "try_tactics, 8 tactics, raw JSON-RPC client", latency_summary(raw_tried), note=raw_note),
        Row(SECTION, "try_tactics, per tactic", latency_summary(per_tactic), note="one REPL, one after another"),
    ]
