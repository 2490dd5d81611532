"""The proof service end to end: real REPL stand-in processes through ReplBackend, a real SQLite file.

Includes the crash test: a process holding 100 queued jobs is killed with SIGKILL, and a new service
on the same file finishes all 100 with the right verdicts, leaving no REPL process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._jobs.service import ProofService
from lean_mcp._models import JobStatus, ProofConfig, Verdict
from lean_mcp._server.runtime import open_service
from lean_mcp._settings import Settings
from tests.procs import pid_alive
from tests.standin import standin_command

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[1]

VERDICT_OF_KIND = {"proved": Verdict.PROVED, "sorry": Verdict.SORRY, "rejected": Verdict.REJECTED}


def proof_text(i: int, kind: str) -> str:
    """A distinct proof whose stand-in verdict is `kind`."""
    body = {"proved": "trivial", "sorry": "sorry", "rejected": f"trivial\n-- standin: error boom {i}"}[kind]
    return f"theorem t{i} : True := {body}\n"


def mixed(n: int) -> list[tuple[str, Verdict]]:
    kinds = list(VERDICT_OF_KIND)
    return [(proof_text(i, kinds[i % 3]), VERDICT_OF_KIND[kinds[i % 3]]) for i in range(n)]


def settings_for(tmp_path: Path, **standin: float) -> Settings:
    return Settings(
        backend="repl",
        repl=standin_command(**standin),
        project=str(tmp_path),
        db=str(tmp_path / "jobs.sqlite3"),
        workers=2,
        timeout=60.0,
    )


def assert_all_exit(pids: Iterable[int], what: str) -> None:
    """Wait (bounded) for every pid to be gone; kill and fail if one lingers."""
    pids = list(pids)
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    lingering = [p for p in pids if pid_alive(p)]
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    assert not lingering, f"{what}: REPL processes left behind: {lingering}"


def backend_counts(service: ProofService) -> dict[str, Any]:
    return service.stats()["backend"]


async def test_500_concurrent_submits_all_finish_with_the_right_verdicts(tmp_path: Path) -> None:
    cases = mixed(500)
    expected: dict[str, tuple[int, Verdict]] = {}
    async with open_service(settings_for(tmp_path)) as service:

        async def submit(i: int, code: str, verdict: Verdict) -> None:
            expected[(await service.submit(code)).id] = (i, verdict)

        async with anyio.create_task_group() as group:
            for i, (code, verdict) in enumerate(cases):
                group.start_soon(submit, i, code, verdict)
        assert len(expected) == 500
        for proof_id, (i, verdict) in expected.items():
            result = await service.wait(proof_id)
            assert (result.verdict, result.proof_id) == (verdict, proof_id), result
            if verdict == Verdict.REJECTED:
                assert [m.data for m in result.result.errors] == [f"boom {i}"]  # type: ignore[union-attr]
        assert backend_counts(service)["proofs"] == 500


async def test_pending_running_finished_is_observable(tmp_path: Path) -> None:
    async with open_service(settings_for(tmp_path)) as service:
        proof = await service.submit("theorem slow : True := trivial\n-- standin: work 0.5\n")
        seen = [(await service.get_result(proof.id)).status]
        while seen[-1] not in (JobStatus.FINISHED, JobStatus.ERROR):
            await anyio.sleep(0.01)
            status = (await service.get_result(proof.id)).status
            if status != seen[-1]:
                seen.append(status)
        assert seen == [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FINISHED]
        result = await service.get_result(proof.id)
        assert result.verdict == Verdict.PROVED and result.success is True


async def test_a_cache_hit_runs_no_lean(tmp_path: Path) -> None:
    code = "theorem t : 1 + 1 = 2 := by\n-- standin: error The rfl tactic failed.\n  rfl\n"
    async with open_service(settings_for(tmp_path)) as service:
        first = await service.verify(code)
        second = await service.verify(code)
        assert backend_counts(service)["proofs"] == 1
        fresh = await service.verify(code, ProofConfig(use_cache=False))
        assert backend_counts(service)["proofs"] == 2
    assert (first.cached, second.cached, fresh.cached) == (False, True, False)
    assert first.verdict == second.verdict == fresh.verdict == Verdict.REJECTED
    assert second.messages == first.messages and "rfl tactic failed" in second.messages[0].data


async def test_a_sorry_with_live_proof_states_is_checked_again_for_fresh_ones(tmp_path: Path) -> None:
    code = "theorem t : 1 + 1 = 2 := sorry\n"
    async with open_service(settings_for(tmp_path)) as service:
        first = await service.verify(code)
        second = await service.verify(code)
        assert backend_counts(service)["proofs"] == 2  # a cached copy would carry another run's ids
    assert first.verdict == second.verdict == Verdict.SORRY and not second.cached
    assert first.sorries[0].goal == second.sorries[0].goal
    assert None is not first.sorries[0].proof_state_id != second.sorries[0].proof_state_id


async def test_a_timeout_is_never_cached(tmp_path: Path) -> None:
    code = "theorem t : True := trivial\n-- standin: work 30\n"
    async with open_service(settings_for(tmp_path)) as service:
        for _ in range(2):
            result = await service.verify(code, ProofConfig(timeout=0.5))
            assert result.verdict == Verdict.TIMEOUT and not result.cached
        assert backend_counts(service)["timeouts"] == 2


async def test_cancel_a_running_proof_kills_its_repl_and_the_pool_recovers(tmp_path: Path) -> None:
    async with open_service(settings_for(tmp_path)) as service:
        proof = await service.submit("theorem h : True := trivial\n-- standin: hang\n")
        with anyio.fail_after(30):
            while (await service.get_result(proof.id)).status != JobStatus.RUNNING:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        hung = list(backend_counts(service)["pids"])
        result = await service.cancel(proof.id)
        assert result.status == JobStatus.ERROR and "cancelled" in (result.error_message or "")
        assert (await service.verify("theorem ok : True := trivial\n")).verdict == Verdict.PROVED
        pids = set(backend_counts(service)["pids"]) | set(hung)
    await anyio.to_thread.run_sync(assert_all_exit, pids, "after close")


KILLEE = textwrap.dedent(
    """
    import json, sys
    import anyio
    from lean_mcp._server.runtime import open_service
    from lean_mcp._settings import Settings

    async def main() -> None:
        settings = Settings(**json.loads(sys.argv[1]))
        codes = json.loads(sys.stdin.readline())
        async with open_service(settings) as service:
            proofs = await service.submit_many(codes)
            with anyio.fail_after(60):
                while service.stats()["backend"]["live"] < 1:
                    await anyio.sleep(0.01)
            print(json.dumps({"ids": [p.id for p in proofs], "pids": service.stats()["backend"]["pids"]}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
    """
)


def test_kill_9_with_100_queued_jobs_then_restart_finishes_them_all(tmp_path: Path) -> None:
    cases = mixed(100)
    slow = settings_for(tmp_path, work_seconds=0.3)
    settings_json = json.dumps({k: getattr(slow, k) for k in ("backend", "repl", "project", "db", "workers")})
    killee = subprocess.Popen(
        [sys.executable, "-c", KILLEE, settings_json],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert killee.stdin is not None and killee.stdout is not None
        killee.stdin.write(json.dumps([code for code, _ in cases]) + "\n")
        killee.stdin.flush()
        report = json.loads(killee.stdout.readline())
    finally:
        killee.send_signal(signal.SIGKILL)
        killee.wait(timeout=30)
    assert killee.returncode == -signal.SIGKILL
    assert len(report["ids"]) == 100 and report["pids"]
    assert_all_exit(report["pids"], "after kill -9")

    async def restart() -> tuple[list[Any], dict[str, Any]]:
        async with open_service(settings_for(tmp_path)) as service:
            results = [await service.wait(proof_id) for proof_id in report["ids"]]
            return results, backend_counts(service)

    results, counts = anyio.run(restart)
    assert counts["proofs"] >= 90, "the restarted service must have re-run the unfinished jobs"
    assert [r.verdict for r in results] == [verdict for _, verdict in cases]
    assert [r.proof_id for r in results] == report["ids"]
    assert_all_exit(counts["pids"], "after restart and close")
