"""ProofService over a scripted in-test backend and a real SQLite file.

The backend's answer is scripted by the proof text (`BLOCK` waits for `release`, `BUSY` raises
BusyError, `BOOM` raises, `TIMEOUT` times out, `sorry`, `ERROR` is rejected, else proved) and it
counts every check, so the tests see exactly when Lean would have run.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from lean_mcp._backends.base import Backend
from lean_mcp._errors import BusyError, InvalidProofError, JobNotFoundError, ProofTooLargeError, QueueFullError
from lean_mcp._jobs.cache import cache_key, cache_keys
from lean_mcp._jobs.service import CANCELLED_MESSAGE, MAX_ATTEMPTS, ProofService, _Job, _JobQueue
from lean_mcp._jobs.store import JobRow, JobStore
from lean_mcp._models import JobStatus, LeanOutput, Message, ProofConfig, ProofResult, Sorry, Verdict
from lean_mcp._settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, capacity: int = 2, identity: str = "scripted:1") -> None:
        self._capacity = capacity
        self._identity = identity
        self.calls: list[tuple[str, ProofConfig]] = []
        self.cancelled: list[str] = []
        self.release = anyio.Event()
        self.blocked = 0
        self.busy_left = 0

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def capacity(self) -> int:
        return self._capacity

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "checks": len(self.calls)}

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        self.calls.append((code, config))
        try:
            if "BLOCK" in code:
                self.blocked += 1
                await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(code)
            raise
        if "BUSY" in code and self.busy_left != 0:
            self.busy_left -= 1
            raise BusyError("All 1 REPLs stayed busy for 0.1 s.")
        if "BOOM" in code:
            raise RuntimeError("scripted explosion")
        if "TIMEOUT" in code:
            return ProofResult.failure(Verdict.TIMEOUT, f"Lean did not finish within {config.timeout:g} s.")
        if "sorry" in code:
            return ProofResult.from_output(LeanOutput(env=0, sorries=[Sorry(goal="⊢ 1 + 1 = 2")]), lean_time=0.01)
        if "ERROR" in code:
            return ProofResult.from_output(LeanOutput(env=0, messages=[Message.error("type mismatch")]), lean_time=0.01)
        return ProofResult.from_output(LeanOutput(env=0), lean_time=0.01)


async def until(predicate: Any, what: str) -> None:
    """Yield to the event loop until `predicate()` holds (bounded by the test timeout)."""
    with anyio.move_on_after(30) as scope:
        while not predicate():  # noqa: ASYNC110 - the state polled is the code under test's
            await anyio.sleep(0.005)
    if scope.cancelled_caught:
        pytest.fail(f"timed out waiting for {what}")


def make_service(backend: Backend, db: Path | str, **kwargs: Any) -> ProofService:
    return ProofService(backend, JobStore(str(db)), **kwargs)


@pytest.fixture
async def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
async def service(backend: ScriptedBackend, tmp_path: Path) -> AsyncIterator[ProofService]:
    async with make_service(backend, tmp_path / "jobs.sqlite3") as service:
        yield service
        backend.release.set()


async def test_status_goes_pending_running_finished(service: ProofService, backend: ScriptedBackend) -> None:
    proof = await service.submit("theorem t : True := by BLOCK")
    assert proof.status == JobStatus.PENDING
    assert (await service.get_result(proof.id)).status == JobStatus.PENDING
    await until(lambda: backend.blocked == 1, "the job to start")
    running = await service.get_result(proof.id)
    assert running.status == JobStatus.RUNNING and running.success is None
    with anyio.fail_after(30):  # the worker queues its `running` mark without waiting for it
        while (stored := await service.store.get(proof.id)) is not None and stored.status != "running":  # noqa: ASYNC110
            await anyio.sleep(0.005)
    assert stored is not None and stored.attempts == 0, "starting a job is not a failed attempt"
    backend.release.set()
    result = await service.wait(proof.id)
    assert (result.status, result.verdict, result.success, result.proof_id) == (
        JobStatus.FINISHED,
        Verdict.PROVED,
        True,
        proof.id,
    )
    assert await service.get_result(proof.id) == result


async def test_each_verdict_comes_back_with_its_id(service: ProofService) -> None:
    texts = {
        "theorem a : True := trivial": Verdict.PROVED,
        "theorem b : 1 + 1 = 2 := sorry": Verdict.SORRY,
        "theorem c : True := ERROR": Verdict.REJECTED,
        "theorem d : True := TIMEOUT": Verdict.TIMEOUT,
    }
    proofs = await service.submit_many(list(texts))
    assert [p.id for p in proofs] == sorted(p.id for p in proofs)
    for proof, verdict in zip(proofs, texts.values(), strict=True):
        result = await service.wait(proof.id)
        assert result.verdict == verdict and result.proof_id == proof.id
    timed_out = await service.get_result(proofs[3].id)
    assert timed_out.status == JobStatus.ERROR and timed_out.success is False and timed_out.error_message


async def test_check_each_answers_a_batch_in_order_refusing_only_the_invalid(
    service: ProofService, backend: ScriptedBackend
) -> None:
    await service.verify("theorem hit : True := trivial")  # now in the cache
    codes = ["theorem a : True := sorry", "", "theorem hit : True := trivial", "theorem c : True := ERROR", "#exit"]
    answers = await service.check_each(codes)
    assert isinstance(answers[1], InvalidProofError) and isinstance(answers[4], InvalidProofError)
    results = [answer for answer in answers if isinstance(answer, ProofResult)]
    assert [r.verdict for r in results] == [Verdict.SORRY, Verdict.PROVED, Verdict.REJECTED]
    assert [r.cached for r in results] == [False, True, False]
    assert [code for code, _ in backend.calls] == ["theorem hit : True := trivial", codes[0], codes[3]]
    assert len({r.proof_id for r in results}) == 3
    for result in results:  # each is a stored job of its own, with its final result
        assert result.proof_id is not None and await service.get_result(result.proof_id) == result


async def test_a_waiting_batch_gets_every_answer_when_jobs_are_cancelled_or_the_service_stops(
    backend: ScriptedBackend, tmp_path: Path
) -> None:
    """`check_each` waits for the whole batch at once: a cancelled job, a finished one and the
    unfinished jobs of a stopping service each still give the batch its answer; none hangs it."""
    service = make_service(backend, tmp_path / "jobs.sqlite3")
    answers: list[Any] = []
    async with anyio.create_task_group() as group:
        await service.start()

        async def batch() -> None:
            codes = ["theorem a : True := trivial", "theorem b : True := BLOCK", "theorem c : True := BLOCK"]
            answers.extend(await service.check_each(codes))

        group.start_soon(batch)
        await until(lambda: backend.blocked == 2, "both blocking jobs to start")
        # job b (whichever worker took it first), not job c: the answers are in the batch's order
        job_b = next(job for job in service._active.values() if "theorem b" in job.code)
        assert job_b.status == JobStatus.RUNNING
        await service.cancel(job_b.id)
        await service.aclose()  # the last job is still blocked: stopping answers it as it stands
    assert [(a.status, a.verdict) for a in answers] == [
        (JobStatus.FINISHED, Verdict.PROVED),
        (JobStatus.ERROR, Verdict.ERROR),
        (JobStatus.RUNNING, None),
    ]
    assert answers[1].error_message == CANCELLED_MESSAGE


async def test_unknown_ids_raise_job_not_found(service: ProofService) -> None:
    for call in (service.get_result, service.wait, service.cancel):
        with pytest.raises(JobNotFoundError, match="no-such-job"):
            await call("no-such-job")


async def test_bad_proof_text_is_refused_before_storing(backend: ScriptedBackend, tmp_path: Path) -> None:
    async with make_service(backend, tmp_path / "j.sqlite3", max_proof_bytes=100) as service:
        with pytest.raises(InvalidProofError):
            await service.submit("   \n")
        with pytest.raises(ProofTooLargeError):
            await service.submit("x" * 101)
        assert await service.store.count() == 0


async def test_default_timeout_applies_only_when_not_given(backend: ScriptedBackend, tmp_path: Path) -> None:
    async with make_service(backend, tmp_path / "j.sqlite3", default_timeout=7.0) as service:
        await service.verify("theorem a : True := trivial")
        await service.verify("theorem b : True := trivial", ProofConfig(timeout=3.0, all_tactics=True))
        await service.verify("theorem c : True := trivial", ProofConfig(all_tactics=True))
    assert [(c.timeout, c.all_tactics) for _, c in backend.calls] == [(7.0, False), (3.0, True), (7.0, True)]


async def test_the_same_proof_is_answered_from_the_cache(service: ProofService, backend: ScriptedBackend) -> None:
    code = "theorem t : 1 + 1 = 2 := sorry"
    first = await service.verify(code)
    second = await service.verify(code)
    assert len(backend.calls) == 1, "a cache hit must not run Lean"
    assert service.stats()["backend"]["checks"] == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.proof_id != first.proof_id
    assert second.verdict == Verdict.SORRY and second.sorries == first.sorries
    assert await service.get_result(second.proof_id or "") == second
    proof = await service.submit(code)
    assert proof.status == JobStatus.FINISHED


async def test_the_cache_distinguishes_config_and_backend(backend: ScriptedBackend, tmp_path: Path) -> None:
    code = "theorem t : True := trivial"
    db = tmp_path / "j.sqlite3"
    async with make_service(backend, db) as service:
        await service.verify(code)
        assert (await service.verify(code, ProofConfig(timeout=1.0))).cached, "timeout does not change the answer"
        assert not (await service.verify(code, ProofConfig(all_tactics=True))).cached
    other = ScriptedBackend(identity="scripted:2")
    async with make_service(other, db) as service:
        assert not (await service.verify(code)).cached
    assert len(backend.calls) == 2 and len(other.calls) == 1


async def test_failures_are_never_cached(service: ProofService, backend: ScriptedBackend) -> None:
    for _ in range(2):
        result = await service.verify("theorem t : True := TIMEOUT")
        assert result.verdict == Verdict.TIMEOUT and not result.cached
        result = await service.verify("theorem t : True := BOOM")
        assert result.verdict == Verdict.ERROR and not result.cached
    assert len(backend.calls) == 4


async def test_cache_opt_out_per_request_and_globally(backend: ScriptedBackend, tmp_path: Path) -> None:
    code = "theorem t : True := trivial"
    async with make_service(backend, tmp_path / "a.sqlite3") as service:
        await service.verify(code)
        assert not (await service.verify(code, ProofConfig(use_cache=False))).cached
    async with make_service(backend, tmp_path / "b.sqlite3", cache=False) as service:
        await service.verify(code)
        assert not (await service.verify(code)).cached
    assert len(backend.calls) == 4


def test_batch_cache_keys_are_the_keys_stores_already_hold() -> None:
    """Keys computed a batch at a time hash the very text one key at a time always hashed, so a
    result cached by an earlier version (or a single submit) is found by a batch and back."""

    def documented(code: str, config: ProofConfig, identity: str) -> str:
        payload = json.dumps([code, config.answer_key(), identity], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()

    codes = ["", "theorem t : 1 = 1 := rfl", 'a "quoted" \\ back\nslash', "ünï ∀ x, x = x", "lone \ud800 half", "\x00"]
    configs = [ProofConfig(), ProofConfig(statement="theorem s : True := sorry", permitted_axioms=["b", "a", "b"])]
    for config in configs:
        for identity in ("repl|x", 'quote " and ∀'):
            expected = [documented(code, config, identity) for code in codes]
            assert cache_keys(codes, config, identity) == expected
            assert [cache_key(code, config, identity) for code in codes] == expected
    assert len({documented(code, configs[0], "i") for code in codes}) == len(codes)


async def test_cache_survives_a_restart(backend: ScriptedBackend, tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    async with make_service(backend, db) as service:
        await service.verify("theorem t : True := ERROR")
    async with make_service(backend, db) as service:
        result = await service.verify("theorem t : True := ERROR")
    assert result.cached and result.verdict == Verdict.REJECTED and len(backend.calls) == 1


async def test_cancel_a_queued_job(tmp_path: Path) -> None:
    backend = ScriptedBackend(capacity=1)
    async with make_service(backend, tmp_path / "j.sqlite3") as service:
        blocker = await service.submit("theorem a : True := BLOCK")
        queued = await service.submit("theorem b : True := trivial")
        await until(lambda: backend.blocked == 1, "the blocker to start")
        assert service.stats()["queued"] == 1
        result = await service.cancel(queued.id)
        assert result.status == JobStatus.ERROR and result.verdict == Verdict.ERROR
        assert result.error_message == CANCELLED_MESSAGE and "cancelled" in result.error_message
        assert (await service.get_result(queued.id)) == result
        backend.release.set()
        assert (await service.wait(blocker.id)).verdict == Verdict.PROVED
        assert (await service.verify("theorem c : True := trivial")).verdict == Verdict.PROVED
    assert [code for code, _ in backend.calls] == ["theorem a : True := BLOCK", "theorem c : True := trivial"]


async def test_cancel_a_running_job_stops_the_backend_work(service: ProofService, backend: ScriptedBackend) -> None:
    proof = await service.submit("theorem a : True := BLOCK")
    await until(lambda: backend.blocked == 1, "the job to start")
    result = await service.cancel(proof.id)
    assert backend.cancelled == ["theorem a : True := BLOCK"]
    assert result.status == JobStatus.ERROR and result.verdict == Verdict.ERROR and result.success is False
    assert "cancelled" in (result.error_message or "")
    assert (await service.wait(proof.id)) == result
    assert (await service.verify("theorem b : True := trivial")).verdict == Verdict.PROVED
    finished = await service.verify("theorem c : True := trivial")
    assert (await service.cancel(finished.proof_id or "")) == finished, "a finished job keeps its result"


async def test_cancelling_one_running_job_leaves_the_others_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A worker's checks share one cancel scope until a cancel stops one: the cancel stops that job's
    check only (not the other worker's), is recorded, and the worker runs the next jobs, cancellable too."""
    backend = ScriptedBackend(capacity=2)
    async with make_service(backend, tmp_path / "jobs.sqlite3") as service:
        first, second = await service.submit_many(["theorem a : True := BLOCK", "theorem b : True := BLOCK"])
        await until(lambda: backend.blocked == 2, "both jobs to start")
        assert "cancelled" in ((await service.cancel(first.id)).error_message or "")
        assert backend.cancelled == ["theorem a : True := BLOCK"]
        assert (await service.get_result(second.id)).status == JobStatus.RUNNING, "the other job runs on"
        for started in (3, 4, 5):  # each worker opens a new scope after a cancel; later cancels stop later jobs
            again = await service.submit(f"theorem c{started} : True := BLOCK")
            await until(functools.partial(lambda n: backend.blocked == n, started), "the next job to start")
            assert (await service.cancel(again.id)).error_message == CANCELLED_MESSAGE
        backend.release.set()
        assert (await service.wait(second.id)).verdict == Verdict.PROVED
        assert [(await service.verify(f"theorem d{i} : True := trivial")).verdict for i in range(4)] == [
            Verdict.PROVED
        ] * 4
        assert service.stats()["cancelled"] == 4
    async with make_service(ScriptedBackend(), tmp_path / "jobs.sqlite3") as reopened:
        stored = await reopened.get_result(first.id)
        assert stored.error_message == CANCELLED_MESSAGE and stored.status == JobStatus.ERROR


async def test_cancelling_verify_cancels_its_job(service: ProofService, backend: ScriptedBackend) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(service.verify, "theorem a : True := BLOCK")
        await until(lambda: backend.blocked == 1, "the job to start")
        group.cancel_scope.cancel()
    await until(lambda: backend.cancelled, "the backend work to be cancelled")
    await until(lambda: service.stats()["running"] == 0, "the worker to finish")
    job = (await service.list_jobs(1))[0]
    assert job.status == "error"


async def test_wait_with_a_timeout_returns_the_current_state(service: ProofService, backend: ScriptedBackend) -> None:
    proof = await service.submit("theorem a : True := BLOCK")
    result = await service.wait(proof.id, timeout=0.05)
    assert result.status in (JobStatus.PENDING, JobStatus.RUNNING) and not result.done


async def test_queue_limit_raises_queue_full(tmp_path: Path) -> None:
    backend = ScriptedBackend(capacity=1)
    async with make_service(backend, tmp_path / "j.sqlite3", max_queue=3) as service:
        await service.submit("theorem a : True := BLOCK")
        await until(lambda: backend.blocked == 1, "the first job to start")
        await service.submit_many([f"theorem q{i} : True := trivial" for i in range(3)])
        with pytest.raises(QueueFullError):
            await service.submit("theorem x : True := trivial")
        with pytest.raises(QueueFullError):
            await service.submit_many(["theorem y : True := trivial"] * 2)
        assert await service.store.count() == 4
        backend.release.set()


async def test_busy_backend_requeues_then_fails_clearly(service: ProofService, backend: ScriptedBackend) -> None:
    backend.busy_left = 1
    assert (await service.verify("theorem a : True := BUSY")).verdict == Verdict.PROVED
    backend.busy_left = -1  # always busy
    result = await service.verify("theorem b : True := BUSY")
    assert result.verdict == Verdict.ERROR and "busy" in (result.error_message or "")


async def test_a_backend_exception_fails_only_that_job(service: ProofService) -> None:
    result = await service.verify("theorem a : True := BOOM")
    assert result.status == JobStatus.ERROR and "scripted explosion" in (result.error_message or "")
    assert (await service.verify("theorem b : True := trivial")).verdict == Verdict.PROVED


async def test_many_concurrent_submits_all_finish_correctly(tmp_path: Path) -> None:
    backend = ScriptedBackend(capacity=4)
    expected: dict[str, Verdict] = {}
    async with make_service(backend, tmp_path / "j.sqlite3") as service:

        async def submit(i: int) -> None:
            kind = ("trivial", "sorry", "ERROR")[i % 3]
            proof = await service.submit(f"theorem t{i} : True := {kind}")
            expected[proof.id] = (Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED)[i % 3]

        async with anyio.create_task_group() as group:
            for i in range(300):
                group.start_soon(submit, i)
        for proof_id, verdict in expected.items():
            assert (await service.wait(proof_id)).verdict == verdict
    assert len(expected) == 300 and len(backend.calls) == 300


async def test_a_backend_that_never_waits_does_not_starve_the_loop(
    service: ProofService, backend: ScriptedBackend
) -> None:
    """The scripted backend answers without ever suspending: every job is still checked once, and the
    rest of the event loop runs while the workers work through the queue."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    seen: list[int] = []  # the ticks counted when each check started
    check = backend.check

    async def counted_check(code: str, config: ProofConfig) -> ProofResult:
        seen.append(ticks)
        return await check(code, config)

    backend.check = counted_check  # type: ignore[method-assign]
    codes = [f"theorem t{i} : True := trivial" for i in range(400)]
    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        proofs = await service.submit_many(codes)
        answers = [await service.wait(proof.id) for proof in proofs]
        group.cancel_scope.cancel()
    assert all(answer.verdict == Verdict.PROVED for answer in answers)
    assert sorted(code for code, _ in backend.calls) == sorted(codes)
    assert seen[-1] - seen[0] >= 400 // 40, "the loop went on while the queue was worked through"


async def test_a_job_handed_to_a_worker_that_is_cancelled_stays_queued() -> None:
    """A worker cancelled just as a job was handed to it puts the job back first in line: no job is
    lost between the queue and a worker."""
    queue = _JobQueue()
    got: list[_Job] = []

    async def worker() -> None:
        got.append(await queue.get())

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)  # the worker waits for a job
    first, second = (_Job(name, "code", ProofConfig(), "") for name in ("first", "second"))
    queue.put(first)  # handed to the waiting worker ...
    task.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    queue.put(second)
    assert not got
    assert [(await queue.get()).id, (await queue.get()).id] == ["first", "second"]


async def test_jobs_left_open_by_a_stopped_service_run_on_restart(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    first = ScriptedBackend(capacity=1)
    async with make_service(first, db) as service:
        running = await service.submit("theorem a : True := BLOCK")
        queued = await service.submit_many(["theorem b : True := sorry", "theorem c : True := ERROR"])
        await until(lambda: first.blocked == 1, "the first job to start")
    second = ScriptedBackend(capacity=1)
    second.release.set()
    async with make_service(second, db) as service:
        results = [await service.wait(p.id) for p in (running, *queued)]
    assert [r.verdict for r in results] == [Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED]
    assert [code for code, _ in second.calls] == [
        "theorem a : True := BLOCK",
        "theorem b : True := sorry",
        "theorem c : True := ERROR",
    ]
    async with JobStore(str(db)) as store:
        row = await store.get(running.id)
    assert row is not None and row.attempts == 0, "neither a clean stop nor a run is a failed attempt"


async def test_a_job_rerun_on_another_backend_is_cached_under_that_backend(tmp_path: Path) -> None:
    """A job adopted after a restart on a different Lean is that Lean's answer, not the first one's."""
    db, code = tmp_path / "j.sqlite3", "theorem a : True := BLOCK"
    first = ScriptedBackend(capacity=1, identity="scripted:1")
    async with make_service(first, db) as service:
        await service.submit(code)
        await until(lambda: first.blocked == 1, "the job to start")
    second = ScriptedBackend(capacity=1, identity="scripted:2")
    second.release.set()
    async with make_service(second, db) as service:
        await until(lambda: not service._active, "the adopted job to finish")
        assert (await service.verify(code)).cached, "scripted:2 answered it"
    again = ScriptedBackend(capacity=1, identity="scripted:1")
    again.release.set()
    async with make_service(again, db) as service:
        assert not (await service.verify(code)).cached, "scripted:1 never answered it"


async def test_a_live_service_keeps_its_jobs(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    owner = ScriptedBackend(capacity=1)
    async with make_service(owner, db) as live:
        proof = await live.submit("theorem a : True := BLOCK")
        await until(lambda: owner.blocked == 1, "the job to start")
        bystander = ScriptedBackend()
        async with make_service(bystander, db) as other:
            # the owner's `running` mark reaches the file with its next commit, at most MARK_DELAY later
            await anyio.sleep(JobStore.MARK_DELAY + 0.3)
            assert (await other.get_result(proof.id)).status == JobStatus.RUNNING
            owner.release.set()
            assert (await other.wait(proof.id)).verdict == Verdict.PROVED
        assert bystander.calls == [], "a second service on the file must not steal a live service's jobs"


async def test_a_job_that_keeps_killing_its_process_is_given_up(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    async with make_service(ScriptedBackend(), db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO jobs (id, code, config, status, owner, created, attempts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("doomed", "theorem a : True := trivial", "{}", "running", "dead-owner", time.time(), MAX_ATTEMPTS),
        )
    backend = ScriptedBackend()
    async with make_service(backend, db) as service:
        result = await service.wait("doomed")
    assert result.verdict == Verdict.ERROR and "Gave up" in (result.error_message or "") and backend.calls == []


async def test_retention_bounds_the_store(backend: ScriptedBackend, tmp_path: Path) -> None:
    async with make_service(backend, tmp_path / "j.sqlite3", retention_jobs=50) as service:
        proofs = await service.submit_many([f"theorem t{i} : True := trivial" for i in range(200)])
        await until(lambda: len(backend.calls) == 200 and not service._active, "every job to be recorded")
        await service.prune()
        assert await service.store.count() == 50
        assert [r.id for r in await service.list_jobs(50)] == [p.id for p in reversed(proofs[-50:])]
        with pytest.raises(JobNotFoundError):
            await service.get_result(proofs[0].id)


async def test_from_settings_uses_the_settings(backend: ScriptedBackend, tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "s" / "jobs.sqlite3"), timeout=9.0, max_queue=5, cache=False)
    async with ProofService.from_settings(settings, backend) as service:
        await service.verify("theorem a : True := trivial")
        stats = service.stats()
    assert await anyio.Path(settings.db).exists()
    assert backend.calls[0][1].timeout == 9.0
    assert (service.max_queue, service.cache.enabled) == (5, False)
    assert stats["queued"] == 0 and stats["running"] == 0 and stats["backend"]["backend"] == "scripted"


async def test_jobs_orphaned_while_running_are_adopted(backend: ScriptedBackend, tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    async with make_service(backend, db, prune_interval=0.05) as service:
        with sqlite3.connect(db) as conn:  # a job whose process died after we started
            conn.execute(
                "INSERT INTO jobs (id, code, config, status, owner, created) VALUES (?, ?, ?, ?, ?, ?)",
                ("orphan", "theorem o : True := sorry", "{}", "pending", "dead-owner", time.time()),
            )
        await until(lambda: "orphan" in service._active or backend.calls, "the orphan to be adopted")
        result = await service.wait("orphan")
    assert result.verdict == Verdict.SORRY and result.proof_id == "orphan"


async def test_a_failing_store_write_still_answers_the_caller(
    service: ProofService, backend: ScriptedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, on_settled: Callable[[BaseException | None], None], **kwargs: object) -> None:
        asyncio.get_running_loop().call_soon(on_settled, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(service.store, "mark_running", lambda *args: None)  # a mark whose commit fails is dropped
    monkeypatch.setattr(service.store, "finish", broken)
    result = await service.verify("theorem a : True := sorry")
    assert result.verdict == Verdict.SORRY
    assert (await service.get_result(result.proof_id or "")) == result
    monkeypatch.undo()
    assert (await service.verify("theorem b : True := trivial")).verdict == Verdict.PROVED


async def test_an_infinite_timeout_is_refused_and_cannot_poison_the_store(tmp_path: Path) -> None:
    """A config JSON cannot hold inf (it is stored as null); such a job would stop every later start."""
    from lean_mcp._errors import InvalidProofError

    db = tmp_path / "j.sqlite3"
    backend = ScriptedBackend(capacity=1)
    async with make_service(backend, db) as service:
        with pytest.raises(ValueError, match="timeout"):
            ProofConfig(timeout=float("inf"))
        unchecked = ProofConfig.model_construct(timeout=float("inf"))  # as a caller skipping validation would
        with pytest.raises(InvalidProofError, match="timeout"):
            await service.submit("theorem t : True := trivial", unchecked)
    async with JobStore(str(db)) as store:  # a row an older version may have written
        await store.insert([JobRow("bad", "theorem t : True := trivial", '{"timeout": null}', JobStatus.PENDING)])
    async with make_service(ScriptedBackend(capacity=1), db) as service:
        result = await service.wait("bad", timeout=30)
        assert (await service.verify("theorem u : True := trivial")).verdict == Verdict.PROVED
    assert result.status == JobStatus.ERROR and result.success is False
    assert "configuration" in (result.error_message or "")
