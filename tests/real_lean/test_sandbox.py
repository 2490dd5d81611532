"""The real Lean 4.35 inside the bubblewrap sandbox: the same verdicts, positions, timeout and memory kill.

Skipped (with the reason) where `bwrap` cannot create a sandbox; the hostile-action tests are in
tests/test_sandbox_e2e.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from lean_mcp._models import ProofResult, Verdict
from lean_mcp._processes import tree_pids
from lean_mcp._sandbox import why_unavailable
from tests.procs import still_alive

from . import proofs
from .test_lean_backend import backend_for, check, check_once

BWRAP = shutil.which("bwrap")
WHY_NOT = why_unavailable(BWRAP)
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no working sandbox here: {WHY_NOT}")

BOXED: dict[str, object] = {"sandbox": "bwrap"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("code", [proofs.PROVED, proofs.REJECTED, proofs.SORRY], ids=["proved", "rejected", "sorry"])
def test_lean_in_the_sandbox_gives_the_same_verdict_messages_and_positions(
    lean_exe: Path, project: Path, code: str
) -> None:
    plain = check_once(lean_exe, project, code, backend_settings={"sandbox": "none"})
    boxed = check_once(lean_exe, project, code, backend_settings=BOXED)
    assert boxed.verdict == plain.verdict
    assert boxed.messages == plain.messages
    assert boxed.sorries == plain.sorries


@pytest.mark.timeout(60)
def test_at_the_timeout_lean_and_the_sandbox_around_it_are_killed(lean_exe: Path, project: Path) -> None:
    async def main() -> tuple[ProofResult, list[int]]:
        async with backend_for(lean_exe, project, **BOXED) as backend, anyio.create_task_group() as tg:
            results: list[ProofResult] = []

            async def run() -> None:
                results.append(await check(backend, proofs.SLOW, timeout=2.0))

            tg.start_soon(run)
            while not (pids := backend.health()["pids"]):  # noqa: ASYNC110 - polling the backend's state
                await anyio.sleep(0.01)
            await anyio.sleep(0.5)
            tree = tree_pids(pids[0])  # as the memory watchdog sees it: bwrap, its init, and Lean
        return results[0], tree

    result, tree = anyio.run(main)
    assert result.verdict == Verdict.TIMEOUT
    assert len(tree) >= 3, tree
    assert not still_alive(tree)


@pytest.mark.timeout(60)
def test_the_memory_cap_holds_inside_the_sandbox(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, proofs.SLOW, timeout=40, memory_limit_mb=200, backend_settings=BOXED)
    assert result.verdict == Verdict.MEMORY_LIMIT
    assert "200 MB" in (result.error_message or "")
