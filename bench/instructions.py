"""Instructions per operation, counted by callgrind: where lean-mcp's CPU goes, free of the machine's noise.

Timings on a shared machine move with its load; instruction counts move only when the code does.
Each figure runs one process under `valgrind --tool=callgrind` with counting switched on
(`callgrind_control`) only around the measured operations, so start-up and warm-up are not counted,
and divides by their number. The REPL stand-ins and the load generators run outside valgrind.

Rows (zero-cost snippets, 2 stand-ins, cache off):
* the REPL pool alone, per snippet (16 callers);
* the same snippets through the verdict checks (`TrustedBackend` over the REPL backend): the
  difference is what the audit costs lean-mcp;
* the runner's `POST /api/check`, 4 batches of 100 in flight: its event-loop thread, and the job
  store's writer thread (which runs beside it);
* MCP over stdio from a bare JSON-RPC client: a tool that does nothing on the SDK's `MCPServer`
  (`bench.sdk_floor`: the SDK's own cost per call), `run_tactic`, and `verify_proof` 20 and 200 at
  once (a count that grows with the calls in flight is work that scales with the queue, not the call).

A process is counted per thread; the first thread is the event loop. Skipped (one row saying so)
when valgrind is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import anyio

from lean_mcp._backends.repl import ReplBackend
from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._trust.guard import TrustedBackend
from tests.e2e.runner_support import RunnerProcess, runner_env
from tests.standin import standin_command

from . import sdk_floor
from .common import Row, closed_loop
from .mcp import _env as mcp_env
from .raw_mcp import RawClient, raw_client
from .tactics import SKETCH
from .throughput import _api_check, _snippet

SECTION = "instructions"
WORKERS = 2
CALLERS = 16


# --------------------------------------------------------------------------- callgrind


def _callgrind(out: Path) -> list[str]:
    """The command prefix that runs a process under callgrind, counting off until switched on."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.%p",
    ]


def _control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@contextlib.contextmanager
def _counting(pid: int) -> Iterator[None]:
    """Count the instructions `pid` executes inside the block (then write them out)."""
    _control(pid, "--instr=on")
    try:
        yield
    finally:
        _control(pid, "--instr=off")
        _control(pid, "--dump")


def _threads(out: Path, pid: int) -> list[int]:
    """Instructions counted per thread of `pid`, the first thread (the event loop) first."""
    counts: dict[str, int] = {}
    for path in sorted(out.glob(f"cg.{pid}[.-]*")):
        thread = path.name.rsplit("-", 1)[-1] if "-" in path.name else "01"
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                counts[thread] = max(counts.get(thread, 0), int(line.split()[1]))
    return [counts[thread] for thread in sorted(counts)]


# --------------------------------------------------------------------------- in-process figures


async def _child(kind: str, n: int) -> None:
    """Run in the counted process: warm up, then `n` snippets through the pool (`kind` "pool") or the
    checks ("trusted") with counting on."""
    config = ProofConfig(timeout=60)
    backend: ReplPool | TrustedBackend = ReplPool(standin_command(), workers=WORKERS)
    if kind == "trusted":
        backend = TrustedBackend(ReplBackend(standin_command(), project=Path.cwd(), workers=WORKERS))

    def checker(tag: str) -> Callable[[int], Awaitable[None]]:
        async def check(i: int) -> None:
            verdict = (await backend.check(_snippet(tag, i), config)).verdict
            if verdict != Verdict.PROVED:
                raise RuntimeError(f"snippet {i}: {verdict}")

        return check

    async with backend:
        await closed_loop(checker("warm"), 4 * CALLERS, CALLERS)
        with _counting(os.getpid()):
            await closed_loop(checker("counted"), n, CALLERS)


def _in_process(kind: str, n: int) -> list[int]:
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        command = [*_callgrind(Path(tmp)), sys.executable, "-m", "bench.instructions", kind, str(n)]
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"{kind} under callgrind failed:\n{child.stderr[-2000:]}")
        pid = int(next(path.name.split(".")[1].split("-")[0] for path in Path(tmp).glob("cg.*")))
        return [count // n for count in _threads(Path(tmp), pid)]


# --------------------------------------------------------------------------- server figures


def _runner(n: int) -> list[int]:
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        out = Path(tmp)
        env = runner_env(out, LEAN_MCP_WORKERS=str(WORKERS), LEAN_MCP_CACHE="false", LEAN_MCP_LOG_LEVEL="WARNING")
        command = [*_callgrind(out), sys.executable, "-m", "lean_mcp.cli", "runner"]
        runner = RunnerProcess(out, env, command=command)
        try:
            runner.wait_ready(300)
            anyio.run(_api_check, runner.url, 200, 2, "warm")
            with _counting(runner.process.pid):
                anyio.run(_api_check, runner.url, n, 4, "counted")
        finally:
            runner.stop()
        return [count // n for count in _threads(out, runner.process.pid)]


async def _over_stdio(
    server: Sequence[str], call: Callable[[RawClient, int], Awaitable[None]], n: int, in_flight: int
) -> list[int]:
    """Instructions per call of `call`, `in_flight` at once, on `python -m server...` over stdio."""
    limit = asyncio.Semaphore(in_flight)

    async def limited(client: RawClient, i: int) -> None:
        async with limit:
            await call(client, i)

    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        out = Path(tmp)
        env = mcp_env(out) | {"LEAN_MCP_DB": str(out / "jobs.sqlite3")}
        with (out / "server.log").open("w") as errlog:
            async with raw_client(env, out, errlog, server=server, launcher=_callgrind(out)) as client:
                await asyncio.gather(*(limited(client, -1 - i) for i in range(30)))
                with _counting(client.pid):
                    await asyncio.gather(*(limited(client, i) for i in range(n)))
                pid = client.pid
        return [count // n for count in _threads(out, pid)]


async def _noop(client: RawClient, i: int) -> None:
    result = await client.call_tool(sdk_floor.TOOL, {"proof": _snippet("noop", i)})
    assert not result["isError"], result


async def _verify(client: RawClient, i: int) -> None:
    result = await client.call_tool("verify_proof", {"proof": _snippet("verify", i)})
    assert result["structuredContent"]["verdict"] == "proved", result


async def _run_tactic(n: int) -> list[int]:
    state: list[str] = []

    async def call(client: RawClient, i: int) -> None:
        if not state:
            sketch = await client.call_tool("verify_proof", {"proof": SKETCH})
            state.append(sketch["structuredContent"]["result"]["sorries"][0]["proof_state_id"])
        result = await client.call_tool("run_tactic", {"proof_state_id": state[0], "tactic": "skip"})
        assert not result["isError"], result

    return await _over_stdio(("lean_mcp.cli", "serve"), call, n, 1)


# --------------------------------------------------------------------------- the table


def _k(count: int) -> str:
    return f"{count / 1000:,.0f} k"


def run(quick: bool) -> list[Row]:
    """Instructions per snippet / call on each layer (see the module docstring)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return [Row(SECTION, "instruction counts", "skipped", note="valgrind is not installed")]
    n = 100 if quick else 400
    pool = _in_process("pool", n)[0]
    trusted = _in_process("trusted", n)[0]
    loop, *writer = _runner(n)
    floor_one = anyio.run(_over_stdio, ("bench.sdk_floor",), _noop, n, 1)[0]
    floor = anyio.run(_over_stdio, ("bench.sdk_floor",), _noop, n, 200)[0]
    tactic = anyio.run(_run_tactic, n)[0]
    verify_20 = anyio.run(_over_stdio, ("lean_mcp.cli", "serve"), _verify, n, 20)[0]
    verify, *verify_writer = anyio.run(_over_stdio, ("lean_mcp.cli", "serve"), _verify, n, 200)
    audit = trusted - pool
    return [
        Row(SECTION, "REPL pool alone, per snippet", _k(pool), note=f"in-process, {CALLERS} callers"),
        Row(
            SECTION,
            "the verdict checks over the REPL backend, per snippet",
            _k(trusted),
            note=f"the audit adds {_k(audit)} = {100 * audit / pool:.0f}% of the pool's (its own work and the "
            "pool's on the longer text and answer)",
        ),
        Row(
            SECTION,
            "runner /api/check, 4 batches of 100 in flight, per snippet",
            f"{_k(loop)} + {_k(sum(writer))}",
            note=f"event loop + job-store writer thread; the loop's beyond the checks: {_k(loop - trusted)}",
        ),
        Row(SECTION, "MCP no-op tool on the SDK (the floor), one at a time", _k(floor_one), note="bench.sdk_floor"),
        Row(SECTION, "MCP no-op tool on the SDK (the floor), 200 at once", _k(floor), note="bench.sdk_floor"),
        Row(
            SECTION,
            "MCP run_tactic, one at a time",
            _k(tactic),
            note=f"beyond the SDK's floor: {_k(tactic - floor_one)}",
        ),
        Row(SECTION, "MCP verify_proof, 20 at once", _k(verify_20), note="event loop"),
        Row(
            SECTION,
            "MCP verify_proof, 200 at once",
            f"{_k(verify)} + {_k(sum(verify_writer))}",
            note=f"event loop + job-store writer; the loop's beyond the SDK's floor: {_k(verify - floor)}",
        ),
    ]


if __name__ == "__main__":
    anyio.run(_child, sys.argv[1], int(sys.argv[2]))
