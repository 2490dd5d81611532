"""The `lean` backend: one `lean --json --stdin` process per proof.

Slower per proof than the REPL pool (every proof pays Lean's start-up and its imports), but it
needs nothing besides a Lean toolchain. Inside a Lake project (a lakefile and `lake` found) Lean
runs as `lake env lean --json --stdin`, so the project's packages are on its search path.

Each process runs in its own process group: at the deadline, past the memory cap (a resident-
memory watchdog over the group), or when the calling task is cancelled, the whole group is
killed and reaped before `check` returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from ..errors import BackendUnavailableError, BusyError, ConfigurationError
from ..models import (
    LeanOutput,
    Message,
    Pos,
    ProofConfig,
    ProofResult,
    Severity,
    Sorry,
    Verdict,
    validate_proof_text,
)
from ..processes import (
    HAS_CHILDREN_FILES,
    install_signal_cleanup,
    kill_group,
    register_group,
    signal_name,
    tree_rss_mb,
    unregister_group,
)
from ..repl.header import split_header
from ..sandbox import NO_SANDBOX, Sandbox, for_settings
from ..settings import Settings
from ..toolchain import (
    INSTALL_HINT,
    existing_project,
    find_lake,
    find_lean,
    lean_version,
    project_fingerprint,
    under_lake_env,
)
from .base import Backend

__all__ = ["GOAL_NOT_REPORTED", "LeanCliBackend", "parse_lean_json"]

logger = logging.getLogger(__name__)

#: How often the memory watchdog samples the process group's resident memory.
MEMORY_POLL_SECONDS = 0.05
#: How much of Lean's stderr is kept for a crash report.
STDERR_TAIL_BYTES = 4096
#: Most of Lean's stdout kept for one proof; past it the process is killed (verdict error).
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
#: The `goal` of a sorry found by the lean backend: `lean --json` does not print goals.
GOAL_NOT_REPORTED = "(goal not reported: the lean backend sees only Lean's warning; the repl backend shows goals)"

_SEVERITIES = {
    "information": Severity.INFO,
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
}


def _pos(value: Any) -> Pos | None:
    if not isinstance(value, dict):
        return None
    return Pos(line=int(value.get("line", 1)), column=int(value.get("column", 0)))


def _parse_line(line: str) -> tuple[Message, bool] | None:
    """One line of `lean --json` output → (message, is a sorry warning); None for non-message lines."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or "severity" not in raw or "data" not in raw:
        return None
    severity = _SEVERITIES.get(str(raw["severity"]), Severity.INFO)
    message = Message(
        severity=severity,
        pos=_pos(raw.get("pos")) or Pos(line=1, column=0),
        end_pos=_pos(raw.get("endPos")),
        data=str(raw["data"]),
    )
    return message, raw.get("kind") == "hasSorry"


def parse_lean_json(stdout: str) -> LeanOutput:
    """Lean's `--json` output (one message per line) as our LeanOutput.

    Lines that are not Lean messages (e.g. what `#eval` prints) become info messages, so nothing
    Lean said is lost. A `hasSorry` message also yields a Sorry entry; Lean's CLI reports no goal,
    so its `goal` says so (GOAL_NOT_REPORTED).
    """
    output = LeanOutput()
    for line in stdout.split("\n"):  # not splitlines(): Lean leaves U+2028, U+0085, ... unescaped in JSON
        if not line.strip():
            continue
        parsed = _parse_line(line)
        if parsed is None:
            output.messages.append(Message(severity=Severity.INFO, pos=Pos(line=1, column=0), data=line))
            continue
        message, is_sorry = parsed
        output.messages.append(message)
        if is_sorry:
            output.sorries.append(Sorry(pos=message.pos, end_pos=message.end_pos, goal=GOAL_NOT_REPORTED))
    return output


class _Run:
    """The state of one Lean process: its output, and why (if at all) we killed it."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr_tail = b""
        self.killed_for: Verdict | None = None
        self.peak_mb = 0.0
        self.overflowed = False


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
        memory_mb: int = 8192,
        queue_timeout: float = 600.0,
        max_proof_bytes: int = 4 * 1024 * 1024,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        sandbox: Sandbox = NO_SANDBOX,
    ) -> None:
        self.command = command
        self.project = project
        self.version = version
        self.workers = workers
        self.memory_mb = memory_mb
        self.queue_timeout = queue_timeout
        self.max_proof_bytes = max_proof_bytes
        self.max_output_bytes = max_output_bytes
        self.sandbox = sandbox
        self._limiter = anyio.CapacityLimiter(workers)
        self._live: set[int] = set()
        self._counts = {"checked": 0, "timeouts": 0, "memory_kills": 0, "crashes": 0}

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
            memory_mb=settings.memory_mb,
            queue_timeout=settings.queue_timeout,
            max_proof_bytes=settings.max_proof_bytes,
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
        for pid in list(self._live):
            kill_group(pid)

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Run Lean on `code` under `config.timeout` and the stricter of the two memory caps."""
        validate_proof_text(code, self.max_proof_bytes)
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
        memory_mb = min(config.memory_limit_mb, self.memory_mb)
        run = _Run()
        started = time.monotonic()
        try:
            process = await anyio.open_process(
                self.sandbox.wrap(self.command, cwd=self.project), cwd=self.project, start_new_session=True
            )
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot start `{self.command[0]}`: {exc}.") from exc
        self._live.add(process.pid)
        register_group(process.pid)
        try:
            with anyio.move_on_after(config.timeout) as deadline:
                await self._drive(process, code.encode("utf-8", errors="surrogatepass"), run, memory_mb)
            if deadline.cancelled_caught and run.killed_for is None:
                run.killed_for = Verdict.TIMEOUT
        finally:
            with anyio.CancelScope(shield=True):
                kill_group(process.pid)
                await process.wait()
                self._live.discard(process.pid)
                unregister_group(process.pid)  # reaped: its pid may be reused from now on
                await process.aclose()
        elapsed = time.monotonic() - started
        self._counts["checked"] += 1
        result = self._result(run, self.sandbox.returncode(process.returncode), elapsed, config.timeout, memory_mb)
        if _import_error(result, split_header(code).line_offset):
            # an import that failed may work once the project is built: Lean's answer, but not cached
            result = result.model_copy(update={"reusable": False})
        return result

    async def _drive(self, process: Process, source: bytes, run: _Run, memory_mb: int) -> None:
        """Feed the proof, collect the output, and watch memory until Lean exits."""
        assert process.stdin and process.stdout and process.stderr

        async def feed() -> None:
            assert process.stdin
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.send(source)
            await process.stdin.aclose()

        def keep_output(chunk: bytes) -> None:
            run.stdout.extend(chunk)
            if len(run.stdout) > self.max_output_bytes and not run.overflowed:
                run.overflowed = True
                kill_group(process.pid)

        def keep_tail(chunk: bytes) -> None:
            run.stderr_tail = (run.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]

        async with anyio.create_task_group() as outputs:
            outputs.start_soon(feed)
            outputs.start_soon(_drain, process.stdout, keep_output)
            outputs.start_soon(_drain, process.stderr, keep_tail)
            async with anyio.create_task_group() as watch:
                watch.start_soon(self._watch_memory, process, run, memory_mb, outputs.cancel_scope)
                await process.wait()
                watch.cancel_scope.cancel()
            kill_group(process.pid)  # anything Lean left behind in its group would hold the pipes open

    async def _watch_memory(self, process: Process, run: _Run, memory_mb: int, scope: anyio.CancelScope) -> None:
        while True:
            if HAS_CHILDREN_FILES:  # a few /proc reads: cheaper inline than a thread hop
                rss = tree_rss_mb(process.pid)
            else:
                rss = await anyio.to_thread.run_sync(tree_rss_mb, process.pid)
            run.peak_mb = max(run.peak_mb, rss)
            if rss > memory_mb:
                run.killed_for = Verdict.MEMORY_LIMIT
                kill_group(process.pid)
                scope.cancel()
                return
            await anyio.sleep(MEMORY_POLL_SECONDS)

    def _result(self, run: _Run, returncode: int | None, elapsed: float, timeout: float, memory_mb: int) -> ProofResult:
        lean_time = round(elapsed, 4)
        if run.killed_for is Verdict.TIMEOUT:
            self._counts["timeouts"] += 1
            return ProofResult.failure(
                Verdict.TIMEOUT,
                f"Lean did not finish within the {timeout:g} s timeout; the process was killed.",
                lean_time=lean_time,
                error_type="timeout",
            )
        if run.killed_for is Verdict.MEMORY_LIMIT:
            self._counts["memory_kills"] += 1
            return ProofResult.failure(
                Verdict.MEMORY_LIMIT,
                f"Lean used more than the {memory_mb} MB memory limit (resident {math.ceil(run.peak_mb)} MB); "
                "the process was killed.",
                lean_time=lean_time,
                error_type="memory_limit",
            )
        if run.overflowed:
            return ProofResult.failure(
                Verdict.ERROR,
                f"Lean printed more than {self.max_output_bytes:,} bytes of output; the process was killed.",
                lean_time=lean_time,
                error_type="output_limit",
            )
        output = parse_lean_json(run.stdout.decode("utf-8", errors="replace"))
        died_by_signal = returncode is None or returncode < 0
        if died_by_signal or (returncode != 0 and not output.errors):
            self._counts["crashes"] += 1
            return ProofResult.failure(
                Verdict.ERROR,
                _crash_message(returncode, run.stderr_tail.decode("utf-8", errors="replace")),
                lean_time=lean_time,
                return_code=returncode,
                error_type="crash",
            )
        return ProofResult.from_output(output, lean_time=lean_time)


def _import_error(result: ProofResult, header_lines: int) -> bool:
    """True when Lean rejected the proof with an error inside its import header (its first `header_lines` lines)."""
    errors = result.result.errors if result.verdict == Verdict.REJECTED and result.result else []
    return any(1 <= m.pos.line <= header_lines for m in errors)


def _crash_message(returncode: int | None, stderr: str) -> str:
    if returncode is not None and returncode < 0:
        how = f"was killed by signal {signal_name(-returncode)}"
    else:
        how = f"exited with status {returncode} without reporting an error"
    tail = stderr.strip()
    return f"Lean {how}." + (f" Its stderr ended with:\n{tail}" if tail else "")


async def _drain(stream: ByteReceiveStream, sink: Callable[[bytes], None]) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        while True:
            sink(await stream.receive())
