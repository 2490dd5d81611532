"""The header-reusing REPL pool, through real stand-in REPL processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._backends.auto import create_backend
from lean_mcp._backends.repl import ReplBackend
from lean_mcp._errors import BackendUnavailableError, BusyError, ConfigurationError
from lean_mcp._models import JobStatus, ProofConfig, ProofResult, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._settings import LeanLimits, Settings
from lean_mcp._trust.guard import TrustedBackend
from tests.procs import pid_alive
from tests.standin import standin_command

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[1]
CFG = ProofConfig(timeout=20)
PROVED = "theorem t : True := trivial\n"


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling the pool's observable state
            await anyio.sleep(0.01)


def pool(**options: Any) -> ReplPool:
    command = options.pop("command", None) or standin_command()
    return ReplPool(command, **options)


@pytest.fixture
async def one() -> AsyncIterator[ReplPool]:
    async with pool(workers=1) as p:
        yield p


# -- header reuse and isolation ----------------------------------------------------------------


async def test_the_header_is_imported_once_per_repl() -> None:
    async with pool(workers=2) as p:
        for i in range(5):
            result = await p.check(f"import Mathlib\nimport Aesop\ntheorem t{i} : True := trivial", CFG)
            assert result.verdict == Verdict.PROVED
        health = p.health()
        assert (health["repl_starts"], health["header_runs"], health["proofs"]) == (1, 1, 5)
        assert health["headers"] == {"import Mathlib\nimport Aesop": 1}


async def test_concurrent_proofs_share_at_most_workers_repls_and_keep_their_own_answers() -> None:
    codes = {
        i: f"import Mathlib\ntheorem t{i} : True := "
        + ["trivial", "by\n  sorry", "trivial\n-- standin: error no"][i % 3]
        for i in range(24)
    }
    expected = [Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED]
    results: dict[int, ProofResult] = {}
    async with pool(workers=2) as p:

        async def run(i: int) -> None:
            results[i] = await p.check(codes[i], CFG)

        async with anyio.create_task_group() as group:
            for i in codes:
                group.start_soon(run, i)
        health = p.health()
    assert all(results[i].verdict == expected[i % 3] for i in codes)
    assert health["repl_starts"] == health["header_runs"] <= 2
    assert health["live"] <= 2


async def test_no_declaration_leaks_between_proofs(one: ReplPool) -> None:
    text = "import Mathlib\ntheorem same_name : True := trivial\n"
    first = await one.check(text, CFG)
    second = await one.check(text, CFG)
    assert first.verdict == second.verdict == Verdict.PROVED
    assert one.health()["repl_starts"] == 1


async def test_same_header_written_differently_shares_the_repl(one: ReplPool) -> None:
    await one.check("import Mathlib\n" + PROVED, CFG)
    await one.check("-- comment\nimport   Mathlib  -- all of it\n\n" + PROVED, CFG)
    assert one.health()["header_runs"] == 1


async def test_lru_eviction_when_a_new_header_needs_a_slot() -> None:
    async with pool(workers=2) as p:
        await p.check("import A\n" + PROVED, CFG)
        await p.check("import B\n" + PROVED, CFG)
        await p.check("import C\n" + PROVED, CFG)  # evicts A, the least recently used
        assert p.health()["headers"] == {"import B": 1, "import C": 1}
        await p.check("import B\n" + PROVED, CFG)  # still there: no new REPL
        assert p.health()["repl_starts"] == 3
        await p.check("import A\n" + PROVED, CFG)  # evicts C now
        health = p.health()
        assert health["headers"] == {"import A": 1, "import B": 1}
        assert (health["repl_starts"], health["evictions"]) == (4, 2)


async def test_prewarm_imports_headers_at_start() -> None:
    async with pool(workers=2, prewarm=["import Mathlib", "import Aesop\nimport Mathlib\nopen Nat"]) as p:
        health = p.health()
        assert health["headers"] == {"import Mathlib": 1, "import Aesop\nimport Mathlib": 1}
        assert health["header_runs"] == 2
        result = await p.check("import Mathlib\n" + PROVED, CFG)
        assert result.verdict == Verdict.PROVED
        assert p.health()["repl_starts"] == 2


# -- recycling --------------------------------------------------------------------------------


async def test_recycle_after_max_uses() -> None:
    async with pool(workers=1, max_uses=3) as p:
        pids = set()
        for _ in range(7):
            assert (await p.check(PROVED, CFG)).verdict == Verdict.PROVED
            pids.update(p.health()["pids"])
        health = p.health()
    assert (health["recycled"], health["repl_starts"]) == (2, 3)
    assert all(not pid_alive(pid) for pid in pids)


async def test_recycle_when_resident_memory_passes_the_threshold(one: ReplPool) -> None:
    async with pool(workers=1, recycle_mb=80) as p:
        await p.check(PROVED, CFG)
        [pid] = p.health()["pids"]
        result = await p.check("theorem big : True := trivial\n-- standin: memory 120\n", CFG)
        assert result.verdict == Verdict.PROVED  # the proof's answer stands; the REPL is replaced after it
        assert p.health()["recycled"] == 1
        assert not pid_alive(pid)
        await p.check(PROVED, CFG)
        assert p.health()["pids"] != [pid]


# -- failures ---------------------------------------------------------------------------------


async def test_timeout_kills_the_repl_and_the_next_proof_works(one: ReplPool) -> None:
    await one.check(PROVED, CFG)
    [pid] = one.health()["pids"]
    result = await one.check("theorem slow : True := trivial\n-- standin: hang\n", ProofConfig(timeout=0.5))
    assert result.verdict == Verdict.TIMEOUT
    assert result.status == JobStatus.ERROR and result.success is False
    assert "0.5 s timeout" in (result.error_message or "")
    assert result.result is not None and result.result.return_code == -9  # as lean-runner reports a kill
    assert not pid_alive(pid)
    after = await one.check(PROVED, CFG)
    assert after.verdict == Verdict.PROVED
    health = one.health()
    assert (health["timeouts"], health["restarts"], health["repl_starts"]) == (1, 1, 2)


WRAPPER = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


async def test_timeout_kills_the_whole_process_group() -> None:
    """Like `lake env repl`: the REPL is a child of the process we start; both must die."""
    async with pool(workers=1, command=[*WRAPPER, *standin_command()]) as p:
        await p.check(PROVED, CFG)
        [pid] = p.health()["pids"]
        [child] = children_of(pid)
        result = await p.check("-- standin: hang\n", ProofConfig(timeout=0.5))
        assert result.verdict == Verdict.TIMEOUT
        await wait_until(lambda: not pid_alive(child))
        assert not pid_alive(pid)
        assert (await p.check(PROVED, CFG)).verdict == Verdict.PROVED


async def test_timeout_while_importing_says_so() -> None:
    async with pool(workers=1, command=standin_command(import_seconds=30), limits=LeanLimits(import_timeout=0.5)) as p:
        result = await p.check("import Mathlib\n" + PROVED, ProofConfig(timeout=0.5))
    assert result.verdict == Verdict.TIMEOUT
    assert "importing the proof's header" in (result.error_message or "")


async def test_a_slow_import_is_not_cut_short_by_a_short_proof_timeout() -> None:
    async with pool(workers=1, command=standin_command(import_seconds=1), limits=LeanLimits(import_timeout=20)) as p:
        started = time.monotonic()
        first = await p.check("import Mathlib\n" + PROVED, ProofConfig(timeout=0.2))
        assert time.monotonic() - started < 0.9  # the request waited its own timeout, not the import
        assert first.verdict == Verdict.TIMEOUT
        assert "still importing" in (first.error_message or "") and "--import-timeout" in (first.error_message or "")
        for _ in range(100):  # each try waits 0.2 s while the same import goes on
            result = await p.check("import Mathlib\n" + PROVED, ProofConfig(timeout=0.2))
            if result.verdict != Verdict.TIMEOUT:
                break
            assert "still importing" in (result.error_message or "")
        assert result.verdict == Verdict.PROVED
        assert p.health()["repl_starts"] == 1
        slow = await p.check("import Mathlib\n-- standin: work 5\n" + PROVED, ProofConfig(timeout=0.2))
        assert slow.verdict == Verdict.TIMEOUT  # the proof itself still gets only its own timeout


@pytest.mark.parametrize("wrapped", [False, True], ids=["repl", "repl-under-a-parent"])
async def test_memory_limit(wrapped: bool) -> None:
    command = [*WRAPPER, *standin_command()] if wrapped else standin_command()
    async with pool(workers=1, command=command) as p:
        result = await p.check(
            "theorem t : True := trivial\n-- standin: memory 200\n", ProofConfig(memory_limit_mb=100)
        )
        assert result.verdict == Verdict.MEMORY_LIMIT
        assert result.status == JobStatus.ERROR
        assert "100 MB memory limit" in (result.error_message or "")
        assert (await p.check(PROVED, CFG)).verdict == Verdict.PROVED
        assert p.health()["memory_kills"] == 1


async def test_the_stricter_memory_cap_wins() -> None:
    async with pool(workers=1, limits=LeanLimits(memory_mb=100)) as p:
        result = await p.check("-- standin: memory 200\n" + PROVED, ProofConfig(memory_limit_mb=8192))
    assert result.verdict == Verdict.MEMORY_LIMIT


async def test_a_crash_is_retried_once_on_a_new_repl(one: ReplPool, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    result = await one.check(f"theorem t : True := trivial\n-- standin: crash-once {marker}\n", CFG)
    assert result.verdict == Verdict.PROVED
    assert marker.exists()
    health = one.health()
    assert (health["crashes"], health["retries"], health["repl_starts"]) == (1, 1, 2)


async def test_a_proof_that_kills_two_repls_is_an_error_with_the_stderr_tail(one: ReplPool) -> None:
    result = await one.check("theorem t : True := trivial\n-- standin: crash\n", CFG)
    assert result.verdict == Verdict.ERROR
    assert result.status == JobStatus.ERROR and result.success is False
    assert "INTERNAL PANIC" in (result.error_message or "")
    assert "broke the Lean REPL twice" in (result.error_message or "")
    assert result.result is not None and result.result.return_code == 134
    assert (await one.check(PROVED, CFG)).verdict == Verdict.PROVED
    assert one.health()["crashes"] == 2


async def test_unknown_import_is_rejected_and_the_pool_stays_healthy(one: ReplPool) -> None:
    result = await one.check("import Nonexistent.Module\n" + PROVED, CFG)
    assert result.verdict == Verdict.REJECTED and result.status == JobStatus.FINISHED
    assert "unknown module prefix 'Nonexistent'" in result.messages[0].data
    assert one.health()["live"] == 0  # a REPL whose header failed is not kept
    assert (await one.check("import Mathlib\n" + PROVED, CFG)).verdict == Verdict.PROVED


async def test_a_repl_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    async with ReplPool([str(tmp_path / "no-such-repl")], workers=1) as p:
        for _ in range(2):  # the slot is released after the failure
            with pytest.raises(BackendUnavailableError, match="Cannot start the REPL"):
                await p.check(PROVED, CFG)


async def test_prewarm_with_a_repl_that_cannot_start_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="Cannot start the REPL"):
        async with ReplPool([str(tmp_path / "no-such-repl")], workers=1, prewarm=["import Mathlib"]):
            pass


async def test_a_prewarm_header_lean_rejects_is_skipped() -> None:
    async with pool(workers=1, prewarm=["import Nonexistent.Thing"]) as p:
        assert p.health()["live"] == 0
        assert (await p.check(PROVED, CFG)).verdict == Verdict.PROVED


# -- waiting, cancellation, shutdown -------------------------------------------------------


async def test_busy_error_when_no_repl_frees_up_within_the_queue_timeout() -> None:
    async with pool(workers=1, queue_timeout=0.3) as p, anyio.create_task_group() as group:
        group.start_soon(p.check, "-- standin: hang\n" + PROVED, ProofConfig(timeout=30))
        await wait_until(lambda: p.health()["busy"] == 1)
        with pytest.raises(BusyError, match="stayed busy"):
            await p.check(PROVED, CFG)
        assert p.health()["busy_errors"] == 1
        assert p.health()["waiting"] == 0
        group.cancel_scope.cancel()


async def test_waiting_proofs_get_the_next_free_repl() -> None:
    async with pool(workers=1) as p:
        results = []

        async def run(code: str) -> None:
            results.append((await p.check(code, CFG)).verdict)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "-- standin: work 1\n" + PROVED)
            await wait_until(lambda: p.health()["busy"] == 1)
            for _ in range(3):
                group.start_soon(run, PROVED)
            await wait_until(lambda: p.health()["waiting"] == 3)
        assert results == [Verdict.PROVED] * 4
        assert p.health()["repl_starts"] == 1


async def test_cancelling_a_check_kills_its_repl_and_leaves_the_pool_healthy(one: ReplPool) -> None:
    await one.check(PROVED, CFG)
    [pid] = one.health()["pids"]
    with anyio.move_on_after(0.5) as scope:
        await one.check("-- standin: hang\n" + PROVED, ProofConfig(timeout=30))
    assert scope.cancelled_caught
    assert not pid_alive(pid)
    health = one.health()
    assert (health["busy"], health["live"]) == (0, 0)
    assert (await one.check(PROVED, CFG)).verdict == Verdict.PROVED


async def test_cancelling_a_waiting_check_gives_up_its_place() -> None:
    async with pool(workers=1) as p:
        async with anyio.create_task_group() as group:
            group.start_soon(p.check, "-- standin: work 0.5\n" + PROVED, CFG)
            await wait_until(lambda: p.health()["busy"] == 1)
            with anyio.move_on_after(0.1):
                await p.check(PROVED, CFG)
            assert p.health()["waiting"] == 0
        assert (await p.check(PROVED, CFG)).verdict == Verdict.PROVED
        assert p.health()["repl_starts"] == 1


async def test_shutdown_leaves_no_process_even_mid_proof() -> None:
    p = pool(workers=2)
    results: list[ProofResult] = []
    async with p:
        await p.check("import A\n" + PROVED, CFG)
        async with anyio.create_task_group() as group:

            async def hang() -> None:
                results.append(await p.check("import B\n-- standin: hang\n", ProofConfig(timeout=30)))

            group.start_soon(hang)
            await wait_until(lambda: len(p.health()["pids"]) == 2 and p.health()["busy"] == 1)
            pids = p.health()["pids"]
            await p.aclose()
    assert all(not pid_alive(pid) for pid in pids)
    assert results[0].verdict == Verdict.ERROR and "shut down" in (results[0].error_message or "")
    with pytest.raises(BackendUnavailableError):
        await p.check(PROVED, CFG)


DRIVER = textwrap.dedent(
    """
    import json, sys, anyio
    from lean_mcp._models import ProofConfig
    from lean_mcp._repl.pool import ReplPool
    from tests.standin import standin_command

    async def main():
        async with ReplPool(standin_command(), workers=2) as pool:
            await pool.check("import A\\ntheorem t : True := trivial", ProofConfig())
            async with anyio.create_task_group() as group:
                group.start_soon(pool.check, "import B\\n-- standin: hang\\n", ProofConfig())
                while len(pool.health()["pids"]) < 2:
                    await anyio.sleep(0.01)
                print(json.dumps(pool.health()["pids"]), flush=True)

    anyio.run(main)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_killing_the_program_leaves_no_repl(signum: int) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        pids = json.loads(driver.stdout.readline())
        assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
        driver.send_signal(signum)
        driver.wait(timeout=20)
    finally:
        driver.kill()
        driver.wait()
    for _ in range(1000):  # the REPLs were killed before the driver died; allow for reaping
        if not any(pid_alive(pid) for pid in pids):
            break
        time.sleep(0.01)
    assert not any(pid_alive(pid) for pid in pids)


# -- the backend ------------------------------------------------------------------------------


async def test_backend_from_settings(tmp_path: Path) -> None:
    (tmp_path / "lean-toolchain").write_text("leanprover/lean4:v4.35.0\n")
    settings = Settings(repl=standin_command(), project=str(tmp_path), workers=2, prewarm=["import Mathlib"])
    backend = ReplBackend.from_settings(settings)
    assert backend.capacity == 2
    assert "leanprover/lean4:v4.35.0" in backend.identity and str(tmp_path) in backend.identity
    async with backend:
        health = backend.health()
        assert health["backend"] == "repl" and health["live"] == 1
        result = await backend.check("import Mathlib\ntheorem t : 1 = 1 := by\n  rfl", ProofConfig(all_tactics=True))
        assert result.verdict == Verdict.PROVED
        assert result.lean_time is not None and result.lean_time >= 0
        assert result.result is not None and result.result.tactics
        assert backend.health()["repl_starts"] == 1


def test_create_backend_builds_the_pool_for_backend_repl() -> None:
    backend = create_backend(Settings(backend="repl", repl=standin_command(), workers=3))
    assert isinstance(backend, TrustedBackend)  # every backend runs behind the verdict checks
    assert isinstance(backend.inner, ReplBackend) and backend.capacity == 3


def test_backend_needs_a_repl_command() -> None:
    with pytest.raises(ConfigurationError, match="--repl"):
        ReplBackend.from_settings(Settings(repl=None))


async def test_cached_answers_do_not_outlive_a_dependency_update(tmp_path: Path) -> None:
    """After `lake update` (a new lake-manifest.json) the same proof is checked again, not served from cache."""
    from lean_mcp._jobs.service import ProofService

    (tmp_path / "lean-toolchain").write_text("leanprover/lean4:v4.35.0\n")
    (tmp_path / "lakefile.toml").write_text('name = "p"\n[[require]]\nname = "mathlib"\n')
    manifest = tmp_path / "lake-manifest.json"
    manifest.write_text('{"packages": [{"name": "mathlib", "rev": "aaaa"}]}\n')
    settings = Settings(repl=standin_command(), project=str(tmp_path), db=str(tmp_path / "jobs.db"))
    code = "import Mathlib\ntheorem t : True := trivial\n"
    backend = ReplBackend.from_settings(settings)
    async with backend, ProofService.from_settings(settings, backend) as service:
        assert (await service.verify(code)).cached is False
        assert (await service.verify(code)).cached is True
        manifest.write_text('{"packages": [{"name": "mathlib", "rev": "bbbbbbbb"}]}\n')
        again = await service.verify(code)
    assert again.cached is False and again.verdict == Verdict.PROVED


async def test_an_import_failure_is_not_cached(tmp_path: Path) -> None:
    """A header Lean cannot import (e.g. a project not built yet) is checked again next time, not served stale."""
    from lean_mcp._jobs.service import ProofService

    settings = Settings(repl=standin_command(), project=str(tmp_path), db=str(tmp_path / "jobs.db"))
    backend = ReplBackend.from_settings(settings)
    code = "import NonexistentModule\ntheorem t : True := trivial\n"
    async with backend, ProofService.from_settings(settings, backend) as service:
        first = await service.verify(code)
        second = await service.verify(code)
        proved = "theorem t : True := trivial\n"
        assert (await service.verify(proved)).verdict == Verdict.PROVED
        assert (await service.verify(proved)).cached is True  # Lean's answers on a good header are cached
    assert first.verdict == second.verdict == Verdict.REJECTED
    assert second.cached is False
    assert backend.health()["header_runs"] >= 3
