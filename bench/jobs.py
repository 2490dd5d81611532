"""Job service benchmarks: submit throughput with the SQLite store on disk, and cache-hit latency.

The backend here answers instantly (no Lean), so the numbers are the service's own cost: validation,
cache lookup, the durable (fsync'ed, group-committed) insert, the queue, and the result writes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from lean_mcp._backends.base import Backend
from lean_mcp._jobs.service import ProofService
from lean_mcp._jobs.store import JobStore
from lean_mcp._models import LeanOutput, ProofConfig, ProofResult

from .common import Row, latency_summary, percentile

SECTION = "jobs"


class InstantBackend(Backend):
    """Answers `proved` at once; `hold` keeps every check waiting (to measure pure submission)."""

    name = "instant"

    def __init__(self, capacity: int = 4) -> None:
        self._capacity = capacity
        self.hold: anyio.Event | None = None

    @property
    def identity(self) -> str:
        return "instant"

    @property
    def capacity(self) -> int:
        return self._capacity

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        if self.hold is not None:
            await self.hold.wait()
        return ProofResult.from_output(LeanOutput(env=0), lean_time=0.0)


def _codes(n: int, tag: str) -> list[str]:
    return [f"theorem {tag}{i} : True := trivial\n" for i in range(n)]


async def _concurrent_submits(service: ProofService, codes: list[str]) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for code in codes:
            group.start_soon(service.submit, code)
    return time.perf_counter() - started


async def _bench(directory: Path, quick: bool) -> list[Row]:
    n = 500 if quick else 3000
    rows: list[Row] = []
    backend = InstantBackend()
    async with ProofService(backend, JobStore(str(directory / "submit.sqlite3"))) as service:
        backend.hold = anyio.Event()
        seconds = await _concurrent_submits(service, _codes(n, "c"))
        rows.append(Row(SECTION, f"submit, {n} concurrent callers", f"{n / seconds:,.0f} jobs/s", note="on disk"))
        started = time.perf_counter()
        await service.submit_many(_codes(n, "b"))
        seconds = time.perf_counter() - started
        rows.append(Row(SECTION, f"submit_many, {n} in one call", f"{n / seconds:,.0f} jobs/s", note="one commit"))
        backend.hold.set()
        backend.hold = None

    backend = InstantBackend()
    async with ProofService(backend, JobStore(str(directory / "e2e.sqlite3"))) as service:
        codes = _codes(n, "e")
        started = time.perf_counter()
        proofs = await service.submit_many(codes)
        for proof in proofs:
            await service.wait(proof.id)
        seconds = time.perf_counter() - started
        rows.append(
            Row(
                SECTION, f"submit → finished, {n} jobs", f"{n / seconds:,.0f} jobs/s", note="instant backend, 4 workers"
            )
        )

        code = "theorem cached : True := trivial\n"
        await service.verify(code)
        samples = []
        for _ in range(200 if quick else 2000):
            started = time.perf_counter()
            result = await service.verify(code)
            samples.append(time.perf_counter() - started)
            assert result.cached
        rows.append(
            Row(
                SECTION,
                "cache hit (verify), service time",
                latency_summary(samples),
                target="< 1 ms",
                note="incl. storing the new job row",
            )
        )
        lookup = []
        for _ in range(200 if quick else 2000):
            started = time.perf_counter()
            await service.cache.lookup(service.cache_key(code))
            lookup.append(time.perf_counter() - started)
        rows.append(Row(SECTION, "cache lookup alone", f"p50 {percentile(lookup, 50) * 1e6:.0f} µs"))
    return rows


def run(quick: bool) -> list[Row]:
    """The jobs rows of the benchmark table."""
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-jobs-") as directory:
        rows: list[Row] = anyio.run(_bench, Path(directory), quick)
        return rows
