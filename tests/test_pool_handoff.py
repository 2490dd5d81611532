"""A waiting proof is sent to the REPL that frees up straight from the answer path (`ReplPool._send_for`).

The REPL must not wait for any task to run before it gets its next proof, and nothing else may
change: one request in flight per REPL, each proof's timeout and memory cap its own and counted
from the moment it is sent, a cancelled proof whose answer is owed kills that REPL, a crash is
retried, and every proof gets its own answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._repl.pool import ReplPool
from tests.procs import pid_alive
from tests.standin import standin_command

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CFG = ProofConfig(timeout=20)
PROVED = "theorem t : True := trivial\n"
SLOW = "-- standin: work 0.3\n" + PROVED


async def wait_until_waiting(pool: ReplPool, count: int) -> None:
    with anyio.fail_after(10):
        while pool.health()["waiting"] < count:  # noqa: ASYNC110 - polling the pool's observable state
            await anyio.sleep(0.01)


async def test_the_next_proof_is_sent_from_the_answer_path_before_any_task_runs() -> None:
    """The second proof waited and was sent on its behalf; when its answer arrives, the REPL gets
    the third proof at once, before the second proof's own task has even resumed (an observer
    that runs every turn of the event loop sees the third proof sent while the second is still asleep)."""
    async with ReplPool(standin_command(), workers=1) as pool:
        second_resumed = False
        seen: list[bool] = []

        async def second() -> None:
            nonlocal second_resumed
            assert (await pool.check(SLOW, CFG)).verdict == Verdict.PROVED
            second_resumed = True

        async def observer() -> None:
            while not seen:
                if pool.health()["handoffs"] == 2:
                    seen.append(second_resumed)
                await anyio.lowlevel.checkpoint()

        results: list[ProofResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(pool.check, SLOW, CFG)
            await anyio.sleep(0.1)
            group.start_soon(second)
            await wait_until_waiting(pool, 1)
            group.start_soon(_append, results, pool.check("theorem u : 1 = 1 := rfl\n", CFG))
            await wait_until_waiting(pool, 2)
            group.start_soon(observer)
        assert seen == [False]
        assert [r.verdict for r in results] == [Verdict.PROVED]
        health = pool.health()
        assert (health["proofs"], health["handoffs"], health["repl_starts"]) == (3, 2, 1)


async def _append(results: list[ProofResult], check: Awaitable[ProofResult]) -> None:
    results.append(await check)


async def test_every_waiting_proof_gets_its_own_answer() -> None:
    async with ReplPool(standin_command(), workers=2) as pool:
        verdicts: dict[int, Verdict | None] = {}

        async def run(i: int) -> None:
            # odd proofs fail with their own message, so a crossed answer would show
            code = f"theorem t{i} : True := trivial\n" + (f"-- standin: error wrong {i}\n" if i % 2 else "")
            result = await pool.check(code, CFG)
            verdicts[i] = result.verdict
            if i % 2:
                assert [m.data for m in result.messages] == [f"wrong {i}"]

        async with anyio.create_task_group() as group:
            for i in range(60):
                group.start_soon(run, i)
        assert verdicts == {i: Verdict.REJECTED if i % 2 else Verdict.PROVED for i in range(60)}
        health = pool.health()
        assert health["proofs"] == 60 and health["handoffs"] > 0 and health["repl_starts"] == 2


async def test_a_timeout_in_a_proof_sent_on_its_behalf_kills_only_its_repl() -> None:
    async with ReplPool(standin_command(), workers=2) as pool:
        results: dict[str, ProofResult] = {}

        async def run(name: str, code: str, config: ProofConfig = CFG) -> None:
            results[name] = await pool.check(code, config)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "slow", "-- standin: work 0.2\n" + PROVED)
            group.start_soon(run, "long", "-- standin: work 2\n" + PROVED)
            await anyio.sleep(0.1)
            pids = pool.health()["pids"]
            group.start_soon(run, "hang", "-- standin: hang\n" + PROVED, ProofConfig(timeout=0.5))
            await wait_until_waiting(pool, 1)
        assert results["hang"].verdict == Verdict.TIMEOUT
        assert "0.5 s timeout" in (results["hang"].error_message or "")
        assert results["slow"].verdict == results["long"].verdict == Verdict.PROVED
        health = pool.health()
        assert (health["handoffs"], health["timeouts"], health["restarts"]) == (1, 1, 1)
        assert [pid_alive(pid) for pid in pids].count(True) == 1  # the other REPL lived on
        assert (await pool.check(PROVED, CFG)).verdict == Verdict.PROVED


async def test_the_timeout_of_a_proof_sent_on_its_behalf_runs_from_its_send() -> None:
    """It waited in the queue longer than its own timeout, but Lean needs less: it passes."""
    async with ReplPool(standin_command(), workers=1) as pool, anyio.create_task_group() as group:
        group.start_soon(pool.check, "-- standin: work 1\n" + PROVED, CFG)
        await anyio.sleep(0.1)
        results: list[ProofResult] = []
        group.start_soon(_append, results, pool.check("-- standin: work 0.2\n" + PROVED, ProofConfig(timeout=0.7)))
        await wait_until_waiting(pool, 1)
    assert results[0].verdict == Verdict.PROVED
    assert pool.health()["handoffs"] == 1


async def test_the_memory_cap_of_a_proof_sent_on_its_behalf_is_its_own() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        results: list[ProofResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(pool.check, SLOW, CFG)
            await anyio.sleep(0.1)
            hog = "theorem t : True := trivial\n-- standin: memory 200\n"
            group.start_soon(_append, results, pool.check(hog, ProofConfig(memory_limit_mb=100)))
            await wait_until_waiting(pool, 1)
        assert results[0].verdict == Verdict.MEMORY_LIMIT
        assert "100 MB memory limit" in (results[0].error_message or "")
        health = pool.health()
        assert (health["handoffs"], health["memory_kills"]) == (1, 1)
        assert (await pool.check(PROVED, CFG)).verdict == Verdict.PROVED


async def test_cancelling_a_proof_sent_on_its_behalf_kills_that_repl() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        async with anyio.create_task_group() as group:
            group.start_soon(pool.check, SLOW, CFG)
            await anyio.sleep(0.1)
            [pid] = pool.health()["pids"]
            with anyio.move_on_after(1.0) as scope:
                await pool.check("-- standin: hang\n" + PROVED, ProofConfig(timeout=30))
        assert scope.cancelled_caught
        assert pool.health()["handoffs"] == 1  # it was sent when the first proof's answer came in
        assert not pid_alive(pid)
        health = pool.health()
        assert (health["busy"], health["live"], health["restarts"]) == (0, 0, 1)
        assert (await pool.check(PROVED, CFG)).verdict == Verdict.PROVED


async def test_a_crash_in_a_proof_sent_on_its_behalf_is_retried_on_a_new_repl(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    async with ReplPool(standin_command(), workers=1) as pool:
        results: list[ProofResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(pool.check, SLOW, CFG)
            await anyio.sleep(0.1)
            group.start_soon(_append, results, pool.check(f"{PROVED}-- standin: crash-once {marker}\n", CFG))
            await wait_until_waiting(pool, 1)
        assert results[0].verdict == Verdict.PROVED
        health = pool.health()
        assert (health["handoffs"], health["crashes"], health["retries"], health["repl_starts"]) == (1, 1, 1, 2)


async def test_a_proof_too_long_for_one_pipe_write_waits_for_its_task_and_passes() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        results: list[ProofResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(pool.check, SLOW, CFG)
            await anyio.sleep(0.1)
            long_proof = "-- " + "x" * 10_000 + "\n" + PROVED
            group.start_soon(_append, results, pool.check(long_proof, CFG))
            await wait_until_waiting(pool, 1)
        assert results[0].verdict == Verdict.PROVED
        assert pool.health()["handoffs"] == 0
