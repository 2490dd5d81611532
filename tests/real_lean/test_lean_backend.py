"""The lean backend against the real Lean 4.35: verdicts, positions, sorry, timeout, memory, load."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from lean_mcp._backends.auto import create_backend
from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._models import JobStatus, ProofConfig, ProofResult, Severity, Verdict
from lean_mcp._settings import Settings

from . import proofs


def backend_for(lean: Path, project: Path, **settings: object) -> LeanCliBackend:
    return LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(project), **settings))


async def check(backend: LeanCliBackend, code: str, **config: object) -> ProofResult:
    return await backend.check(code, ProofConfig(**config))


def check_once(
    lean: Path, project: Path, code: str, *, backend_settings: dict[str, object] | None = None, **config: object
) -> ProofResult:
    """Start a lean backend, check one proof under `config`, close the backend, return the result."""

    async def main() -> ProofResult:
        async with backend_for(lean, project, **(backend_settings or {})) as backend:
            return await check(backend, code, **config)

    return anyio.run(main)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def first_pid(backend: LeanCliBackend) -> int:
    """The pid of the Lean process the backend has just started."""
    for _ in range(3000):
        pids: list[int] = backend.health()["pids"]
        if pids:
            return pids[0]
        await anyio.sleep(0.01)
    raise AssertionError("the backend never started a Lean process")


@pytest.mark.timeout(60)
def test_correct_proof_is_proved_with_no_messages(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, proofs.PROVED)
    assert result.verdict == Verdict.PROVED
    assert result.success is True
    assert result.status == JobStatus.FINISHED
    assert result.messages == []
    assert result.lean_time is not None and result.lean_time > 0


@pytest.mark.timeout(60)
def test_wrong_proof_is_rejected_with_leans_message_at_the_exact_position(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, proofs.REJECTED)
    assert result.verdict == Verdict.REJECTED
    assert result.success is False
    assert result.status == JobStatus.FINISHED
    line = proofs.REJECTED.splitlines()[8]
    first = result.messages[0]
    assert first.severity == Severity.ERROR
    assert "Type mismatch" in first.data
    assert (first.pos.line, first.pos.column) == (9, line.index("Eq.refl"))  # code points, not bytes
    assert first.end_pos is not None and first.end_pos.column == len(line)


@pytest.mark.timeout(60)
def test_real_sorry_is_sorry_even_though_lean_exits_zero(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, proofs.SORRY)
    assert result.verdict == Verdict.SORRY
    assert result.success is False
    warning = result.messages[0]
    assert warning.severity == Severity.WARNING and "declaration uses `sorry`" in warning.data
    assert [(s.pos.line, s.pos.column) for s in result.sorries if s.pos] == [(11, 8)]


@pytest.mark.timeout(60)
def test_file_without_prelude_is_rejected_for_the_missing_init(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, "theorem t : True := trivial\n")
    assert result.verdict == Verdict.REJECTED
    assert "unknown module prefix 'Init'" in result.messages[0].data


@pytest.mark.timeout(60)
def test_slow_proof_times_out_and_the_process_is_gone_within_a_second(lean_exe: Path, project: Path) -> None:
    timeout = 2.0

    async def main() -> tuple[ProofResult, bool]:
        async with backend_for(lean_exe, project) as backend, anyio.create_task_group() as tg:
            results: list[ProofResult] = []

            async def run() -> None:
                results.append(await check(backend, proofs.SLOW, timeout=timeout))

            tg.start_soon(run)
            pid = await first_pid(backend)
            spawned = anyio.current_time()  # the deadline runs from here (a little earlier, in fact)
            await anyio.sleep_until(spawned + timeout + 1.0)
            alive = pid_alive(pid)
        return results[0], alive

    result, alive_after_deadline = anyio.run(main)
    assert result.verdict == Verdict.TIMEOUT
    assert result.status == JobStatus.ERROR
    assert result.success is False
    assert "timeout" in (result.error_message or "")
    assert not alive_after_deadline


@pytest.mark.timeout(60)
def test_memory_limit_kills_the_proof_with_verdict_memory_limit(lean_exe: Path, project: Path) -> None:
    result = check_once(lean_exe, project, proofs.SLOW, timeout=40, memory_limit_mb=200)
    assert result.verdict == Verdict.MEMORY_LIMIT
    assert result.status == JobStatus.ERROR
    assert "200 MB" in (result.error_message or "")


@pytest.mark.timeout(60)
def test_server_memory_cap_applies_when_stricter_than_the_request(lean_exe: Path, project: Path) -> None:
    result = check_once(
        lean_exe, project, proofs.SLOW, timeout=40, memory_limit_mb=8192, backend_settings={"memory_mb": 250}
    )
    assert result.verdict == Verdict.MEMORY_LIMIT
    assert "250 MB" in (result.error_message or "")


@pytest.mark.timeout(60)
def test_cancelling_a_check_kills_lean_and_the_backend_keeps_working(lean_exe: Path, project: Path) -> None:
    async def main() -> tuple[bool, ProofResult, int]:
        async with backend_for(lean_exe, project, workers=1) as backend:
            async with anyio.create_task_group() as tg:
                tg.start_soon(check, backend, proofs.SLOW)
                pid = await first_pid(backend)
                tg.cancel_scope.cancel()
            alive = pid_alive(pid)
            after = await check(backend, proofs.PROVED)
            return alive, after, backend.health()["running"]

    alive, after, running = anyio.run(main)
    assert not alive
    assert after.verdict == Verdict.PROVED
    assert running == 0


@pytest.mark.timeout(120)
def test_twenty_concurrent_proofs_each_get_their_own_answer(lean_exe: Path, project: Path) -> None:
    codes = [proofs.numbered(i, correct=i % 3 != 0) for i in range(20)]

    async def main() -> list[ProofResult]:
        results: list[ProofResult | None] = [None] * len(codes)
        async with backend_for(lean_exe, project, workers=4) as backend, anyio.create_task_group() as tg:
            for i, code in enumerate(codes):

                async def one(i: int = i, code: str = code) -> None:
                    results[i] = await check(backend, code)

                tg.start_soon(one)
        return [r for r in results if r is not None]

    results = anyio.run(main)
    assert len(results) == 20
    for i, result in enumerate(results):
        expected = Verdict.PROVED if i % 3 != 0 else Verdict.REJECTED
        assert result.verdict == expected, (i, result)
        if expected == Verdict.REJECTED:
            assert result.messages[0].pos.line == 9


@pytest.mark.timeout(60)
def test_identity_names_the_lean_version_and_project(lean_exe: Path, project: Path) -> None:
    backend = backend_for(lean_exe, project)
    assert "4.35.0" in backend.identity
    assert str(project) in backend.identity
    assert str(lean_exe) in backend.identity
    assert backend.capacity == backend.workers


@pytest.mark.timeout(60)
def test_auto_backend_with_only_lean_available_checks_with_lean(
    lean_exe: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(lean_exe.parent))  # `lean` on PATH, no `repl` anywhere
    monkeypatch.setenv("HOME", str(project))
    monkeypatch.delenv("ELAN_HOME", raising=False)

    async def main() -> tuple[str, ProofResult]:
        async with create_backend(Settings(project=str(project), allow_prelude=True)) as backend:
            return backend.name, await backend.check(proofs.PROVED, ProofConfig())

    name, result = anyio.run(main)
    assert name == "lean"
    assert result.verdict == Verdict.PROVED


@pytest.mark.timeout(60)
def test_an_error_quoting_a_unicode_line_separator_is_kept_whole(lean_exe: Path, project: Path) -> None:
    name = "«a\u2028b\x85c»"
    code = proofs.BASICS + f"\ntheorem t : Eq N.zero N.zero := {name}\n"

    result = check_once(lean_exe, project, code)
    assert result.verdict == Verdict.REJECTED
    assert all(m.severity == Severity.ERROR for m in result.messages)
    assert name in result.messages[0].data
    assert (result.messages[0].pos.line, result.messages[0].pos.column) == (9, 32)
