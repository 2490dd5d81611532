"""The HTTP runner's own cost: `lean-mcp runner` over a zero-cost REPL stand-in.

Measures proofs/s and latency of `POST /prove/check` (lean-runner's form body, many clients at
once) and of Kimina's `POST /api/check` with 100-snippet batches. The stand-in answers at once,
so the numbers are the runner's overhead: HTTP, the durable job store, the queue and the pool.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from tests.e2e.runner_support import RunnerProcess, runner_env

from .common import Row, cpu_seconds, latency_summary

SECTION = "runner"


async def _check_load(url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    """`n` distinct proofs through /prove/check, `concurrency` at a time: (wall seconds, latencies)."""
    latencies: list[float] = []
    limiter = anyio.CapacityLimiter(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def one(k: int) -> None:
            async with limiter:
                started = time.perf_counter()
                form = {"proof": f"theorem t{k} : {k} + 0 = {k} := rfl\n", "config": "{}"}
                response = await http.post("/prove/check", data=form)
                latencies.append(time.perf_counter() - started)
                assert response.json()["verdict"] == "proved", response.text

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for k in range(n):
                group.start_soon(one, k)
        return time.perf_counter() - started, latencies


async def _kimina_batches(url: str, batches: int, size: int) -> tuple[float, list[float]]:
    """`batches` sequential /api/check calls of `size` distinct snippets: (wall seconds, latencies)."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        started = time.perf_counter()
        for b in range(batches):
            snippets = [{"id": f"s{i}", "code": f"theorem k{b}_{i} : {i} = {i} := rfl\n"} for i in range(size)]
            t0 = time.perf_counter()
            response = await http.post("/api/check", json={"snippets": snippets, "timeout": 60})
            latencies.append(time.perf_counter() - t0)
            assert all(item["verdict"] == "proved" for item in response.json()["results"]), response.text[:500]
        return time.perf_counter() - started, latencies


def run(quick: bool) -> list[Row]:
    n_check, concurrency = (300, 32) if quick else (3000, 64)
    batches, size = (3, 100) if quick else (20, 100)
    workers = max(2, os.cpu_count() or 2)
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-runner-") as tmp:
        tmp_path = Path(tmp)
        env = runner_env(tmp_path, LEAN_MCP_WORKERS=str(workers), LEAN_MCP_CACHE="false", LEAN_MCP_LOG_LEVEL="WARNING")
        runner = RunnerProcess(tmp_path, env)
        try:
            runner.wait_ready()
            anyio.run(_check_load, runner.url, 20, 4)  # warm the pool and the connections
            cpu_before = cpu_seconds(runner.process.pid)
            wall, check_latencies = anyio.run(_check_load, runner.url, n_check, concurrency)
            cpu_per_proof = (cpu_seconds(runner.process.pid) - cpu_before) / n_check
            kimina_wall, batch_latencies = anyio.run(_kimina_batches, runner.url, batches, size)
        finally:
            runner.stop()
    note = f"zero-cost stand-in, {workers} REPLs, cache off, client on the same machine"
    return [
        Row(
            SECTION,
            f"/prove/check throughput (n={n_check}, {concurrency} clients)",
            f"{n_check / wall:.0f} proofs/s",
            note=note,
        ),
        Row(SECTION, "/prove/check latency", latency_summary(check_latencies), note=f"{concurrency} in flight"),
        Row(
            SECTION,
            "runner CPU per /prove/check",
            f"{cpu_per_proof * 1000:.2f} ms",
            note="HTTP + job store + queue + pool; the load generator is the bottleneck here",
        ),
        Row(
            SECTION,
            f"/api/check {size}-snippet batch latency (n={batches})",
            latency_summary(batch_latencies),
            note=note,
        ),
        Row(
            SECTION, "/api/check throughput", f"{batches * size / kimina_wall:.0f} proofs/s", note="one batch at a time"
        ),
    ]
