"""The `lean` backend: one `lean --json --stdin` process per proof.

Slower per proof than the REPL pool (every proof pays Lean's start-up and its imports), but it
needs nothing besides a Lean toolchain. Inside a Lake project (a lakefile and `lake` found) Lean
runs as `lake env lean --json --stdin`, so the project's packages are on its search path.

Each process runs in its own process group: at the deadline, past the memory cap (a resident-
memory watchdog over the group), or when the calling task is cancelled, the whole group is
killed and reaped before `check` returns.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import anyio

from .._errors import BackendUnavailableError, BusyError, ConfigurationError
from .._lean.messages import parse_lean_json
from .._lean.source import split_header
from .._lean.supervise import (
    LeanProcess,
    ProcessFailure,
    ProcessMemoryExceeded,
    ProcessOutputExceeded,
    ProcessTimeout,
    exit_text,
    spawn,
)
from .._models import ProofConfig, ProofResult, Verdict
from .._processes import install_signal_cleanup
from .._sandbox import NO_SANDBOX, Sandbox, for_settings
from .._settings import DEFAULT_LIMITS, LeanLimits, Settings
from .._toolchain import (
    INSTALL_HINT,
    existing_project,
    find_lake,
    find_lean,
    lean_version,
    project_fingerprint,
    under_lake_env,
)
from .base import Backend

logger = logging.getLogger(__name__)


#: The counter each kind of kill adds to.
_COUNTS = {"timeout": "timeouts", "memory_limit": "memory_kills", "output_limit": "output_kills"}


class LeanCliBackend(Backend):
    """Checks each proof with a fresh `lean --json --stdin` (under `lake env` in a Lake project)."""

    name = "lean"

    def __init__(
        self,
        command: list[str],
        *,
        project: Path,
        version: str | None = None,
        workers: int = 1,
        limits: LeanLimits = DEFAULT_LIMITS,
        queue_timeout: float = 600.0,
        sandbox: Sandbox = NO_SANDBOX,
    ) -> None:
        self.command = command
        self.project = project
        self.version = version
        self.workers = workers
        self.limits = limits
        self.queue_timeout = queue_timeout
        self.sandbox = sandbox
        self._limiter = anyio.CapacityLimiter(workers)
        self._live: dict[int, LeanProcess] = {}
        self._counts = {"checked": 0, "timeouts": 0, "memory_kills": 0, "output_kills": 0, "crashes": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> LeanCliBackend:
        """Find `lean` (and `lake` in a Lake project) the way `toolchain` does; raise if none."""
        lean = find_lean(settings)
        if lean is None:
            raise ConfigurationError(f"--backend lean needs a `lean` executable and none was found. {INSTALL_HINT}")
        project = existing_project(settings)
        command = under_lake_env([str(lean), "--json", "--stdin"], find_lake(lean), project)
        return cls(
            command,
            project=project,
            version=lean_version(lean, project),
            workers=settings.workers,
            limits=settings.lean_limits,
            queue_timeout=settings.queue_timeout,
            sandbox=for_settings(settings),
        )

    @property
    def identity(self) -> str:
        return (
            f"lean:{' '.join(self.command)}|version={self.version}|project={self.project}"
            f"|files={project_fingerprint(self.project)}|sandbox={self.sandbox.name}"
        )

    @property
    def capacity(self) -> int:
        return self.workers

    def health(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "command": self.command,
            "lean_version": self.version,
            "project": str(self.project),
            "workers": self.workers,
            "sandboxed": self.sandbox.active,
            "running": len(self._live),
            "pids": sorted(self._live),
            **self._counts,
        }

    async def start(self) -> None:
        """Arm the SIGTERM/SIGHUP cleanup (Lean groups are killed at interpreter exit anyway)."""
        install_signal_cleanup()

    async def aclose(self) -> None:
        """Kill the process group of every check still running (each check then reaps its own)."""
        for lean in list(self._live.values()):
            lean.kill()

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Run Lean on `code` under `config.timeout` and the stricter of the two memory caps."""
        try:
            with anyio.fail_after(self.queue_timeout):
                await self._limiter.acquire()
        except TimeoutError:
            raise BusyError(f"All {self.workers} Lean workers stayed busy for {self.queue_timeout:g} s.") from None
        try:
            return await self._check_now(code, config)
        finally:
            self._limiter.release()

    async def _check_now(self, code: str, config: ProofConfig) -> ProofResult:
        memory_mb = min(config.memory_limit_mb, self.limits.memory_mb)
        started = time.monotonic()
        try:
            lean = await spawn(self.command, cwd=self.project, sandbox=self.sandbox)
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot start `{self.command[0]}`: {exc}.") from exc
        self._live[lean.pid] = lean
        lean.reset_output_budget(self.limits.max_output_bytes)
        source = code.encode("utf-8", errors="surrogatepass")
        try:
            stdout = await lean.supervised(lambda: _run(lean, source), seconds=config.timeout, memory_mb=memory_mb)
            failure: ProcessFailure | None = None
        except ProcessFailure as exc:
            stdout, failure = b"", exc
        finally:
            stderr_tail = lean.stderr_tail()
            with anyio.CancelScope(shield=True):
                await lean.aclose()
                self._live.pop(lean.pid, None)
        self._counts["checked"] += 1
        result = self._result(lean.returncode, stderr_tail, stdout, failure, round(time.monotonic() - started, 4))
        if _import_error(result, split_header(code).line_offset):
            # an import that failed may work once the project is built: Lean's answer, but not cached
            result = result.model_copy(update={"reusable": False})
        return result

    def _result(
        self, returncode: int | None, stderr_tail: str, stdout: bytes, failure: ProcessFailure | None, lean_time: float
    ) -> ProofResult:
        if isinstance(failure, ProcessTimeout | ProcessMemoryExceeded | ProcessOutputExceeded):
            self._counts[_COUNTS[failure.error_type]] += 1
            return ProofResult.failure(
                failure.verdict,
                f"{failure.describe('checking the proof', 'the process was killed')} {failure.advice}",
                lean_time=lean_time,
                error_type=failure.error_type,
            )
        output = parse_lean_json(stdout.decode("utf-8", errors="replace"))
        died_by_signal = returncode is None or returncode < 0
        if failure is not None or died_by_signal or (returncode != 0 and not output.errors):
            self._counts["crashes"] += 1
            return ProofResult.failure(
                Verdict.ERROR,
                _crash_message(returncode, stderr_tail),
                lean_time=lean_time,
                return_code=returncode,
                error_type="crash",
            )
        return ProofResult.from_output(output, lean_time=lean_time)


async def _run(lean: LeanProcess, source: bytes) -> bytes:
    """Feed the proof, collect stdout until Lean exits and its stdout ends."""
    stdout = bytearray()

    async def feed() -> None:
        try:
            await lean.stdin.send(source)
            await lean.stdin.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # Lean exited before reading it all: its exit status says why

    async def drain() -> None:
        while (chunk := await lean.receive()) is not None:
            stdout.extend(chunk)

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        group.start_soon(drain)
        await lean.wait()
        lean.kill()  # anything Lean left behind in its group would hold the pipes open
    if lean.overflowed:
        raise ProcessFailure("output budget spent")  # supervised turns it into ProcessOutputExceeded
    return bytes(stdout)


def _import_error(result: ProofResult, header_lines: int) -> bool:
    """True when Lean rejected the proof with an error inside its import header (its first `header_lines` lines)."""
    errors = result.result.errors if result.verdict == Verdict.REJECTED and result.result else []
    return any(1 <= m.pos.line <= header_lines for m in errors)


def _crash_message(returncode: int | None, stderr: str) -> str:
    how = exit_text(returncode) + ("" if returncode is None or returncode < 0 else " without reporting an error")
    tail = stderr.strip()
    return f"Lean {how}." + (f" Its stderr ended with:\n{tail}" if tail else "")
