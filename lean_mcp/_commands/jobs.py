"""`lean-mcp jobs [--limit N] [--prune] [--json]`: recent jobs in the store; `--prune` applies retention.

Reads the job file directly (no Lean needed), so it works while a server is using the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import anyio

from .._jobs.store import JobRow, JobStore
from .._settings import Settings

_FIRST_LINE_WIDTH = 60
#: The largest `--limit` passed to the store (SQLite integers are 64-bit).
_MAX_LIMIT = 2**62


def run(settings: Settings, args: argparse.Namespace) -> int:
    """List the newest `args.limit` jobs (and prune first with `--prune`)."""
    store = JobStore(settings.db)
    if not store.in_memory and not Path(settings.db).expanduser().exists():
        print(f"No jobs yet: there is no job store at {settings.db}.", file=sys.stderr)
        return 0
    rows: list[JobRow] = anyio.run(_list, store, settings, args)
    if args.json:
        for row in rows:
            print(json.dumps(row.summary(), ensure_ascii=False))
    elif rows:
        now = time.time()
        print(f"{'ID':36}  {'STATUS':8}  {'VERDICT':16}  {'AGE':>6}  PROOF")
        for row in rows:
            print(format_row(row, now))
    else:
        print("No jobs.", file=sys.stderr)
    return 0


async def _list(store: JobStore, settings: Settings, args: argparse.Namespace) -> list[JobRow]:
    async with store:
        if args.prune:
            deleted = await store.prune(max_age_days=settings.retention_days, max_jobs=settings.retention_jobs)
            print(f"Pruned {deleted} finished job(s) from {settings.db}.", file=sys.stderr)
        return await store.recent(min(max(0, args.limit), _MAX_LIMIT))


def format_row(row: JobRow, now: float) -> str:
    """One table line: id, status, verdict (marked `(cached)`), age, first line of the proof."""
    verdict = (row.verdict or "-") + (" (cached)" if row.cached else "")
    first = row.first_line
    if len(first) > _FIRST_LINE_WIDTH:
        first = first[: _FIRST_LINE_WIDTH - 1] + "…"
    return f"{row.id:36}  {row.status:8}  {verdict:16}  {format_age(now - row.created):>6}  {first}"


def format_age(seconds: float) -> str:
    """A short age: `42 s`, `5 min`, `3 h`, `2 d`."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
