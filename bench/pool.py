"""The REPL pool against the stand-in REPL: throughput, latency, and header reuse vs fresh REPLs.

Rows:
* zero-cost stand-in: proofs/s and latency with 2 REPLs and 4 closed-loop clients (pool overhead);
* header reuse: 1 s imports + 50 ms proofs, 200 proofs on 2 REPLs, against the ideal
  (one import per REPL, then work / workers);
* a fresh REPL per proof, as lean-runner does (start, send header + body as one env-less command,
  close): measured on a few proofs, per-proof cost extrapolated to the same 200 proofs.
"""

from __future__ import annotations

import time

import anyio

from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._repl.process import ReplProcess
from lean_mcp._repl.protocol import command_request
from tests.standin import standin_command

from .common import Row, latency_summary

SECTION = "pool"
WORKERS = 2
HEADER = "import Mathlib\n"


def _proof(i: int) -> str:
    return f"{HEADER}theorem t{i} (n : Nat) : n + 0 = n := by\n  simp\n"


async def _closed_loop(pool: ReplPool, n: int, clients: int) -> tuple[list[float], float]:
    """`clients` tasks each check their share of `n` proofs one after another; latencies and wall time."""
    latencies: list[float] = []
    config = ProofConfig(timeout=120)

    async def client(share: range) -> None:
        for i in share:
            started = time.perf_counter()
            result = await pool.check(_proof(i), config)
            latencies.append(time.perf_counter() - started)
            if result.verdict != Verdict.PROVED:
                raise RuntimeError(f"proof {i}: {result.verdict} {result.error_message or result.messages}")

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for c in range(clients):
            group.start_soon(client, range(c, n, clients))
    return latencies, time.perf_counter() - started


async def _zero_cost(n: int) -> list[Row]:
    async with ReplPool(standin_command(), workers=WORKERS) as pool:
        await _closed_loop(pool, 2 * WORKERS, 2 * WORKERS)  # start the REPLs and import once
        latencies, wall = await _closed_loop(pool, n, 2 * WORKERS)
    return [
        Row(
            SECTION,
            f"zero-cost stand-in, {n} proofs, {WORKERS} REPLs",
            f"{n / wall:,.0f} proofs/s",
            "≥ 1,000 proofs/s",
            latency_summary(latencies),
        )
    ]


async def _reuse(n: int, import_s: float, work_s: float) -> tuple[Row, float]:
    command = standin_command(import_seconds=import_s, work_seconds=work_s)
    async with ReplPool(command, workers=WORKERS) as pool:
        latencies, wall = await _closed_loop(pool, n, 2 * WORKERS)
        starts = pool.health()["repl_starts"]
    # each REPL pays one header command (import + the stand-in's per-command work), then n/WORKERS proofs
    ideal = import_s + work_s + n * work_s / WORKERS
    row = Row(
        SECTION,
        f"header reuse: {import_s:g} s import + {work_s * 1000:g} ms proofs, {n} proofs, {WORKERS} REPLs",
        f"{wall:.2f} s ({n / wall:.1f} proofs/s)",
        "within 10% of ideal",
        f"ideal {ideal:.2f} s, overhead {100 * (wall / ideal - 1):+.1f}%; {starts} REPL starts; "
        + latency_summary(latencies),
    )
    return row, wall


async def _fresh_repl_per_proof(n: int, import_s: float, work_s: float) -> float:
    """Seconds per proof (wall / n) with a new REPL per proof, `WORKERS` at a time."""
    command = standin_command(import_seconds=import_s, work_seconds=work_s)
    limiter = anyio.CapacityLimiter(WORKERS)

    async def one(i: int) -> None:
        async with limiter:
            repl = await ReplProcess.start(command)
            try:
                response = await repl.request(command_request(_proof(i)), seconds=120)
                if "env" not in response or response.get("messages"):
                    raise RuntimeError(f"fresh REPL proof {i}: {response}")
            finally:
                await repl.aclose()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, i)
    return (time.perf_counter() - started) / n


async def _main(quick: bool) -> list[Row]:
    rows = await _zero_cost(300 if quick else 3000)
    import_s, work_s = (0.2, 0.02) if quick else (1.0, 0.05)
    n, fresh_n = (40, 4) if quick else (200, 10)
    reuse_row, reuse_wall = await _reuse(n, import_s, work_s)
    per_proof = await _fresh_repl_per_proof(fresh_n, import_s, work_s)
    fresh_total = per_proof * n
    # what a perfect pool (no overhead at all) would gain over the measured fresh-REPL cost
    bound = fresh_total / (import_s + work_s + n * work_s / WORKERS)
    rows.append(reuse_row)
    rows.append(
        Row(
            SECTION,
            f"fresh REPL per proof (lean-runner style), same {n} proofs",
            f"{fresh_total:.1f} s (extrapolated)",
            "pool ≥ 20× faster",
            f"measured {fresh_n} proofs at {per_proof:.3f} s/proof over {WORKERS} slots; "
            f"pool is {fresh_total / reuse_wall:.1f}× faster (a perfect pool: {bound:.1f}×)",
        )
    )
    return rows


def run(quick: bool) -> list[Row]:
    """Measure the pool against the stand-in (see the module docstring)."""
    return anyio.run(_main, quick)
