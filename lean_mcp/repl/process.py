"""One Lean REPL subprocess: start it, send one request, read one response, kill it.

The REPL runs in a process group of its own (`lake env` runs the real REPL as a child), so a
kill always takes the whole group. A request has a deadline (the group is killed at it) and an
optional memory cap, enforced by polling the group's resident memory while Lean works and once
more when it answers. stderr goes to an unlinked temporary file that is trimmed to its tail
after each request and at each memory poll, so the REPL never blocks on a full stderr pipe and
a crash report can quote the end of what it wrote. Every live group is registered with
`lean_mcp.processes`, which kills it at interpreter exit (and on SIGTERM / SIGHUP once armed).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from ..errors import BackendUnavailableError
from ..processes import kill_group, register_group, signal_name, tree_rss_mb, unregister_group
from ..sandbox import NO_SANDBOX, Sandbox
from .protocol import ResponseReader, encode_request

__all__ = [
    "ReplCrashed",
    "ReplFailure",
    "ReplMemoryExceeded",
    "ReplProcess",
    "ReplTimeout",
]

logger = logging.getLogger(__name__)

#: How often the memory cap is checked while a request runs.
MEMORY_POLL_SECONDS = 0.05
#: How much of the REPL's stderr a crash report quotes.
STDERR_TAIL_BYTES = 4096
#: Past this size the stderr file is cut back to its last `STDERR_KEEP_BYTES`.
STDERR_TRIM_BYTES = 1024 * 1024
STDERR_KEEP_BYTES = 64 * 1024
#: Largest response accepted; past it the REPL is treated as broken.
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
#: How long a REPL that closed its stdout may take to exit before it is killed.
EXIT_GRACE_SECONDS = 2.0


class ReplFailure(Exception):
    """A request got no answer from the REPL; the process is dead (killed or crashed)."""


class ReplTimeout(ReplFailure):
    """The REPL did not answer within the request's deadline; its group was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


class ReplMemoryExceeded(ReplFailure):
    """The REPL's resident memory passed the request's cap; its group was killed."""

    def __init__(self, limit_mb: float, rss_mb: float) -> None:
        super().__init__(f"resident memory {rss_mb:.0f} MB passed the {limit_mb:g} MB limit")
        self.limit_mb = limit_mb
        self.rss_mb = rss_mb


class ReplCrashed(ReplFailure):
    """The REPL exited (or closed its stdout) without answering."""

    def __init__(self, returncode: int | None, stderr_tail: str, reason: str = "") -> None:
        how = reason or (
            f"was killed by signal {signal_name(-returncode)}"
            if returncode is not None and returncode < 0
            else f"exited with status {returncode}"
        )
        super().__init__(f"the REPL {how}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def _stderr_file() -> IO[bytes]:
    file = tempfile.TemporaryFile(prefix="lean-mcp-repl-stderr-")  # noqa: SIM115 - lives as long as the REPL
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


class ReplProcess:
    """One running REPL. `request` is not re-entrant: one request at a time per process."""

    def __init__(
        self, process: Process, stderr: IO[bytes], command: Sequence[str], sandbox: Sandbox = NO_SANDBOX
    ) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin: ByteSendStream = process.stdin
        self._stdout: ByteReceiveStream = process.stdout
        self._stderr = stderr
        self._sandbox = sandbox
        self._reader = ResponseReader()
        self._dead = False
        self._reaped = False
        self.command = list(command)
        self.pid = process.pid
        self.requests = 0
        #: Resident memory of the process tree, in MB, when it last answered or was polled.
        self.last_rss_mb = 0.0
        self._closed = False

    @classmethod
    async def start(
        cls,
        command: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        sandbox: Sandbox = NO_SANDBOX,
    ) -> ReplProcess:
        """Start the REPL in a new process group, inside `sandbox`. Raises BackendUnavailableError if it cannot."""
        stderr = _stderr_file()
        try:
            process = await anyio.open_process(
                sandbox.wrap(command, cwd=cwd, env=env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            stderr.close()
            raise BackendUnavailableError(
                f"Cannot start the REPL `{' '.join(command)}`: {exc}.",
                hint="Check --repl / LEAN_MCP_REPL and --project; `lean-mcp doctor` shows what was found.",
            ) from exc
        register_group(process.pid)
        return cls(process, stderr, command, sandbox)

    @property
    def alive(self) -> bool:
        """True until the process was killed or was seen to exit."""
        return not self._dead and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._sandbox.returncode(self._process.returncode)

    def rss_mb(self) -> float:
        """Resident memory of the REPL's process tree, in MB (0 once it is dead)."""
        return tree_rss_mb(self.pid) if self.alive else 0.0

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The last `limit` bytes the REPL wrote to stderr, decoded."""
        with contextlib.suppress(OSError, ValueError):
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            return os.pread(fd, limit, max(0, size - limit)).decode("utf-8", errors="replace")
        return ""

    async def request(
        self, request: dict[str, Any], *, seconds: float, memory_mb: float | None = None
    ) -> dict[str, Any]:
        """Send `request` and return the REPL's response object, within `seconds`.

        Raises ReplTimeout / ReplMemoryExceeded (the group is killed first) or ReplCrashed. If
        the calling task is cancelled the group is killed too (the REPL would be out of step).
        """
        if not self.alive:
            raise ReplCrashed(self.returncode, self.stderr_tail(), "is not running")
        self.requests += 1
        try:
            with anyio.move_on_after(seconds) as deadline:
                await self._send(encode_request(request))
                response = await self._receive(memory_mb)
            if deadline.cancelled_caught:
                self.kill()
                raise ReplTimeout(seconds)
        except BaseException:
            self.kill()
            raise
        self.last_rss_mb = self.rss_mb()
        if memory_mb is not None and self.last_rss_mb > memory_mb:
            self.kill()
            raise ReplMemoryExceeded(memory_mb, self.last_rss_mb)
        self._trim_stderr()
        return response

    async def _send(self, data: bytes) -> None:
        try:
            await self._stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self._crashed()

    async def _receive(self, memory_mb: float | None) -> dict[str, Any]:
        while True:
            response = self._reader.next_response()
            if response is not None:
                return response
            if len(self._reader) > MAX_RESPONSE_BYTES:
                await self._crashed(f"wrote more than {MAX_RESPONSE_BYTES:,} bytes without finishing a response")
            chunk: bytes | None = b""
            with anyio.move_on_after(MEMORY_POLL_SECONDS if memory_mb is not None else float("inf")):
                try:
                    chunk = await self._stdout.receive(1 << 16)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    chunk = None
            if chunk is None:
                await self._crashed()
            elif chunk:
                self._reader.feed(chunk)
            elif memory_mb is not None:
                self._check_memory(memory_mb)
                self._trim_stderr()

    def _check_memory(self, memory_mb: float) -> None:
        rss = self.last_rss_mb = self.rss_mb()
        if rss > memory_mb:
            self.kill()
            raise ReplMemoryExceeded(memory_mb, rss)

    async def _crashed(self, reason: str = "") -> Any:
        """The REPL stopped answering: wait briefly for its exit status, kill its group, raise."""
        with anyio.move_on_after(EXIT_GRACE_SECONDS):
            await self._process.wait()
        self.kill()
        raise ReplCrashed(self.returncode, self.stderr_tail(), reason)

    def _trim_stderr(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            if size > STDERR_TRIM_BYTES:
                keep = os.pread(fd, STDERR_KEEP_BYTES, size - STDERR_KEEP_BYTES)
                os.ftruncate(fd, 0)
                os.write(fd, keep)

    def kill(self) -> None:
        """SIGKILL the REPL's whole process group now (reap it later with `aclose`)."""
        self._dead = True
        if not self._reaped:
            kill_group(self.pid)

    async def aclose(self) -> None:
        """Kill the group, reap the process, release its pipes and stderr file. Idempotent."""
        self.kill()
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await self._process.aclose()
            self._reaped = True
            unregister_group(self.pid)
            self._stderr.close()
