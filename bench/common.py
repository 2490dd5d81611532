"""The one table every benchmark section writes into."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from lean_mcp._trust import audit
from lean_mcp._trust.declarations import read_declarations


@dataclasses.dataclass
class Row:
    """One measured line: what was run, the number, the target it is held against, and a note."""

    section: str
    benchmark: str
    value: str
    target: str = ""
    note: str = ""


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, nearest-rank."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(seconds: Sequence[float]) -> str:
    """`p50 X ms / p99 Y ms` for a list of latencies in seconds."""
    return f"p50 {percentile(seconds, 50) * 1000:.1f} ms / p99 {percentile(seconds, 99) * 1000:.1f} ms"


def mean(samples: Sequence[float]) -> float:
    return statistics.fmean(samples) if samples else float("nan")


def format_table(rows: Sequence[Row]) -> str:
    """Rows as a Markdown table (printable, and pasteable into docs/benchmarks.md)."""
    header = ("section", "benchmark", "value", "target", "note")
    cells = [header, *[(r.section, r.benchmark, r.value, r.target, r.note) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def closed_loop(check: Callable[[int], Awaitable[None]], count: int, callers: int) -> float:
    """Seconds for `check(0)` .. `check(count - 1)` from `callers` tasks, each running its share in turn."""

    async def caller(share: range) -> None:
        for i in share:
            await check(i)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for c in range(callers):
            group.start_soon(caller, range(c, count, callers))
    return time.perf_counter() - started


def audited_text(proof: str) -> str:
    """`proof` as the trust guard sends it to the REPLs: with the axiom audit's probe lines after it."""
    text, _ = audit.layout(proof, read_declarations(proof).theorems)
    return text


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3 of proc(5) is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process itself has used (Linux /proc; its children excluded)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores of this machine have spent busy so far (Linux /proc/stat: all but idle and iowait)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
