"""The durable job store: one SQLite file (WAL mode) holding every proof job and its result.

All SQLite work runs off the event loop on one connection guarded by a lock. Writes go through one
writer thread and are group-committed: everything queued while a commit runs is committed in the
next transaction, so a burst of submits costs one fsync, not one each, and a proof worker only
queues its status and result writes instead of waiting a thread round trip for each.

The file and its -wal / -shm sidecars are private to the user (0600). When the file cannot be
written (disk full, read-only, corrupt) `JobStore.failure` names the cause, new jobs are refused with
StoreUnavailableError, results that could not be written are kept and retried, and the store
resumes by itself with the first commit that succeeds.

Durability: a new job (a submit) is committed with `synchronous=FULL`: the caller is told "accepted",
so the WAL is fsynced before that answer, and it survives a power cut, not just a killed process.
Status updates, results and cache hits (jobs stored already answered) are committed with
`synchronous=NORMAL`: in WAL mode that still survives kill -9 and OOM kills; the most a power cut can
lose is the last few such commits, which makes those jobs run again at recovery (or, for a cache hit,
forgets an id whose proof the cache answers again at once). That keeps a cache hit well under a
millisecond. Group commit amortises the fsync over every submit in a burst.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import fcntl
import itertools
import logging
import math
import operator
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._errors import ConfigurationError, StoreUnavailableError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: The conditions of the partial indexes, written with `OR`, not `IN (...)`: SQLite tests an `IN`
#: list through a temporary b-tree each time an insert or update touches the index (three per job),
#: an `OR` directly. A query can use a partial index only when it repeats the index's condition.
_OPEN = "(status = 'pending' OR status = 'running')"
_LEAN_ANSWER = "(verdict = 'proved' OR verdict = 'sorry' OR verdict = 'rejected')"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    verdict TEXT,
    cache_key TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
DROP INDEX IF EXISTS jobs_open;
DROP INDEX IF EXISTS jobs_cache;
CREATE INDEX IF NOT EXISTS jobs_open_v2 ON jobs(status) WHERE {_OPEN};
CREATE INDEX IF NOT EXISTS jobs_cache_v2 ON jobs(cache_key) WHERE {_LEAN_ANSWER};
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished) WHERE finished IS NOT NULL;
"""  # jobs_open and jobs_cache: the same indexes with `IN` conditions, made by earlier versions

_DONE = "('finished', 'error')"

_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # [unix ms, 12-bit counter] of the last id handed out


class _RandomBytes:
    """Bytes from the OS's CSPRNG (`os.urandom`), read 4 KiB at a time instead of a syscall per id.

    A forked child starts with an empty buffer, so parent and child never hand out the same bytes.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def take(self, count: int) -> int:
        """`count` fresh random bytes as a non-negative integer (call under `_uuid_lock`)."""
        if self._offset + count > len(self._buffer):
            self._buffer, self._offset = os.urandom(self.SIZE), 0
        start, self._offset = self._offset, self._offset + count
        return int.from_bytes(self._buffer[start : self._offset])

    def forget(self) -> None:
        self._buffer, self._offset = b"", 0


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) string: 48-bit Unix ms, then a per-ms counter, then randomness.

    Ids made by one process sort (as strings) in the order they were made.
    """
    return uuid7s(1)[0]


def uuid7s(count: int) -> list[str]:
    """`count` UUIDv7 strings made one after another (as `uuid7` makes them, the clock read once)."""
    parts = []
    with _uuid_lock:
        now_ms = time.time_ns() // 1_000_000
        last_ms, counter = _uuid_last
        for _ in range(count):
            if now_ms <= last_ms:
                now_ms, counter = last_ms, counter + 1
                if counter > 0xFFF:  # counter exhausted within one ms: borrow the next ms
                    now_ms, counter = now_ms + 1, 0
            else:
                counter = _random.take(1)  # 8 bits: leave headroom for the counter within this ms
            last_ms = now_ms
            parts.append((now_ms, counter, _random.take(8) >> 2))  # 62 bits of randomness
        _uuid_last[:] = [last_ms, counter]
    ids = []
    for ms, count_in_ms, random in parts:
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | count_in_ms << 64 | 0b10 << 62 | random
        text = f"{value:032x}"
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


@dataclasses.dataclass
class JobRow:
    """One stored job, as read back from the file."""

    id: str
    code: str
    config: str
    status: str
    result: str | None = None
    verdict: str | None = None
    cache_key: str | None = None
    cached: bool = False
    owner: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        self.cached = bool(self.cached)  # SQLite hands back 0/1

    @property
    def first_line(self) -> str:
        """The first non-blank line of the proof (what `lean-mcp jobs` shows)."""
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary without the proof text and result."""
        data = dataclasses.asdict(self)
        for key in ("code", "config", "result", "owner"):
            del data[key]
        data["first_line"] = self.first_line
        return data


_COLUMNS = tuple(f.name for f in dataclasses.fields(JobRow))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
_INSERT = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_INSERT_PENDING = (
    "INSERT INTO jobs (id, code, config, status, cache_key, owner, created) VALUES (?, ?, ?, 'pending', ?, ?, ?)"
)
_values = operator.attrgetter(*_COLUMNS)  # a row's column values, in order (astuple would deep-copy them)


def pending_insert(
    job_id: str, code: str, config_json: str, *, cache_key: str, owner: str, created: float
) -> tuple[str, tuple[Any, ...]]:
    """The INSERT of a new pending job: the row `JobStore.insert_statement` stores for its JobRow, built
    directly (this runs for every submitted proof), its empty columns left to their defaults (sqlite3 binds
    a None through its adapter lookup)."""
    return _INSERT_PENDING, (job_id, str(code), config_json, cache_key, owner, created)


_MARK_RUNNING = "UPDATE jobs SET status = 'running', started = ? WHERE id = ? AND status = 'pending'"
_FINISH = (
    "UPDATE jobs SET status = ?, result = ?, verdict = ?, started = COALESCE(started, ?), finished = ?,"
    " cache_key = CASE WHEN ? THEN cache_key END, attempts = attempts + ? WHERE id = ?"
)


class _Write:
    """Statements to commit, whether a failure may be retried, and who hears how each attempt went: the
    future (the first attempt), or `on_settled` (every attempt) when one is given."""

    __slots__ = ("deferrable", "durable", "future", "loop", "on_settled", "statements")

    def __init__(
        self,
        statements: list[tuple[str, Sequence[Any]]],
        durable: bool,
        deferrable: bool,
        loop: asyncio.AbstractEventLoop | None,
        on_settled: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.statements = statements
        self.durable = durable
        self.deferrable = deferrable
        self.loop = loop
        self.on_settled = on_settled
        self.future: asyncio.Future[None] | None = None
        if loop is not None and on_settled is None:
            self.future = loop.create_future()


#: The types sqlite3 binds directly; any other (a subclass: a bool, an enum member, a checked proof text)
#: goes through its adapter lookup, which costs more than the row's insert.
_SQL_TYPES = frozenset({str, int, float, bytes, type(None)})


def _sql_value(value: Any) -> Any:
    """`value` as the plain `str`, `int` or `float` it stands for (as sqlite3 would store it)."""
    for plain in (str, int, float):
        if isinstance(value, plain):
            return plain(value)
    return value


def _settle(batch: Sequence[_Write], error: BaseException | None) -> None:
    """From the writer thread: complete each write's future on its own event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
    for item in batch:
        if item.loop is not None:
            by_loop.setdefault(item.loop, []).append(item)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_on_loop, items, error)


def _settle_on_loop(items: Sequence[_Write], error: BaseException | None) -> None:
    for item in items:
        if item.on_settled is not None:
            item.on_settled(error)
            continue
        future = item.future
        if future is None or future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _create_private(path: Path) -> None:
    """Create the store's directory (0700) and file (0600) if missing, so SQLite's sidecars are 0600 too."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


def _make_private(path: Path) -> None:
    """Tighten the file and its sidecars (-wal, -shm) to 0600 where we own them (older versions made 0644)."""
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


_RESUMES = "lean-mcp resumes by itself once it can write the file again."
_CAUSES = (
    (("full",), "the disk is full", f"Free space on that disk; {_RESUMES}"),
    (
        ("readonly", "read-only", "permission", "unable to open"),
        "it is read-only or not accessible",
        f"Make the file and its directory writable, or point --db / LEAN_MCP_DB elsewhere; {_RESUMES}",
    ),
    (
        ("malformed", "not a database", "corrupt"),
        "the file is corrupt",
        "Move the file aside (a new one is created) or restore it from a backup, or point --db / LEAN_MCP_DB "
        "elsewhere.",
    ),
)


def store_unavailable(path: str, exc: BaseException) -> StoreUnavailableError:
    """The error for a job store at `path` that failed with `exc`: names the cause and what to do."""
    text = str(exc).lower()
    if getattr(exc, "errno", None) == errno.ENOSPC:
        text += " full"
    for needles, cause, hint in _CAUSES:
        if any(needle in text for needle in needles):
            return StoreUnavailableError(f"The job store {path} cannot be written: {cause} ({exc}).", hint=hint)
    return StoreUnavailableError(f"The job store {path} cannot be written ({exc}).")


class JobStore:
    """The SQLite job table. Open with `await store.open()` (or `async with store:`).

    Writes go to one writer thread that commits everything queued in one transaction (group
    commit); a caller on the event loop queues its statements and gets a future, so a worker never
    waits for a thread hop per write. While the file cannot be written (`failure` says why), result
    writes that failed are kept and retried every `RETRY_SECONDS`; the first commit that succeeds
    clears `failure`.
    """

    #: How often a store that could not be written is tried again.
    RETRY_SECONDS = 1.0
    #: Longest delay before a `running` mark is committed when no other write carries it sooner.
    MARK_DELAY = 0.2
    #: Results are handed to the writer at most once in this many seconds (see `finish`).
    RESULT_GAP = 0.002

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._deferred: list[_Write] = []
        self._marks: collections.deque[tuple[float, str]] = collections.deque()  # (started, job id)
        self._mark_timer: asyncio.TimerHandle | None = None
        #: Results queued by `finish` in this turn of the event loop: (the UPDATE's parameters, on_settled).
        self._results: list[tuple[tuple[Any, ...], Callable[[BaseException | None], None]]] = []
        self._results_handed = -math.inf  # when (loop time) results were last handed to the writer
        self._commits = 0
        self._synchronous = "FULL"  # the connection's setting (`_prepare` sets it); the writer changes it
        #: Why the store cannot be written right now (None while it can).
        self.failure: StoreUnavailableError | None = None

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:" or self.path.startswith("file::memory:")

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def __aenter__(self) -> JobStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Create the file (0600, and its directory) and the schema if missing. Idempotent.

        Raises StoreUnavailableError naming the cause when the file cannot be opened or written.
        """
        if self._conn is None:
            self._conn = await self._run(self._connect)
            self._writer = threading.Thread(target=self._write_loop, name="lean-mcp-job-store", daemon=True)
            self._writer.start()

    async def aclose(self) -> None:
        """Commit what is queued, stop the writer thread, close the connection."""
        if self._conn is None:
            return
        self._hand_results()  # the results of this turn of the loop are committed too
        writer, self._writer = self._writer, None
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        if writer is not None:
            if self._marks:
                self._queue.put(_Write([], False, False, None))  # the last marks are committed too
            self._queue.put(None)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(writer.join)
        conn, self._conn = self._conn, None
        await self._run(conn.close)

    def _connect(self) -> sqlite3.Connection:
        path = self.path if self.in_memory else str(Path(self.path).expanduser())
        if not self.in_memory:
            _create_private(Path(path))
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 30000")
        # auto_vacuum must be chosen before the first table exists; it lets prune() give pages back.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if not self.in_memory:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        self._synchronous = "FULL"
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path} was written by a newer lean-mcp (schema {row[0]} > {SCHEMA_VERSION}).",
                    hint="Upgrade lean-mcp, or point --db (LEAN_MCP_DB) at another file.",
                )
        if not self.in_memory:
            _make_private(Path(self.path).expanduser())

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on a worker thread under the connection lock; store failures become StoreUnavailableError."""

        def locked() -> Any:
            with self._lock:
                return fn(*args)

        try:
            return await anyio.to_thread.run_sync(locked, limiter=self._limiter)
        except (sqlite3.Error, OSError) as exc:
            raise store_unavailable(self.path, exc) from exc

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("The job store is not open.")
        return self._conn

    # -- writes -------------------------------------------------------------------------------

    def queue_write(
        self,
        statements: list[tuple[str, Sequence[Any]]],
        *,
        durable: bool = False,
        deferrable: bool = False,
    ) -> asyncio.Future[None]:
        """Queue `statements` for the writer thread; the future is done once they are committed.

        `durable` also waits for the fsync that makes them survive a power cut. A `deferrable`
        write that fails (the future gets StoreUnavailableError) is kept and committed once the store
        can be written again. Must be called on the event loop.
        """
        item = _Write(statements, durable, deferrable, asyncio.get_running_loop())
        assert item.future is not None
        self._put(item)
        return item.future

    def _put(self, item: _Write) -> None:
        """Hand `item` to the writer thread."""
        if self._writer is None:
            raise RuntimeError("The job store is not open.")
        self._queue.put(item)

    async def write(
        self, statements: list[tuple[str, Sequence[Any]]], *, durable: bool = False, deferrable: bool = False
    ) -> None:
        """Commit `statements` (possibly in one transaction with concurrent writers); returns once committed.

        Not cancellable once queued: a cancelled caller still waits for the commit.
        """
        future = self.queue_write(statements, durable=durable, deferrable=deferrable)
        with anyio.CancelScope(shield=True):
            await future

    def _write_loop(self) -> None:
        """The writer thread: take everything queued, commit it in one transaction, settle the futures."""
        while True:
            try:
                first = self._queue.get(timeout=self.RETRY_SECONDS if self.failure else None)
            except queue.Empty:
                self._retry()
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            writes = [item for item in batch if item is not None]
            if self.failure and not writes:
                self._retry()
            if writes:
                self._commit_batch(self._deferred + writes if self.failure else writes)
            if stop:
                return

    def _retry(self) -> None:
        """Try the store again: the deferred writes, or a no-op write that proves it is writable."""
        probe: list[tuple[str, Sequence[Any]]] = [("UPDATE schema_version SET version = version", ())]
        self._commit_batch(self._deferred or [_Write(probe, False, False, None)])

    def _commit_batch(self, batch: list[_Write]) -> None:
        error: BaseException | None = None
        try:
            with self._lock:
                self._commit(batch)
        except (sqlite3.Error, OSError) as exc:
            error = store_unavailable(self.path, exc)
            if self.failure is None:
                logger.error("%s New jobs are refused until it can be written again.", error)
            self.failure = error
            self._deferred = [item for item in batch if item.deferrable]
        else:
            if self.failure is not None:
                logger.warning("The job store %s can be written again; accepting new jobs.", self.path)
            self.failure = None
            self._deferred = []
        _settle(batch, error)

    def _commit(self, batch: list[_Write]) -> None:
        """One transaction: the pending `running` marks first, then the batch's statements in order."""
        conn = self._require()
        marks = []
        while self._marks:
            marks.append(self._marks.popleft())
        if marks:  # a job whose result is in this commit needs no mark: the result carries `started`
            finished = {params[-1] for item in batch for sql, params in item.statements if sql is _FINISH}
            marks = [mark for mark in marks if mark[1] not in finished]
        synchronous = "FULL" if any(item.durable for item in batch) else "NORMAL"
        if synchronous != self._synchronous:  # a statement of its own: only when it changes
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._synchronous = synchronous
        try:
            conn.execute("BEGIN IMMEDIATE")
            if marks:
                conn.executemany(_MARK_RUNNING, marks)
            statements = [statement for item in batch for statement in item.statements]
            for sql, same in itertools.groupby(statements, key=operator.itemgetter(0)):
                conn.executemany(sql, [params for _, params in same])
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._commits += 1

    @staticmethod
    def insert_statement(row: JobRow) -> tuple[str, Sequence[Any]]:
        """The INSERT for one new job."""
        return _INSERT, tuple(value if type(value) in _SQL_TYPES else _sql_value(value) for value in _values(row))

    async def insert(self, rows: Sequence[JobRow], *, durable: bool = True) -> None:
        """Add new jobs (fsynced before returning unless `durable` is false)."""
        await self.write([self.insert_statement(row) for row in rows], durable=durable)

    def mark_running(self, job_id: str, started: float) -> None:
        """Note that a worker picked the job up. Must be called on the event loop.

        The mark rides along with the next commit (a submit's, a result's), or is committed on its
        own `MARK_DELAY` seconds later, so it costs no commit and no thread wake-up of its own; it
        is left out of a commit that carries the job's result (`finish` stores `started` then). It
        is only a status for onlookers: recovery re-runs `running` and `pending` jobs alike, and a
        result committed first is never overwritten by it. A mark whose commit fails is dropped.
        """
        self._marks.append((started, job_id))
        if self._mark_timer is None and self._writer is not None:
            self._mark_timer = asyncio.get_running_loop().call_later(self.MARK_DELAY, self._flush_marks)

    def _flush_marks(self) -> None:
        self._mark_timer = None
        if self._marks and self._writer is not None:
            self._queue.put(_Write([], False, False, None))

    def finish(
        self,
        job_id: str,
        status: str,
        result_json: str,
        verdict: str | None,
        finished: float,
        *,
        started: float | None = None,
        cacheable: bool = True,
        process_died: bool = False,
        on_settled: Callable[[BaseException | None], None],
    ) -> None:
        """Queue the job's final result; `on_settled(None)` is called on the loop once it is committed.

        `started` is when a worker picked it up (kept if a `running` mark already stored it); one
        that is not `cacheable` loses its cache key; `process_died` (the checking process died on
        this job) counts one attempt. When the store cannot be written, `on_settled` gets the
        StoreUnavailableError at once, and the write is kept and retried (`on_settled` is called again
        for each later attempt). Must be called on the event loop.
        """
        if self._writer is None:
            raise RuntimeError("The job store is not open.")
        params = (status, result_json, verdict, started, finished, int(cacheable), int(process_died), job_id)
        self._results.append((params, on_settled))
        if len(self._results) == 1:
            loop = asyncio.get_running_loop()
            wait = self._results_handed + self.RESULT_GAP - loop.time()
            if wait > 0:
                loop.call_later(wait, self._hand_results)
            else:
                loop.call_soon(self._hand_results)

    def _hand_results(self) -> None:
        """Hand the results `finish` queued in this turn of the event loop to the writer as one write: one
        thread wake-up for all of them (the writer commits them in one transaction either way)."""
        results, self._results = self._results, []
        if not results or self._writer is None:
            return
        loop = asyncio.get_running_loop()
        self._results_handed = loop.time()
        callbacks = [on_settled for _, on_settled in results]

        def settled(error: BaseException | None) -> None:
            for on_settled in callbacks:
                on_settled(error)

        statements: list[tuple[str, Sequence[Any]]] = [(_FINISH, params) for params, _ in results]
        self._put(_Write(statements, False, True, loop, settled))

    async def run_checkpoints(self, interval: float = 1.0, max_delay: float = 30.0) -> None:
        """Checkpoint the WAL from a second connection, until cancelled.

        Meanwhile commits skip SQLite's automatic checkpoint, so no submit waits for one (a checkpoint
        fsyncs the database file: milliseconds). The checkpoint runs once an `interval` passes with
        no commit, or after `max_delay` seconds of steady writing; a passive one never blocks writers.
        A failing checkpoint (disk full, file gone read-only) is logged and tried again later; it
        never stops the service.
        """
        if self.in_memory:
            return
        side: sqlite3.Connection | None = None
        try:
            await self._set_autocheckpoint(0)
            checkpointed = seen = self._commits
            last = time.monotonic()
            while True:
                await anyio.sleep(interval)
                busy, seen = self._commits != seen, self._commits
                if seen == checkpointed or (busy and time.monotonic() - last < max_delay):
                    continue
                try:
                    if side is None:
                        side = await anyio.to_thread.run_sync(self._side_connection)
                    await anyio.to_thread.run_sync(_checkpoint, side)
                except (sqlite3.Error, OSError) as exc:
                    logger.warning("WAL checkpoint failed, will retry: %s", store_unavailable(self.path, exc))
                    continue
                checkpointed, last = seen, time.monotonic()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(StoreUnavailableError, sqlite3.Error):
                if side is not None:
                    await anyio.to_thread.run_sync(side.close)
                await self._set_autocheckpoint(1000)

    async def _set_autocheckpoint(self, pages: int) -> None:
        def pragma() -> None:
            if self._conn is not None:
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

        await self._run(pragma)

    def _side_connection(self) -> sqlite3.Connection:
        path = str(Path(self.path).expanduser())
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    # -- reads --------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRow | None:
        """The job with this id, or None."""
        rows = await self._select(f"{_SELECT} WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    async def recent(self, limit: int) -> list[JobRow]:
        """The newest `limit` jobs, newest first."""
        return await self._select(f"{_SELECT} ORDER BY id DESC LIMIT ?", (limit,))

    async def cached_results(self, cache_keys: Sequence[str]) -> dict[str, str]:
        """The stored result JSON of the newest Lean answer for each key that has one."""
        sql = f"SELECT result FROM jobs WHERE cache_key = ? AND {_LEAN_ANSWER} ORDER BY id DESC LIMIT 1"

        def query() -> dict[str, str]:
            conn = self._require()
            found = {}
            for key in set(cache_keys):
                row = conn.execute(sql, (key,)).fetchone()
                if row is not None:
                    found[key] = str(row[0])
            return found

        results: dict[str, str] = await self._run(query)
        return results

    async def count(self) -> int:
        """How many jobs the file holds."""
        return int(await self._run(lambda: self._require().execute("SELECT count(*) FROM jobs").fetchone()[0]))

    async def _select(self, sql: str, params: Sequence[Any]) -> list[JobRow]:
        def query() -> list[JobRow]:
            return [JobRow(*row) for row in self._require().execute(sql, params)]

        rows: list[JobRow] = await self._run(query)
        return rows

    # -- recovery and retention -----------------------------------------------------------------

    async def adopt_open_jobs(self, owner: str, owner_alive: Callable[[str | None], bool]) -> list[JobRow]:
        """Take over every pending/running job whose owner is gone; they become pending, ours.

        Returns them oldest first.
        """

        def adopt() -> list[JobRow]:
            conn = self._require()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                rows = [JobRow(*r) for r in conn.execute(f"{_SELECT} WHERE {_OPEN}")]
                orphans = [r for r in rows if r.owner != owner and not owner_alive(r.owner)]
                conn.executemany(
                    "UPDATE jobs SET status = 'pending', started = NULL, owner = ? WHERE id = ?",
                    [(owner, r.id) for r in orphans],
                )
            return sorted(orphans, key=lambda r: r.id)

        rows: list[JobRow] = await self._run(adopt)
        return rows

    async def prune(self, *, max_age_days: float, max_jobs: int) -> int:
        """Delete finished jobs older than `max_age_days` or beyond the newest `max_jobs`; shrink the file.

        Returns how many jobs were deleted.
        """
        cutoff = time.time() - max_age_days * 86400.0

        def prune() -> int:
            conn = self._require()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                deleted = conn.execute(f"DELETE FROM jobs WHERE status IN {_DONE} AND finished < ?", (cutoff,)).rowcount
                deleted += conn.execute(
                    f"DELETE FROM jobs WHERE status IN {_DONE} AND id NOT IN "
                    f"(SELECT id FROM jobs WHERE status IN {_DONE} ORDER BY id DESC LIMIT ?)",
                    (max(0, max_jobs),),
                ).rowcount
            if deleted:
                conn.executescript("PRAGMA incremental_vacuum;")  # execute() would free only one page per step
                if not self.in_memory:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(deleted)

        deleted: int = await self._run(prune)
        return deleted

    def file_bytes(self) -> int:
        """Bytes on disk (database plus WAL), 0 in memory."""
        if self.in_memory:
            return 0
        base = Path(self.path).expanduser()
        return sum(p.stat().st_size for p in (base, Path(f"{base}-wal")) if p.exists())


class OwnerLock:
    """A service's claim on the jobs it runs: a locked file that the kernel unlocks when we die.

    Several processes may share one job file (`lean-mcp serve` and `lean-mcp check` both use the
    default). Each marks the jobs it runs with its owner id and holds `flock` on
    `<db>.owners/<owner>`; at start a service adopts only jobs whose owner's lock is free, so it
    re-runs the jobs of a killed process and never steals those of a live one.
    """

    def __init__(self, db_path: str, *, in_memory: bool) -> None:
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._dir = None if in_memory else Path(f"{Path(db_path).expanduser()}.owners")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create and lock our own file."""
        if self._dir is None or self._fd is not None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._dir / self.owner, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd

    def release(self) -> None:
        """Drop our lock and its file (our unfinished jobs become adoptable)."""
        if self._dir is None or self._fd is None:
            return
        fd, self._fd = self._fd, None
        (self._dir / self.owner).unlink(missing_ok=True)
        os.close(fd)

    def alive(self, owner: str | None) -> bool:
        """True while the process that owns `owner` still holds its lock."""
        if owner is None or self._dir is None:
            return False
        if owner == self.owner:
            return True
        path = self._dir / owner
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)  # a dead owner's leftover file
        return False
