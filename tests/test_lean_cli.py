"""The lean backend's handling of what a `lean` process can do besides answer: crash, die by signal,
print non-JSON lines, run under `lake env`. Fake `lean` executables (shell scripts) stand in here;
the real Lean is exercised in tests/real_lean/."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import anyio
import pytest

from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._errors import BackendUnavailableError, BusyError, ConfigurationError
from lean_mcp._lean.messages import parse_lean_json
from lean_mcp._models import JobStatus, ProofConfig, ProofResult, Severity, Verdict
from lean_mcp._settings import Settings

VERSION = 'if [ "$1" = --version ]; then echo "Lean (version 4.15.0, test)"; exit 0; fi\ncat > /dev/null\n'
MESSAGE = '{"severity":"%s","pos":{"line":2,"column":4},"endPos":null,"data":"%s","kind":"%s","fileName":"<stdin>"}'


def fake_lean(directory: Path, body: str) -> Path:
    path = directory / "lean"
    path.write_text("#!/bin/sh\n" + VERSION + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_check(lean: Path, project: Path, code: str = "theorem t : True := trivial", **settings: object) -> ProofResult:
    async def main() -> ProofResult:
        backend = LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(project), **settings))
        async with backend:
            return await backend.check(code, ProofConfig(timeout=30))

    return anyio.run(main)


@pytest.mark.timeout(30)
def test_crash_without_error_messages_is_verdict_error_with_the_stderr_tail(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, 'echo "INTERNAL PANIC: out of cheese" >&2\nexit 134\n')
    # unsandboxed: under bwrap an exit status of 134 reads as death by SIGABRT (bwrap exits 128+N)
    result = run_check(lean, tmp_path, sandbox="none")
    assert result.verdict == Verdict.ERROR
    assert result.status == JobStatus.ERROR
    assert result.result is not None and result.result.return_code == 134
    assert "status 134" in (result.error_message or "")
    assert "INTERNAL PANIC: out of cheese" in (result.error_message or "")


@pytest.mark.timeout(30)
def test_death_by_signal_is_verdict_error_naming_the_signal(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "kill -SEGV $$\n")
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.ERROR
    assert "SIGSEGV" in (result.error_message or "")


@pytest.mark.timeout(30)
def test_sorry_with_exit_zero_is_never_proved(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "echo '" + MESSAGE % ("warning", "declaration uses `sorry`", "hasSorry") + "'\n")
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.SORRY
    assert result.success is False
    assert len(result.sorries) == 1


@pytest.mark.timeout(30)
def test_has_sorry_kind_alone_is_enough_for_verdict_sorry(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "echo '" + MESSAGE % ("warning", "uses a placeholder", "hasSorry") + "'\n")
    assert run_check(lean, tmp_path).verdict == Verdict.SORRY


@pytest.mark.timeout(30)
def test_error_messages_with_nonzero_exit_are_a_rejection_not_a_crash(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "echo '" + MESSAGE % ("error", "unknown identifier", "[anonymous]") + "'\nexit 1\n")
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.REJECTED
    assert result.status == JobStatus.FINISHED
    assert (result.messages[0].pos.line, result.messages[0].pos.column) == (2, 4)


@pytest.mark.timeout(30)
def test_lean_runs_in_the_project_under_lake_env_when_there_is_a_lakefile(tmp_path: Path) -> None:
    (tmp_path / "lakefile.toml").write_text('name = "p"\n')
    lean = fake_lean(tmp_path, 'echo "lake=$UNDER_LAKE cwd=$(pwd)"\n')
    lake = tmp_path / "lake"
    lake.write_text('#!/bin/sh\nif [ "$1" = env ]; then shift; UNDER_LAKE=yes exec "$@"; fi\nexit 1\n')
    lake.chmod(lake.stat().st_mode | stat.S_IXUSR)
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.PROVED
    assert [m.data for m in result.messages] == [f"lake=yes cwd={tmp_path.resolve()}"]
    assert [m.severity for m in result.messages] == [Severity.INFO]


@pytest.mark.timeout(30)
def test_workers_busy_past_the_queue_timeout_is_a_busy_error(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "sleep 5\n")

    async def main() -> None:
        settings = Settings(lean=str(lean), project=str(tmp_path), workers=1, queue_timeout=0.5)
        async with LeanCliBackend.from_settings(settings) as backend, anyio.create_task_group() as tg:
            tg.start_soon(backend.check, "a", ProofConfig(timeout=30))
            await anyio.sleep(0.1)
            with pytest.raises(BusyError):
                await backend.check("b", ProofConfig(timeout=30))
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_missing_lean_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ELAN_HOME", raising=False)
    with pytest.raises(ConfigurationError, match="elan"):
        LeanCliBackend.from_settings(Settings(project=str(tmp_path)))


def test_parse_lean_json_maps_severities_and_keeps_other_lines() -> None:
    out = parse_lean_json(
        "\n".join(
            [
                MESSAGE % ("information", "N.zero : N", "[anonymous]"),
                "plain output from #eval",
                MESSAGE % ("error", "bad", "[anonymous]"),
            ]
        )
    )
    assert [m.severity for m in out.messages] == [Severity.INFO, Severity.INFO, Severity.ERROR]
    assert out.messages[1].data == "plain output from #eval"
    assert out.messages[0].end_pos is None


@pytest.mark.timeout(30)
def test_runaway_output_is_cut_off_with_verdict_error(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "yes 'output line'\n")

    async def main() -> ProofResult:
        settings = Settings(lean=str(lean), project=str(tmp_path), max_output_bytes=100_000)
        backend = LeanCliBackend.from_settings(settings)
        async with backend:
            return await backend.check("x", ProofConfig(timeout=20))

    result = anyio.run(main)
    assert result.verdict == Verdict.ERROR
    assert "printed more than 100,000 bytes" in (result.error_message or "")


@pytest.mark.timeout(30)
def test_closing_the_backend_kills_checks_still_running(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "sleep 60\n")

    async def main() -> tuple[ProofResult, int]:
        backend = LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(tmp_path)))
        results: list[ProofResult] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                results.append(await backend.check("x", ProofConfig(timeout=50)))

            tg.start_soon(run)
            while not backend.health()["pids"]:  # noqa: ASYNC110 - polling the backend's own state
                await anyio.sleep(0.01)
            await backend.aclose()
        return results[0], backend.health()["running"]

    result, running = anyio.run(main)
    assert result.verdict == Verdict.ERROR
    assert "SIGKILL" in (result.error_message or "")
    assert running == 0


def test_a_lean_that_disappeared_is_backend_unavailable(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "exit 0\n")

    async def main() -> None:
        backend = LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(tmp_path)))
        lean.unlink()
        with pytest.raises(BackendUnavailableError, match="Cannot start"):
            await backend.check("x", ProofConfig())

    anyio.run(main)


@pytest.mark.timeout(30)
def test_death_by_signal_after_an_error_message_is_still_a_crash(tmp_path: Path) -> None:
    lean = fake_lean(tmp_path, "echo '" + MESSAGE % ("error", "half done", "[anonymous]") + "'\nkill -ABRT $$\n")
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.ERROR
    assert "SIGABRT" in (result.error_message or "")


@pytest.mark.timeout(30)
def test_memory_of_lean_child_processes_counts_toward_the_limit(tmp_path: Path) -> None:
    # Like `lake env lean`: the process we start is a wrapper; the memory is in its child. (Unsandboxed:
    # the wrapper runs a Python its command does not name; tests/test_sandbox_e2e.py covers the sandboxed case.)
    hog = f"{sys.executable} -c 'b = bytearray(300 * 2**20); import time; time.sleep(30)'"
    lean = fake_lean(tmp_path, f"{hog}\n")

    async def main() -> ProofResult:
        settings = Settings(lean=str(lean), project=str(tmp_path), memory_mb=150, sandbox="none")
        backend = LeanCliBackend.from_settings(settings)
        async with backend:
            return await backend.check("x", ProofConfig(timeout=25))

    result = anyio.run(main)
    assert result.verdict == Verdict.MEMORY_LIMIT
    assert "150 MB" in (result.error_message or "")


@pytest.mark.timeout(30)
def test_a_message_holding_a_unicode_line_separator_stays_one_message(tmp_path: Path) -> None:
    # Lean's JSON leaves U+2028 and U+0085 unescaped; they are not line ends of its output.
    data = "unknown identifier «a\u2028b\x85c»"
    lean = fake_lean(tmp_path, "printf '%s\\n' '" + MESSAGE % ("error", data, "[anonymous]") + "'\nexit 1\n")
    result = run_check(lean, tmp_path)
    assert result.verdict == Verdict.REJECTED
    assert [(m.severity, m.data) for m in result.messages] == [(Severity.ERROR, data)]


def test_an_import_error_is_not_cached_but_a_proof_error_is(tmp_path: Path) -> None:
    """An error in the import lines (e.g. a module not built yet) may go away without the text changing."""
    from lean_mcp._jobs.service import ProofService
    from lean_mcp._jobs.store import JobStore

    import_error = MESSAGE.replace('"line":2', '"line":1') % ("error", "object file of module Foo does not exist", "x")
    lean = fake_lean(tmp_path, "echo '" + import_error + "'\nexit 1\n")

    async def main() -> list[ProofResult]:
        backend = LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(tmp_path)))
        async with backend, ProofService(backend, JobStore(str(tmp_path / "jobs.db"))) as service:
            imported = [await service.verify("import Foo\ntheorem t : True := trivial\n") for _ in range(2)]
            no_header = [await service.verify("theorem t : True := trivial\n") for _ in range(2)]
        return imported + no_header

    first, second, plain_first, plain_second = anyio.run(main)
    assert first.verdict == second.verdict == plain_first.verdict == Verdict.REJECTED
    assert second.cached is False
    assert plain_second.cached is True  # line 1 is the proof itself there: Lean's answer to the text
