"""The SQLite job store: ids, schema, durability across a killed process, retention, owner locks."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import anyio
import pytest

from lean_mcp._errors import ConfigurationError
from lean_mcp._jobs import store as store_module
from lean_mcp._jobs.store import SCHEMA_VERSION, JobRow, JobStore, OwnerLock, pending_insert, uuid7, uuid7s

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


def _row(
    job_id: str | None = None, *, status: str = "finished", finished: float | None = None, code: str = "x"
) -> JobRow:
    now = time.time()
    done = status in ("finished", "error")
    return JobRow(
        job_id or uuid7(),
        code,
        "{}",
        status,
        result='{"status": "finished"}' if done else None,
        verdict="proved" if done else None,
        created=now,
        finished=(finished if finished is not None else now) if done else None,
    )


def test_uuid7_is_a_time_ordered_version_7_uuid() -> None:
    before = time.time()
    ids = [uuid7() for _ in range(20_000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), "ids made later must sort later"
    millis = int(ids[0].replace("-", "")[:12], 16)
    assert abs(millis / 1000 - before) < 60


def test_ids_made_a_batch_at_a_time_are_uuid7s_in_order() -> None:
    """`uuid7s` (one per job of a batch) makes what as many `uuid7` calls would: distinct version-7 ids,
    each sorting after the one before, also across batches and single ids and past 4,096 in one ms."""
    ids = [uuid7(), *uuid7s(5_000), uuid7(), *uuid7s(1), *uuid7s(0)]
    assert len(ids) == 5_003 and len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_uuid7_randomness_is_not_shared_with_a_forked_child() -> None:
    """Ids draw their random bits from a buffer of OS randomness; a forked child must not reuse the
    parent's buffer, or both would make the same ids in the same millisecond."""
    uuid7()  # the parent's buffer now holds unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next ids' random tails and leave at once
        os.write(write, " ".join(uuid7()[-12:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {uuid7()[-12:] for _ in range(50)}
    assert len(child) == 50 and not child & parent


async def test_a_result_committed_with_its_running_mark_keeps_the_start_time(tmp_path: Path) -> None:
    """A `running` mark left out because the result rides in the same commit loses nothing: the row
    ends finished with the start time; a mark committed earlier keeps its own start time."""
    async with JobStore(str(tmp_path / "j.sqlite3")) as store:
        quick, slow = _row(status="pending"), _row(status="pending")
        await store.insert([quick, slow])
        store.mark_running(slow.id, 100.0)
        await store.write([])  # the mark rides along with this commit
        assert (await store.get(slow.id)).status == "running"  # type: ignore[union-attr]
        store.mark_running(quick.id, 200.0)
        loop = asyncio.get_running_loop()
        settled: list[asyncio.Future[BaseException | None]] = [loop.create_future(), loop.create_future()]
        for future, job_id, finished, started in zip(
            settled, (quick.id, slow.id), (201.0, 202.0), (200.0, 150.0), strict=True
        ):
            store.finish(job_id, "finished", "{}", "proved", finished, started=started, on_settled=future.set_result)
        assert await asyncio.gather(*settled) == [None, None]
        rows = {job_id: await store.get(job_id) for job_id in (quick.id, slow.id)}
    assert [(r.status, r.started, r.finished) for r in rows.values() if r] == [
        ("finished", 200.0, 201.0),
        ("finished", 100.0, 202.0),
    ]


async def test_a_pending_insert_stores_the_row_a_job_row_stores(tmp_path: Path) -> None:
    """The service's per-job INSERT (`pending_insert`, its empty columns left to their defaults) stores
    the same row as `insert_statement` of the equivalent JobRow."""
    row = JobRow(uuid7(), "theorem t : True := trivial", '{"timeout": 5.0}', "pending", cache_key="k", owner="o")
    row.created = 1234.5
    async with JobStore(str(tmp_path / "j.sqlite3")) as store:
        await store.write([JobStore.insert_statement(row)])
        other = JobRow(uuid7(), row.code, row.config, row.status, cache_key="k", owner="o", created=row.created)
        await store.write(
            [pending_insert(other.id, other.code, other.config, cache_key="k", owner="o", created=1234.5)]
        )
        stored = [await store.get(job_id) for job_id in (row.id, other.id)]
    assert stored[0] == row
    assert stored[1] == other


async def test_results_finished_together_share_one_commit(tmp_path: Path) -> None:
    """Results queued in one turn of the event loop, or within `RESULT_GAP` of the last hand-off, reach
    the writer together and are committed in one transaction; each caller still hears of its own."""
    async with JobStore(str(tmp_path / "j.sqlite3")) as store:
        rows = [_row(status="pending") for _ in range(6)]
        await store.insert(rows)
        loop = asyncio.get_running_loop()

        def finish(batch: list[JobRow]) -> list[asyncio.Future[BaseException | None]]:
            futures: list[asyncio.Future[BaseException | None]] = [loop.create_future() for _ in batch]
            for row, future in zip(batch, futures, strict=True):
                store.finish(row.id, "finished", "{}", "proved", time.time(), on_settled=future.set_result)
            return futures

        commits = store._commits
        assert await asyncio.gather(*finish(rows[:3])) == [None] * 3
        assert store._commits == commits + 1, "three results of one turn: one commit"
        store.RESULT_GAP = 1.0  # the next results come within the gap of that hand-off: they wait for it
        commits = store._commits
        first = finish(rows[3:4])
        await asyncio.sleep(0.01)
        assert not first[0].done(), "held for the gap"
        assert await asyncio.gather(*first, *finish(rows[4:])) == [None] * 3
        assert store._commits == commits + 1
        assert [(await store.get(row.id)).status for row in rows] == ["finished"] * 6  # type: ignore[union-attr]


async def test_a_store_from_an_earlier_version_gets_indexes_its_queries_use(tmp_path: Path) -> None:
    """Earlier versions made the partial indexes with `IN (...)` conditions, which cost SQLite a temporary
    b-tree on every write; opening the file swaps them for `OR` ones, which the open-job and cache
    queries use, and which no write of a job needs a temporary table for."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE jobs (id TEXT PRIMARY KEY, code TEXT NOT NULL, config TEXT NOT NULL,
                status TEXT NOT NULL, result TEXT, verdict TEXT, cache_key TEXT,
                cached INTEGER NOT NULL DEFAULT 0, owner TEXT, created REAL NOT NULL, started REAL,
                finished REAL, attempts INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
            CREATE INDEX jobs_open ON jobs(status) WHERE status IN ('pending', 'running');
            CREATE INDEX jobs_cache ON jobs(cache_key) WHERE verdict IN ('proved', 'sorry', 'rejected');
            INSERT INTO jobs (id, code, config, status, created) VALUES ('old', 'x', '{}', 'pending', 1.0);
            """
        )
    conn.close()
    async with JobStore(str(path)) as store:
        assert [row.id for row in await store.adopt_open_jobs("me", lambda owner: False)] == ["old"]
    conn = sqlite3.connect(path)
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_open_v2", "jobs_cache_v2"} <= indexes and not {"jobs_open", "jobs_cache"} & indexes
    plans = {
        "open": f"SELECT id FROM jobs WHERE {store_module._OPEN}",
        "cache": f"SELECT result FROM jobs WHERE cache_key = 'k' AND {store_module._LEAN_ANSWER} ORDER BY id DESC",
    }
    for what, sql in plans.items():
        plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert f"jobs_{what}_v2" in plan, plan
    for sql in (store_module._INSERT, store_module._MARK_RUNNING, store_module._FINISH):
        opcodes = [row[1] for row in conn.execute(f"EXPLAIN {sql}", [None] * sql.count("?"))]
        assert "OpenEphemeral" not in opcodes, sql
    conn.close()


async def test_open_creates_directories_schema_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "jobs.sqlite3"
    async with JobStore(str(path)) as store:
        await store.insert([_row()])
        assert await store.count() == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    async with JobStore(str(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigurationError, match="newer lean-mcp"):
        await JobStore(str(path)).open()


async def test_rows_round_trip_and_list_newest_first(tmp_path: Path) -> None:
    async with JobStore(str(tmp_path / "jobs.sqlite3")) as store:
        rows = [_row(code=f"theorem t{i} : True := trivial\n") for i in range(5)]
        await store.insert(rows)
        got = await store.get(rows[2].id)
        assert got == rows[2]
        assert got.first_line == "theorem t2 : True := trivial"
        assert [r.id for r in await store.recent(3)] == [r.id for r in reversed(rows[2:])]
        assert await store.get("no-such-id") is None


async def test_memory_store_works(tmp_path: Path) -> None:
    async with JobStore(":memory:") as store:
        await store.insert([_row()])
        assert await store.count() == 1
        assert store.file_bytes() == 0


def test_an_acknowledged_insert_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    child = textwrap.dedent(
        f"""
        import anyio, os, signal, sys, time
        from lean_mcp._jobs.store import JobRow, JobStore
        async def main():
            store = JobStore({str(path)!r})
            await store.open()
            await store.insert([JobRow("acked", "code", "{{}}", "pending", created=time.time())])
            os.kill(os.getpid(), signal.SIGKILL)
        anyio.run(main)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT status FROM jobs WHERE id = 'acked'").fetchall() == [("pending",)]


async def test_prune_keeps_open_jobs_and_the_newest_finished(tmp_path: Path) -> None:
    async with JobStore(str(tmp_path / "jobs.sqlite3")) as store:
        old = _row(finished=time.time() - 40 * 86400)
        finished = [_row() for _ in range(20)]
        open_jobs = [_row(status="pending"), _row(status="running")]
        await store.insert([old, *finished, *open_jobs])
        deleted = await store.prune(max_age_days=30, max_jobs=5)
        assert deleted == 1 + 15
        left = {r.id for r in await store.recent(100)}
        assert left == {r.id for r in finished[-5:]} | {r.id for r in open_jobs}


async def test_prune_shrinks_the_file(tmp_path: Path) -> None:
    async with JobStore(str(tmp_path / "jobs.sqlite3")) as store:
        big = "-- padding\n" * 2000
        for _ in range(10):
            await store.insert([_row(code=big) for _ in range(100)])
        full = store.file_bytes()
        assert full > 10_000_000
        assert await store.prune(max_age_days=30, max_jobs=10) == 990
        assert store.file_bytes() < full / 20


def test_owner_lock_is_alive_exactly_while_its_holder_lives(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.sqlite3")
    mine, other = OwnerLock(db, in_memory=False), OwnerLock(db, in_memory=False)
    mine.acquire()
    other.acquire()
    assert mine.alive(other.owner) and other.alive(mine.owner)
    other.release()
    assert not mine.alive(other.owner)
    assert not mine.alive(None) and not mine.alive("never-existed")

    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from lean_mcp._jobs.store import OwnerLock
        lock = OwnerLock({db!r}, in_memory=False)
        lock.acquire()
        print(lock.owner, flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        owner = proc.stdout.readline().strip()
        assert mine.alive(owner)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not mine.alive(owner)
    finally:
        proc.kill()
        proc.wait()
    mine.release()


async def test_checkpoints_move_the_wal_into_the_database_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    async with JobStore(str(path)) as store, anyio.create_task_group() as group:
        group.start_soon(store.run_checkpoints, 0.02)
        await anyio.sleep(0.05)  # let it switch the automatic checkpoints off
        empty = path.stat().st_size
        await store.insert([_row(code="-- padding\n" * 1000) for _ in range(200)])
        assert path.stat().st_size == empty, "commits must not checkpoint by themselves"
        with anyio.fail_after(30):
            while path.stat().st_size <= empty + 1_000_000:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        group.cancel_scope.cancel()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 200
