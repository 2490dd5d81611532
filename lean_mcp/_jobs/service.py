"""The proof service: durable jobs, a FIFO queue, `backend.capacity` workers, the result cache.

    async with open_service(settings) as service:
        proof = await service.submit("theorem t : 1 + 1 = 2 := rfl")
        result = await service.wait(proof.id)

A submit returns once its job is committed to the SQLite store. Workers take jobs in order and
write `running` when they start one; the final result is written before any waiter wakes. A
process that dies (even kill -9) leaves its open jobs in the file; the next service on that file
adopts them and runs them again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from .._backends.base import Backend
from .._errors import (
    BusyError,
    InvalidProofError,
    JobNotFoundError,
    LeanMCPError,
    QueueFullError,
    StoreUnavailableError,
)
from .._lean.source import CheckedProof, validate_proof_text
from .._models import JobStatus, Proof, ProofConfig, ProofResult, Verdict
from .._settings import DEFAULT_MAX_PROOF_BYTES, DEFAULT_TIMEOUT, Settings
from .cache import ResultCache, cache_key, cache_keys
from .store import JobRow, JobStore, OwnerLock, pending_insert, store_unavailable, uuid7s

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "The proof job was cancelled before Lean finished checking it."
#: A job whose checking process died this many times is failed instead of run again.
MAX_ATTEMPTS = 5
#: How many times a job is put back in the queue when the backend says it is busy.
BUSY_RETRIES = 3


class _Job:
    """A job this service is responsible for until it has its final result."""

    __slots__ = (
        "_woken",
        "attempts",
        "busy_retries",
        "cache_key",
        "cancel_requested",
        "code",
        "config",
        "done",
        "id",
        "on_done",
        "result",
        "scope",
        "started",
        "status",
    )

    def __init__(self, job_id: str, code: str, config: ProofConfig, cache_key: str, attempts: int = 0) -> None:
        self.id = job_id
        self.code = code
        self.config = config
        self.cache_key = cache_key
        self.attempts = attempts  # times a checking process died on this job (a restart does not count)
        self.status = JobStatus.PENDING
        self.result: ProofResult | None = None
        self.done = False  # its waiters may stop waiting: it has its final result, or the service stopped
        self._woken: asyncio.Event | None = None  # made only for a waiter that has to wait
        self.on_done: list[Callable[[], None]] | None = None  # called once, when `done` is set
        self.scope: anyio.CancelScope | None = None
        self.cancel_requested = False
        self.busy_retries = 0
        self.started: float | None = None  # when a worker last picked it up

    def current(self) -> ProofResult:
        return self.result or ProofResult.pending(self.id, self.status)

    async def wait_done(self) -> None:
        """Return once `done` is set."""
        if not self.done:
            if self._woken is None:
                self._woken = asyncio.Event()
            await self._woken.wait()

    def set_done(self) -> None:
        """Set `done` (its waiters wake) and run the `on_done` callbacks."""
        self.done = True
        if self._woken is not None:
            self._woken.set()
        callbacks, self.on_done = self.on_done, None
        for callback in callbacks or ():
            callback()


async def _all_done(jobs: Sequence[_Job]) -> None:
    """Return once every one of `jobs` is done: one wake-up for a whole batch, not one per job."""
    left = sum(1 for job in jobs if not job.done)
    if not left:
        return
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def one_done() -> None:
        nonlocal left
        left -= 1
        if not left and not finished.done():
            finished.set_result(None)

    for job in jobs:
        if not job.done:
            job.on_done = [*(job.on_done or ()), one_done]
    await finished


class _JobQueue:
    """The FIFO of jobs waiting for a worker: a job goes straight to a worker that waits for one.

    Cheaper per job than a memory object stream, whose `receive` yields to the event loop before
    every item: a worker that takes a job waiting in line only yields once in `YIELD_EVERY` jobs,
    enough that a backend answering without ever suspending cannot starve the rest of the loop
    (a real backend suspends on every check).
    """

    #: Of the jobs taken from the line (not handed to a waiting worker), one in this many yields first.
    YIELD_EVERY = 8

    def __init__(self) -> None:
        self._jobs: collections.deque[_Job] = collections.deque()
        self._idle: collections.deque[asyncio.Future[_Job]] = collections.deque()  # workers waiting
        self._streak = 0

    def put(self, job: _Job) -> None:
        """Queue `job` last (or hand it to the worker that has waited longest)."""
        while self._idle:
            worker = self._idle.popleft()
            if not worker.done():  # else that worker was cancelled
                worker.set_result(job)
                return
        self._jobs.append(job)

    async def get(self) -> _Job:
        """The next job, waiting for one if none is queued."""
        if self._jobs:
            self._streak += 1
            if self._streak % self.YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if self._jobs:  # (another worker may have taken the last while we yielded)
                return self._jobs.popleft()
        waiting: asyncio.Future[_Job] = asyncio.get_running_loop().create_future()
        self._idle.append(waiting)
        try:
            return await waiting
        except BaseException:
            if waiting.done() and not waiting.cancelled():  # handed a job as it was cancelled: keep it queued
                self._jobs.appendleft(waiting.result())
            raise


def _row_result(row: JobRow) -> ProofResult:
    if row.result:
        return ProofResult.model_validate_json(row.result)
    return ProofResult.pending(row.id, JobStatus(row.status))


def _within_limits(result: ProofResult, config: ProofConfig) -> bool:
    """True when a cached answer's Lean time fits the request's timeout (else it may not be served)."""
    return result.lean_time is None or result.lean_time <= config.timeout


def _cancelled() -> ProofResult:
    return ProofResult.failure(Verdict.ERROR, CANCELLED_MESSAGE, error_type="cancelled")


class ProofService:
    """Submit, wait for, look up and cancel proof jobs. Use as `async with service:`."""

    def __init__(
        self,
        backend: Backend,
        store: JobStore,
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        max_queue: int = 100_000,
        max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
        cache: bool = True,
        retention_days: float = 30.0,
        retention_jobs: int = 100_000,
        prune_interval: float = 600.0,
        allow_prelude: bool = False,
    ) -> None:
        self.backend = backend
        self.store = store
        self.cache = ResultCache(store, enabled=cache)
        self.default_timeout = default_timeout
        self.max_queue = max_queue
        self.max_proof_bytes = max_proof_bytes
        self.allow_prelude = allow_prelude
        self.retention_days = retention_days
        self.retention_jobs = retention_jobs
        self.prune_interval = prune_interval
        self._owner = OwnerLock(store.path, in_memory=store.in_memory)
        self._active: dict[str, _Job] = {}
        self._queued = 0
        self._running = 0
        self._counts = {"submitted": 0, "checked": 0, "cache_hits": 0, "cancelled": 0, "pruned": 0}
        self._finished_since_prune = 0
        self._prune_soon = anyio.Event()
        self._queue: _JobQueue | None = None
        self._task_group: TaskGroup | None = None

    @classmethod
    def from_settings(cls, settings: Settings, backend: Backend) -> ProofService:
        """A service over `backend` with the store at `settings.db` and the settings' limits."""
        return cls(
            backend,
            JobStore(settings.db),
            default_timeout=settings.timeout,
            max_queue=settings.max_queue,
            max_proof_bytes=settings.max_proof_bytes,
            cache=settings.cache,
            retention_days=settings.retention_days,
            retention_jobs=settings.retention_jobs,
            allow_prelude=settings.allow_prelude,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the store, adopt jobs left open by dead processes, prune, start the workers."""
        if self._task_group is not None:
            return
        await self.backend.start()
        await self.store.open()
        try:
            try:
                self._owner.acquire()
            except OSError as exc:
                raise store_unavailable(self.store.path, exc) from exc
            await self.prune()
            self._queue = _JobQueue()
            await self._recover()
        except BaseException:
            self._owner.release()
            with anyio.CancelScope(shield=True):
                await self.store.aclose()
            raise
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        for _ in range(max(1, self.backend.capacity)):
            self._task_group.start_soon(self._worker)
        self._task_group.start_soon(self._prune_loop)
        self._task_group.start_soon(self.store.run_checkpoints)

    async def aclose(self) -> None:
        """Stop the workers (unfinished jobs stay open in the store for the next start), close the store."""
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await self._release_running()
        for job in list(self._active.values()):
            job.set_done()  # wake waiters: they get the job's current (unfinished) state
        self._active.clear()
        self._queue = None
        self._owner.release()
        await self.store.aclose()

    async def _release_running(self) -> None:
        """Put the jobs we stopped back to pending; stopping them is not an attempt that failed."""
        stopped = [job for job in self._active.values() if job.status == JobStatus.RUNNING and job.result is None]
        sql = "UPDATE jobs SET status = 'pending', started = NULL WHERE id = ? AND status = 'running'"
        if stopped and self.store.is_open:
            with contextlib.suppress(StoreUnavailableError):
                await self.store.write([(sql, (job.id,)) for job in stopped])

    async def _recover(self) -> None:
        rows = await self.store.adopt_open_jobs(self._owner.owner, self._owner.alive)
        if rows:
            logger.info("Re-running %d job(s) left unfinished by a stopped process.", len(rows))
        jobs: list[_Job] = []
        rekey: list[tuple[str, str]] = []
        for row in rows:
            try:
                config = ProofConfig.model_validate_json(row.config)
            except ValueError as exc:  # e.g. a non-finite timeout an older version stored as null
                message = f"The job's stored configuration cannot be read ({exc.__class__.__name__}); it was not run."
                job = _Job(row.id, row.code, ProofConfig(), "", row.attempts)
                await self._finish(job, ProofResult.failure(Verdict.ERROR, message, error_type="bad_config"))
                continue
            # The answer will be this backend's: key it so (the Lean that took the job may be another).
            jobs.append(_Job(row.id, row.code, config, self.cache_key(row.code, config), row.attempts))
            if jobs[-1].cache_key != row.cache_key:
                rekey.append((jobs[-1].cache_key, row.id))
        if rekey:
            await self.store.write([("UPDATE jobs SET cache_key = ? WHERE id = ?", params) for params in rekey])
        for job in jobs:
            if job.attempts < MAX_ATTEMPTS:
                self._enqueue(job)
                continue
            message = f"Gave up after {job.attempts} attempts: the checking process died on this proof each time."
            await self._finish(job, ProofResult.failure(Verdict.ERROR, message, error_type="gave_up"))

    # -- submitting -----------------------------------------------------------------------------

    def effective_config(self, config: ProofConfig | None) -> ProofConfig:
        """`config` with the service's default timeout when the request gave none."""
        config = config or ProofConfig()
        if "timeout" not in config.model_fields_set:
            config = config.model_copy(update={"timeout": self.default_timeout})
        return config

    def validate(self, code: str) -> CheckedProof:
        """`code` checked as `submit` checks it (`lean.source.validate_proof_text` under this service's limits).

        The one gate for every front end; a front end that must answer per proof (Kimina's batches,
        `lean-mcp check`'s files) calls it and submits what it returns, which is not scanned again,
        here or by the trust guard behind the backend.
        """
        return validate_proof_text(code, self.max_proof_bytes, allow_prelude=self.allow_prelude)

    def cache_key(self, code: str, config: ProofConfig | None = None) -> str:
        """The result-cache key of `code` under `config` on this service's backend."""
        return cache_key(code, self.effective_config(config), self.backend.identity)

    def _cache_keys(self, codes: Sequence[str], config: ProofConfig) -> list[str]:
        """`cache_key` of each code under an effective `config` (the backend's identity is read once)."""
        return cache_keys(codes, config, self.backend.identity)

    async def submit(self, code: str, config: ProofConfig | None = None) -> Proof:
        """Queue one proof; returns its handle once the job is durably stored."""
        return (await self.submit_many([code], config))[0]

    async def submit_many(self, codes: Sequence[str], config: ProofConfig | None = None) -> list[Proof]:
        """Queue several proofs under one configuration, stored in one transaction, in order."""
        config = self._submittable(config)
        checked = [self.validate(code) for code in codes]
        return [Proof(id=job.id, status=job.status) for job in await self._store_jobs(checked, config)]

    async def check_each(
        self, codes: Sequence[str], config: ProofConfig | None = None
    ) -> list[ProofResult | InvalidProofError]:
        """Check a batch: each code's final result, or the InvalidProofError that refused it, in order.

        The valid codes are stored in one transaction (as `submit_many` does) before any is checked.
        The jobs go on if the caller is cancelled; their results stay in the store.
        """
        config = self._submittable(config)
        answers: list[ProofResult | InvalidProofError | None] = [None] * len(codes)
        valid: list[int] = []
        checked: list[CheckedProof] = []
        for index, code in enumerate(codes):
            try:
                checked.append(self.validate(code))
            except InvalidProofError as exc:
                answers[index] = exc
            else:
                valid.append(index)
        jobs = await self._store_jobs(checked, config)
        await _all_done(jobs)
        for index, job in zip(valid, jobs, strict=True):
            answers[index] = job.current()
        return [answer for answer in answers if answer is not None]

    def _submittable(self, config: ProofConfig | None) -> ProofConfig:
        """The effective config of a submit; refuses one before the service started or with no finite timeout
        (the model refuses one, but `model_construct` or a default given in Python skips the model)."""
        if self._queue is None:
            raise RuntimeError("The proof service is not started; use `async with service:`.")
        config = self.effective_config(config)
        if not math.isfinite(config.timeout):
            raise InvalidProofError(f"The timeout must be a finite number of seconds, not {config.timeout}.")
        return config

    async def _store_jobs(self, codes: Sequence[CheckedProof], config: ProofConfig) -> list[_Job]:
        """Store `codes` (each checked by `validate`) as jobs in one transaction and queue those the cache
        did not answer.

        Returns every job in order; a cache hit's job is already finished (its `done` is set).
        """
        if (failure := self.store.failure) is not None:
            raise StoreUnavailableError(f"No new proof jobs are accepted: {failure.message}", hint=failure.hint)
        if self._queued + len(codes) > self.max_queue:
            raise QueueFullError(f"The queue holds {self._queued:,} jobs; its limit is {self.max_queue:,}.")
        self._queued += len(codes)  # reserve the places: other submits run while we await
        try:
            statements, jobs = await self._prepare(codes, config)
            to_run = [job for job in jobs if not job.done]
            with anyio.CancelScope(shield=True):  # once stored, it must be queued too
                await self.store.write(statements, durable=bool(to_run))  # cache hits need no fsync: see store.py
        finally:
            self._queued -= len(codes)
        for job in to_run:
            self._enqueue(job)
        self._counts["submitted"] += len(codes)
        return jobs

    async def _prepare(
        self, codes: Sequence[CheckedProof], config: ProofConfig
    ) -> tuple[list[tuple[str, Sequence[Any]]], list[_Job]]:
        """The INSERTs to store and every code's job (a cache hit's is finished already, and stored so)."""
        config_json = config.model_dump_json()
        owner = self._owner.owner
        keys = self._cache_keys(codes, config)
        hits = await self.cache.lookup_many(keys) if self.cache.enabled and config.use_cache else {}
        rows: list[tuple[str, Sequence[Any]]] = []
        jobs: list[_Job] = []
        now = time.time()
        for code, key, job_id in zip(codes, keys, uuid7s(len(codes)), strict=True):
            hit = hits.get(key)
            if hit is not None and not _within_limits(hit, config):
                hit = None  # it needed more time than this request allows: check again, under its limit
            job = _Job(job_id, code, config, key)
            jobs.append(job)
            if hit is None:
                rows.append(pending_insert(job_id, code, config_json, cache_key=key, owner=owner, created=now))
                continue
            hit = hit.as_answer(job_id, cached=hit.cached)
            job.result, job.status = hit, hit.status
            job.set_done()
            self._counts["cache_hits"] += 1
            rows.append(
                JobStore.insert_statement(
                    JobRow(
                        job_id,
                        code,
                        config_json,
                        hit.status,
                        result=hit.model_dump_json(),
                        verdict=hit.verdict,
                        cache_key=key,
                        cached=True,
                        created=now,
                        finished=now,
                    )
                )
            )
        return rows, jobs

    def _enqueue(self, job: _Job) -> None:
        assert self._queue is not None
        self._active[job.id] = job
        job.status = JobStatus.PENDING
        self._queued += 1
        self._queue.put(job)

    # -- results --------------------------------------------------------------------------------

    async def get_result(self, proof_id: str) -> ProofResult:
        """The job's current result: pending, running, or final. JobNotFoundError for unknown ids."""
        job = self._active.get(proof_id)
        if job is not None:
            return job.current()
        return _row_result(await self._row(proof_id))

    async def _row(self, proof_id: str) -> JobRow:
        row = await self.store.get(proof_id) if isinstance(proof_id, str) else None
        if row is None:
            raise JobNotFoundError(f"No proof job has the id {proof_id!r}.")
        return row

    async def wait(self, proof_id: str, timeout: float | None = None) -> ProofResult:  # noqa: ASYNC109
        """The job's final result, or its current one if `timeout` seconds pass first."""
        job = self._active.get(proof_id)
        if job is None:
            return await self._wait_foreign(proof_id, timeout)
        if timeout is None:
            await job.wait_done()
        elif not job.done:
            with anyio.move_on_after(timeout):
                await job.wait_done()
        return job.current()

    async def _wait_foreign(self, proof_id: str, timeout: float | None) -> ProofResult:  # noqa: ASYNC109
        """Wait for a job run by another process on the same file (polls; there is no event to share)."""
        result = _row_result(await self._row(proof_id))
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            delay = 0.05
            while not result.done:
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                result = _row_result(await self._row(proof_id))
        return result

    async def verify(self, code: str, config: ProofConfig | None = None) -> ProofResult:
        """Submit and wait for the final result. Cancelling the caller cancels the job."""
        proof = await self.submit(code, config)
        try:
            return await self.wait(proof.id)
        except anyio.get_cancelled_exc_class():
            if self._task_group is not None:
                self._task_group.start_soon(self.cancel, proof.id)
            raise

    async def cancel(self, proof_id: str) -> ProofResult:
        """Cancel a queued or running job; its result becomes an error saying "cancelled".

        A job that already finished keeps its result.
        """
        job = self._active.get(proof_id)
        if job is None:
            return _row_result(await self._row(proof_id))
        if job.cancel_requested:
            pass  # another cancel is already under way
        elif job.status == JobStatus.PENDING:
            job.cancel_requested = True  # the worker that pulls it will skip it
            self._queued -= 1
            self._counts["cancelled"] += 1
            await self._finish(job, _cancelled())
        elif job.status == JobStatus.RUNNING:
            job.cancel_requested = True
            self._counts["cancelled"] += 1
            if job.scope is not None:
                job.scope.cancel()
        await job.wait_done()
        return job.current()

    # -- running --------------------------------------------------------------------------------

    async def _worker(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            # One cancel scope serves this worker's checks until `cancel` stops one of them (entering a
            # scope per job costs more than the rest of its bookkeeping); then the worker opens a new one.
            job: _Job | None = None
            with anyio.CancelScope() as scope:
                while not scope.cancel_called:
                    job = await queue.get()
                    if job.status == JobStatus.PENDING and not job.cancel_requested:
                        await self._run_safely(job, scope)
            if job is not None and job.scope is scope:  # `cancel` stopped its check, and so ended the scope
                job.scope = None
                self._finish_soon(job, _cancelled())

    async def _run_safely(self, job: _Job, scope: anyio.CancelScope) -> None:
        try:
            await self._run(job, scope)
        except Exception as exc:  # a bug must not stop the other jobs, nor leave waiters hanging
            logger.exception("Job %s failed inside the proof service", job.id)
            if job.result is None:
                message = f"Internal error in the proof service: {exc!r}"
                await self._finish(job, ProofResult.failure(Verdict.ERROR, message, error_type="internal"))

    async def _run(self, job: _Job, scope: anyio.CancelScope) -> None:
        """Check one job under its worker's `scope`. Its `running` mark and its result are queued for the
        store, not waited for: the worker is free for the next job at once, and waiters wake once the
        result is committed."""
        job.status = JobStatus.RUNNING
        self._queued -= 1
        self._running += 1
        try:
            job.started = time.time()
            self.store.mark_running(job.id, job.started)
            result = await self._check(job, scope)
            if result is not None:
                self._finish_soon(job, result)
        finally:
            self._running -= 1

    async def _check(self, job: _Job, scope: anyio.CancelScope) -> ProofResult | None:
        """Run the backend; None when the job went back to the queue.

        While the check runs, `job.scope` is the worker's `scope`, which `cancel` cancels to stop it: the
        cancellation then ends this call (and the scope), and `_worker` answers the job.
        """
        if job.cancel_requested:
            return _cancelled()
        result: ProofResult | None = None
        busy: BusyError | None = None
        job.scope = scope
        try:
            result = await self.backend.check(job.code, job.config)
        except BusyError as exc:
            busy = exc
        except LeanMCPError as exc:
            result = ProofResult.failure(Verdict.ERROR, str(exc), error_type=type(exc).__name__)
        except Exception as exc:
            logger.exception("The %s backend failed on job %s", self.backend.name, job.id)
            message = f"Internal error while checking the proof: {exc!r}"
            result = ProofResult.failure(Verdict.ERROR, message, error_type="internal")
        job.scope = None
        if job.cancel_requested:
            return _cancelled()
        if busy is not None:
            return await self._busy(job, busy)
        return result

    async def _busy(self, job: _Job, exc: BusyError) -> ProofResult | None:
        if job.busy_retries >= BUSY_RETRIES:
            message = f"Lean stayed busy: {exc} (tried {job.busy_retries + 1} times)"
            return ProofResult.failure(Verdict.ERROR, message, error_type="busy")
        job.busy_retries += 1
        logger.warning("Backend busy; job %s goes back to the queue (%s)", job.id, exc)
        sql = "UPDATE jobs SET status = 'pending', started = NULL WHERE id = ?"
        await self.store.write([(sql, (job.id,))])
        if job.cancel_requested:  # cancelled while we were writing
            return _cancelled()
        self._enqueue(job)
        return None

    async def _finish(self, job: _Job, result: ProofResult) -> None:
        """Store the final result, then wake the waiters (returns once they are woken)."""
        with anyio.CancelScope(shield=True):
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._finish_soon(job, result, then=lambda: woken.set_result(None))
            await woken

    def _finish_soon(self, job: _Job, result: ProofResult, then: Callable[[], None] | None = None) -> None:
        """Queue the final result for the store; the waiters wake once it is committed (then `then` runs).

        If it cannot be committed (the store is broken) the waiters are answered from memory; the
        store retries the write, and until it succeeds the job stays open in the file (it runs again
        after a restart) and in memory here. `result` becomes the job's answer in place: it must be one
        nothing else holds (a backend's `check` returns such a result; the service builds the others).
        """
        result = result.answer_to(job.id)
        verdict = None if result.verdict is None else str(result.verdict)  # str(): Enum's `.value` is slow
        result_json = result.model_dump_json()

        def settled(failed: BaseException | None) -> None:
            if job.result is not None:  # a retry of a result already answered from memory
                if failed is None:
                    self._active.pop(job.id, None)  # recorded at last: the file answers now
                return
            if failed is not None:
                logger.error("Could not store the result of job %s: %s", job.id, failed)
            self._answer(job, result, result_json, stored=failed is None)
            if then is not None:
                then()

        self.store.finish(
            job.id,
            str(result.status),
            result_json,
            verdict,
            time.time(),
            started=job.started,
            cacheable=result.reusable,
            process_died=result.result is not None and result.result.error_type == "crash",
            on_settled=settled,
        )

    def _answer(self, job: _Job, result: ProofResult, result_json: str, *, stored: bool) -> None:
        """Give the job its final result (`result_json` is its JSON) and wake its waiters."""
        self.cache.remember(job.cache_key, result, result_json)
        job.result = result
        job.status = result.status
        if stored:
            self._active.pop(job.id, None)
        self._counts["checked"] += 1
        job.set_done()
        self._finished_since_prune += 1
        if self._finished_since_prune >= max(100, self.retention_jobs // 10):
            self._prune_soon.set()

    # -- retention and introspection ------------------------------------------------------------

    async def prune(self) -> int:
        """Apply retention now (age and count limits); returns how many jobs were deleted."""
        self._finished_since_prune = 0
        deleted = await self.store.prune(max_age_days=self.retention_days, max_jobs=self.retention_jobs)
        if deleted:
            self.cache.forget_all()
            self._counts["pruned"] += deleted
            logger.info("Pruned %d finished job(s) from %s", deleted, self.store.path)
        return deleted

    async def _prune_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.prune_interval):
                await self._prune_soon.wait()
            self._prune_soon = anyio.Event()
            try:
                await self.prune()
                await self._recover()  # jobs of a process that died since we started
            except Exception:
                logger.exception("Pruning the job store failed")

    async def list_jobs(self, limit: int = 20) -> list[JobRow]:
        """The newest `limit` jobs in the store, newest first."""
        return await self.store.recent(limit)

    def stats(self) -> dict[str, Any]:
        """Queue, workers, cache and backend state, JSON-ready."""
        return {
            "queued": self._queued,
            "running": self._running,
            "workers": max(1, self.backend.capacity),
            "backend": self.backend.health(),
            "cache": {"enabled": self.cache.enabled, "hits": self.cache.hits, "misses": self.cache.misses},
            "store": self.store.path,
            **self._counts,
        }
