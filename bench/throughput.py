"""Batch throughput against the physical bound, measured in one run on the same REPL stand-ins.

The *raw pipe bound* is a bare asyncio loop that writes each snippet to one of `WORKERS`
zero-cost stand-in REPLs and reads its answer, one request in flight per REPL: no pool, no job
store, no HTTP. Nothing that checks proofs through those REPLs can beat it, so every other figure
is printed as a ratio to it, which compares across machines (absolute numbers on a shared
machine move with its load; the ratios move far less):

* the REPL pool alone (`ReplPool.check`, in-process, many callers at once), with the pool's own
  CPU per snippet; once as configured by default (a REPL is recycled after `max_uses` = 500 proofs,
  so each stand-in restarts about twice in a run), once with no restart in the run, which leaves
  the pool's own overhead (a stand-in takes about 0.15 s of CPU to start, zero-cost proofs none);
  and once with `--prestart` (each REPL's successor started ahead of its recycling);
* `lean-mcp runner`'s Kimina `POST /api/check` with 100-snippet batches, 1, 2, 4 and 8 batches in
  flight (the durable store on: each batch is committed before it is queued);
* `POST /prove/check` with 64 concurrent clients, and MCP `verify_proof` with 200 concurrent calls:
  once from the real MCP SDK client (what users run), and once from a bare JSON-RPC load generator
  (`raw_mcp`), which measures the server without the SDK client's own per-call cost.

The bound and the pool lines are measured in `ROUNDS` interleaved rounds (bound, pool, pool without
restarts, bound, ...) and each is the median of its rounds, so a burst of load on the shared machine
moves one round, not the figure. The load generator runs in this process, on the same cores as the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import shlex
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from tests.e2e.runner_support import RunnerProcess, runner_env
from tests.standin import standin_command

from . import sdk_floor
from .common import Row, audited_text, closed_loop, cpu_seconds, machine_busy_seconds
from .raw_mcp import raw_client

SECTION = "throughput"
WORKERS = 2
BATCH = 100
ROUNDS = 3
REPO = Path(__file__).resolve().parents[1]


async def _post(http: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    """POST, once more on a fresh connection if the server closed an idle keep-alive one under us."""
    try:
        return await http.post(path, **kwargs)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return await http.post(path, **kwargs)


def _snippet(tag: str, i: int) -> str:
    # distinct text per snippet, so no cache can answer
    return f"theorem {tag}_{i} : {i} = {i} := rfl\n"


# --------------------------------------------------------------------------- the raw pipe bound


@dataclasses.dataclass
class RawFigure:
    """The raw pipe bound: snippets/s, and the stand-ins' CPU per snippet (µs)."""

    rate: float
    standin_cpu_us: float


async def _raw_pipe(n: int, audited: bool = False) -> RawFigure:
    """Snippets/s of a bare asyncio loop over `WORKERS` stand-ins, one request in flight per REPL;
    `audited`: each snippet with the audit's probe lines (laid out before the clock starts)."""
    procs = [
        await asyncio.create_subprocess_exec(
            *standin_command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(WORKERS)
    ]

    def requests(share: range, tag: str) -> list[bytes]:
        texts = [_snippet(tag, i) for i in share]
        return [json.dumps({"cmd": audited_text(text) if audited else text}).encode() + b"\n\n" for text in texts]

    async def drive(proc: asyncio.subprocess.Process, share: list[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        for request in share:
            proc.stdin.write(request)
            await proc.stdin.drain()
            answer = json.loads(await proc.stdout.readuntil(b"\n\n"))
            # plain: no message at all; audited: only the `#print axioms` answer, never an error
            if "env" not in answer or len(answer.get("messages", ())) != audited or "error" in str(answer):
                raise RuntimeError(f"stand-in answered {answer!r}")

    try:
        await asyncio.gather(*(drive(p, requests(range(w, 20, WORKERS), "warm")) for w, p in enumerate(procs)))
        shares = [requests(range(w, n, WORKERS), "raw") for w in range(WORKERS)]
        cpu = sum(cpu_seconds(proc.pid) for proc in procs)
        started = time.perf_counter()
        await asyncio.gather(*(drive(p, share) for p, share in zip(procs, shares, strict=True)))
        rate = n / (time.perf_counter() - started)
        return RawFigure(rate, (sum(cpu_seconds(proc.pid) for proc in procs) - cpu) / n * 1e6)
    finally:
        for proc in procs:
            proc.kill()
            await proc.wait()


# --------------------------------------------------------------------------- the pool alone


@dataclasses.dataclass
class PoolFigure:
    """One run of the pool alone: snippets/s, the pool process's CPU per snippet, REPL restarts."""

    rate: float
    cpu_us: float
    restarts: int


async def _pool(n: int, callers: int, max_uses: int | None = None, *, prestart: bool = False) -> PoolFigure:
    """Snippets/s through `ReplPool.check` with `callers` tasks checking their share in turn."""
    config = ProofConfig(timeout=60)
    options: dict[str, Any] = {"prestart": prestart} if max_uses is None else {"max_uses": max_uses}
    async with ReplPool(standin_command(), workers=WORKERS, **options) as pool:

        async def run(count: int, tag: str) -> float:
            async def check(i: int) -> None:
                result = await pool.check(_snippet(tag, i), config)
                if result.verdict != Verdict.PROVED:
                    raise RuntimeError(f"pool: {result.verdict} {result.error_message}")

            return count / await closed_loop(check, count, callers)

        await run(4 * WORKERS, "warm")
        starts, cpu = pool.health()["repl_starts"], time.process_time()
        rate = await run(n, "pool")
        cpu_us = (time.process_time() - cpu) / n * 1e6
        return PoolFigure(rate, cpu_us, pool.health()["repl_starts"] - starts)


_Figure = TypeVar("_Figure", RawFigure, PoolFigure)


def _median(figures: list[_Figure]) -> _Figure:
    """The figure of median rate."""
    rates = sorted(figures, key=lambda f: f.rate)
    return rates[len(rates) // 2]


def _bound_and_pool(n: int, rounds: int) -> tuple[RawFigure, RawFigure, PoolFigure, PoolFigure, PoolFigure]:
    """The raw pipe bound (plain and audited snippets), the pool, the pool without REPL restarts, and the
    pool with `--prestart`: each the median of `rounds`."""
    raws: list[RawFigure] = []
    audited: list[RawFigure] = []
    pools: list[PoolFigure] = []
    steady: list[PoolFigure] = []
    ahead: list[PoolFigure] = []
    for _ in range(rounds):
        raws.append(asyncio.run(_raw_pipe(n)))
        audited.append(asyncio.run(_raw_pipe(n, audited=True)))
        pools.append(anyio.run(_pool, n, 8 * WORKERS))
        steady.append(anyio.run(_pool, n, 8 * WORKERS, 2 * n))
        ahead.append(anyio.run(functools.partial(_pool, n, 8 * WORKERS, prestart=True)))
    return _median(raws), _median(audited), _median(pools), _median(steady), _median(ahead)


# --------------------------------------------------------------------------- the runner over HTTP


async def _api_check(url: str, n: int, in_flight: int, tag: str) -> float:
    """Snippets/s of `n` snippets sent as 100-snippet /api/check batches, `in_flight` at a time."""
    limiter = anyio.CapacityLimiter(in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=in_flight)) as http:

        async def batch(b: int) -> None:
            async with limiter:
                snippets = [{"id": f"s{i}", "code": _snippet(f"{tag}{b}", i)} for i in range(BATCH)]
                response = await _post(http, "/api/check", json={"snippets": snippets, "timeout": 60})
                results = response.json()["results"]
                if len(results) != BATCH or any(item["verdict"] != "proved" for item in results):
                    raise RuntimeError(f"/api/check answered {response.text[:300]}")

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for b in range(n // BATCH):
                group.start_soon(batch, b)
        return n / (time.perf_counter() - started)


async def _prove_check(url: str, n: int, clients: int) -> float:
    """Proofs/s of `n` distinct proofs through /prove/check from `clients` keep-alive connections.

    Each client is a bare HTTP/1.1 connection: httpx's async pool spends milliseconds of CPU per
    request at 64 connections, on the cores the server runs on, and would measure itself.
    """
    address = urllib.parse.urlsplit(url)

    async def client(share: range) -> None:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            for k in share:
                body = urllib.parse.urlencode({"proof": _snippet("pc", k), "config": "{}"}).encode()
                head = f"POST /prove/check HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Length: {len(body)}\r\n"
                writer.write(f"{head}Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode() + body)
                status, *headers = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
                length = next(int(h.split(":")[1]) for h in headers if h.lower().startswith("content-length"))
                answer = await reader.readexactly(length)
                if " 200 " not in status or json.loads(answer).get("verdict") != "proved":
                    raise RuntimeError(f"/prove/check answered {status}: {answer[:300]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for c in range(clients):
            group.start_soon(client, range(c, n, clients))
    return n / (time.perf_counter() - started)


#: The /api/check run whose CPU is taken apart, and the parts: the runner, the load generator, the machine.
CPU_IN_FLIGHT = 4
CPU_PARTS = ("cpu_runner", "cpu_client", "cpu_machine")


def _cpu_split(runner_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far of the runner process, of this process (the load generator), of the whole machine
    (the REPLs run in a sandbox that forks away from the runner, so they are counted as the rest of it)."""
    return cpu_seconds(runner_pid), time.process_time(), machine_busy_seconds()


def _runner_figures(tmp: Path, n: int, flights: Sequence[int], clients: int) -> dict[str, float]:
    env = runner_env(tmp, LEAN_MCP_WORKERS=str(WORKERS), LEAN_MCP_CACHE="false", LEAN_MCP_LOG_LEVEL="WARNING")
    runner = RunnerProcess(tmp, env)
    figures: dict[str, float] = {}
    try:
        runner.wait_ready()
        anyio.run(_api_check, runner.url, 2 * BATCH, 2, "warm")
        for in_flight in flights:
            before = _cpu_split(runner.process.pid)
            figures[f"api{in_flight}"] = anyio.run(_api_check, runner.url, n, in_flight, f"f{in_flight}")
            if in_flight == CPU_IN_FLIGHT:
                after = _cpu_split(runner.process.pid)
                for part, start, end in zip(CPU_PARTS, before, after, strict=True):
                    figures[part] = (end - start) / n * 1e6
        figures["prove"] = anyio.run(_prove_check, runner.url, n // 2, clients)
    finally:
        runner.stop()
    return figures


# --------------------------------------------------------------------------- MCP over stdio


def _mcp_env(tmp: Path, db: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(REPO),
        "LEAN_MCP_REPL": shlex.join(standin_command()),
        "LEAN_MCP_DB": str(tmp / db),
        "LEAN_MCP_WORKERS": str(WORKERS),
        "LEAN_MCP_LOG_LEVEL": "WARNING",
        "LEAN_MCP_CACHE": "false",
    }


async def _mcp(tmp: Path, calls: int, floor: bool = False) -> float:
    """verify_proof calls/s over stdio from the MCP SDK client, `calls` at once; `floor`: the no-op tool of
    `bench.sdk_floor` instead (the most any tool can answer to this client)."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    if floor:
        server, env, tool = ["-m", "bench.sdk_floor"], {"PYTHONPATH": str(REPO)}, sdk_floor.TOOL
    else:
        server, env, tool = ["-m", "lean_mcp.cli", "serve"], _mcp_env(tmp, "mcp.sqlite3"), "verify_proof"
    params = StdioServerParameters(command=sys.executable, args=server, env=env, cwd=str(tmp))
    with (tmp / "mcp.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            async def call(tag: str, i: int) -> None:
                result = await session.call_tool(tool, {"proof": _snippet(tag, i)})
                if result.is_error or (result.structured_content or {}).get("verdict") != "proved":
                    raise RuntimeError(f"{tool} answered {result}")

            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(call, "mwarm", i)
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for i in range(calls):
                    group.start_soon(call, "m", i)
            return calls / (time.perf_counter() - started)


async def _mcp_raw(tmp: Path, calls: int) -> float:
    """verify_proof calls/s over stdio from a bare JSON-RPC load generator, `calls` at once."""
    with (tmp / "mcp-raw.log").open("w") as errlog:
        async with raw_client(_mcp_env(tmp, "mcp-raw.sqlite3"), tmp, errlog) as client:

            async def call(tag: str, i: int) -> None:
                result = await client.call_tool("verify_proof", {"proof": _snippet(tag, i)})
                if result["isError"] or result["structuredContent"]["verdict"] != "proved":
                    raise RuntimeError(f"verify_proof answered {result}")

            await asyncio.gather(*(call("rwarm", i) for i in range(20)))
            started = time.perf_counter()
            await asyncio.gather(*(call("r", i) for i in range(calls)))
            return calls / (time.perf_counter() - started)


async def _sdk_floor(tmp: Path, calls: int, in_flight: int = 200) -> float:
    """No-op tool calls/s over stdio (`bench.sdk_floor`: the SDK's MCPServer alone), `in_flight` at once."""
    limit = asyncio.Semaphore(in_flight)
    with (tmp / "sdk-floor.log").open("w") as errlog:
        async with raw_client({"PYTHONPATH": str(REPO)}, tmp, errlog, server=("bench.sdk_floor",)) as client:

            async def call(i: int) -> None:
                async with limit:
                    result = await client.call_tool(sdk_floor.TOOL, {"proof": _snippet("floor", i)})
                if result["isError"]:
                    raise RuntimeError(f"{sdk_floor.TOOL} answered {result}")

            await asyncio.gather(*(call(i) for i in range(20)))
            started = time.perf_counter()
            await asyncio.gather(*(call(i) for i in range(calls)))
            return calls / (time.perf_counter() - started)


# --------------------------------------------------------------------------- the table


#: What a ratio to the audited bound compares with: the same REPL work as every front end's.
_OF_AUDITED = "of the audited bound (the REPL work every front end asks for: the snippet and its probes)"


def _row(name: str, value: float, bound: float, target: str = "", note: str = "") -> Row:
    return Row(SECTION, name, f"{value:,.0f}/s = {value / bound:.2f} of bound", target, note)


def _cpu_row(figures: dict[str, float], raw: float, audited_bound: RawFigure) -> Row:
    """Where the CPU of the /api/check run at CPU_IN_FLIGHT goes, against what the 2 cores can give."""
    runner, client, machine = (figures[part] for part in CPU_PARTS)
    rate = figures[f"api{CPU_IN_FLIGHT}"]
    cores = os.cpu_count() or 1
    at_target = cores * 1e6 / (0.45 * raw)
    return Row(
        SECTION,
        f"/api/check, {CPU_IN_FLIGHT} in flight: CPU per snippet",
        f"{machine:,.0f} µs",
        "",
        f"the whole machine: runner {runner:,.0f} µs, load generator {client:,.0f} µs, the rest (the REPLs, anything "
        f"else running) {machine - runner - client:,.0f} µs; {cores} cores "
        f"give {cores * 1e6 / rate:,.0f} µs per snippet at this rate and {at_target:,.0f} µs at 0.45 of the bound, "
        f"of which the bare loop's stand-ins alone use {audited_bound.standin_cpu_us:,.0f} µs on an audited snippet",
    )


def run(quick: bool) -> list[Row]:
    """Raw pipe bound, then pool, /api/check at 1/2/4/8 in flight, /prove/check and MCP, as ratios."""
    n = 600 if quick else 2000
    flights = (1, 4) if quick else (1, 2, 4, 8)
    bound, audited_bound, pool, steady, ahead = _bound_and_pool(n, 1 if quick else ROUNDS)
    raw, raw_audited = bound.rate, audited_bound.rate
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-tp-") as tmp:
        figures = _runner_figures(Path(tmp), n, flights, 64)
        mcp = anyio.run(_mcp, Path(tmp), 100 if quick else 200)
        mcp_raw = anyio.run(_mcp_raw, Path(tmp), 100 if quick else 200)
        floor = anyio.run(_sdk_floor, Path(tmp), 500 if quick else 2000)
        floor_sdk = anyio.run(functools.partial(_mcp, Path(tmp), 100 if quick else 200, floor=True))
    note = f"{WORKERS} zero-cost stand-ins, {n} distinct snippets, cache off, median of {1 if quick else ROUNDS}"
    rows = [
        Row(
            SECTION,
            "raw pipe bound (bare asyncio loop)",
            f"{raw:,.0f}/s = 1.00",
            note=f"{note}; the stand-ins' CPU: {bound.standin_cpu_us:.0f} µs per snippet",
        ),
        _row(
            "raw pipe bound, audited snippets (what every front end sends)",
            raw_audited,
            raw,
            note="the same loop, each snippet with the axiom audit's probe lines: the stand-ins' own (Python) "
            "work on the probes, which the runner and MCP lines pay and the pool line does not; the stand-ins' CPU: "
            f"{audited_bound.standin_cpu_us:.0f} µs per snippet",
        ),
        _row(
            "REPL pool alone (in-process)",
            pool.rate,
            raw,
            "≥ 0.50",
            f"{8 * WORKERS} callers; {pool.cpu_us:.0f} µs pool CPU per snippet; {pool.restarts} REPL restarts "
            "(--max-uses 500)",
        ),
        _row(
            "REPL pool alone, no REPL restart in the run",
            steady.rate,
            raw,
            note=f"{steady.cpu_us:.0f} µs pool CPU per snippet; max_uses above the run",
        ),
        _row(
            "REPL pool alone, --prestart",
            ahead.rate,
            raw,
            note=f"{ahead.cpu_us:.0f} µs pool CPU per snippet; {ahead.restarts} REPL starts, each ahead of its "
            "recycling (--max-uses 500)",
        ),
    ]
    for in_flight in flights:
        target = "≥ 0.45" if in_flight == 4 else ""
        rows.append(
            _row(
                f"/api/check, {in_flight} batch(es) of {BATCH} in flight",
                figures[f"api{in_flight}"],
                raw,
                target,
                f"durable store on; {figures[f'api{in_flight}'] / raw_audited:.2f} of the audited bound",
            )
        )
    rows.append(_cpu_row(figures, raw, audited_bound))
    rows.append(
        _row(
            "/prove/check, 64 clients",
            figures["prove"],
            raw,
            note=f"{n // 2} proofs; {figures['prove'] / raw_audited:.2f} {_OF_AUDITED}",
        )
    )
    rows.append(
        _row(
            "MCP verify_proof over stdio, 200 at once",
            mcp,
            raw,
            "≥ 1,500/s",
            f"MCP SDK client; {mcp / raw_audited:.2f} {_OF_AUDITED}",
        )
    )
    rows.append(
        _row(
            "MCP verify_proof, 200 at once, raw JSON-RPC client",
            mcp_raw,
            raw,
            note="bare load generator: the server without the SDK client's cost",
        )
    )
    rows.append(
        _row(
            "MCP SDK floor: a no-op tool, 200 at once, raw JSON-RPC client",
            floor,
            raw,
            note="bench.sdk_floor: the SDK's MCPServer on lean-mcp's stdio, no lean-mcp work; no MCP tool is faster",
        )
    )
    rows.append(
        _row(
            "MCP SDK floor: the same no-op tool, 200 at once, MCP SDK client",
            floor_sdk,
            raw,
            note="what the verify_proof row's client gets from a tool that does nothing: its ceiling",
        )
    )
    return rows
