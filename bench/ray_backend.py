"""The ray backend against the local REPL pool, on the same stand-in REPL and a local Ray (2 CPUs).

Rows:
* per-proof overhead: a zero-cost stand-in, 2 REPLs, 2 closed-loop clients (no queueing, so a
  latency is one proof's service time); p50 latency of the Ray pool (one actor call per proof)
  minus the local pool's;
* throughput with 1 and 2 worker processes: 50 ms proofs, 4 clients, Ray pool vs local pool.
"""

from __future__ import annotations

import time

import anyio

from lean_mcp._repl.pool import ReplPool
from tests.standin import standin_command

from .common import Row, latency_summary, percentile
from .pool import _closed_loop

SECTION = "ray_backend"
CLIENTS = 4


def _pools(command: list[str], workers: int) -> dict[str, ReplPool]:
    from lean_mcp._backends.ray_cluster import RayReplPool

    return {
        "local pool": ReplPool(command, workers=workers),
        "ray pool": RayReplPool(command, workers=workers, ray_cpus=0.5),
    }


async def _measure(pool: ReplPool, n: int, clients: int) -> tuple[list[float], float]:
    async with pool:
        await _closed_loop(pool, 2 * pool.workers, clients)  # start the REPLs (and actors), import once
        return await _closed_loop(pool, n, clients)


async def _overhead(n: int) -> list[Row]:
    p50: dict[str, float] = {}
    rows = []
    for name, pool in _pools(standin_command(), 2).items():
        latencies, wall = await _measure(pool, n, clients=2)
        p50[name] = percentile(latencies, 50)
        rows.append(
            Row(
                SECTION,
                f"zero-cost stand-in, {name}, {n} proofs, 2 REPLs, 2 clients",
                f"{n / wall:,.0f} proofs/s",
                "",
                latency_summary(latencies),
            )
        )
    extra = (p50["ray pool"] - p50["local pool"]) * 1000
    rows.append(
        Row(
            SECTION,
            "per-proof overhead of Ray (p50, ray − local)",
            f"{extra:.1f} ms",
            "≤ 10 ms",
            "one actor call per proof",
        )
    )
    return rows


async def _throughput(n: int, work_s: float) -> list[Row]:
    rows = []
    for workers in (1, 2):
        for name, pool in _pools(standin_command(work_seconds=work_s), workers).items():
            _, wall = await _measure(pool, n, CLIENTS)
            ideal = n * work_s / workers
            rows.append(
                Row(
                    SECTION,
                    f"{work_s * 1000:g} ms proofs, {name}, {workers} worker{'s' * (workers > 1)}",
                    f"{n / wall:.1f} proofs/s",
                    "",
                    f"{n} proofs in {wall:.2f} s; ideal {n / ideal:.1f} proofs/s",
                )
            )
    return rows


async def _main(quick: bool) -> list[Row]:
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - started
    try:
        rows = [Row(SECTION, "start a local Ray (2 CPUs)", f"{start_s:.1f} s", "", "paid once, at server start")]
        rows += await _overhead(200 if quick else 1000)
        rows += await _throughput(20 if quick else 100, 0.05)
    finally:
        ray.shutdown()
    return rows


def run(quick: bool) -> list[Row]:
    """Measure the ray backend's pool against the local pool (see the module docstring)."""
    return anyio.run(_main, quick)
