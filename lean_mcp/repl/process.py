"""One Lean REPL subprocess: start it, send one request, read one response, kill it.

The REPL runs in a process group of its own (`lake env` runs the real REPL as a child), so a
kill always takes the whole group. A request has a deadline (the group is killed at it) and an
optional memory cap, enforced by polling the group's resident memory while Lean works and once
more when it answers. stderr goes to an unlinked temporary file that is trimmed to its tail
after each request and at each memory poll, so the REPL never blocks on a full stderr pipe and
a crash report can quote the end of what it wrote. Every live group is also killed at interpreter exit, and on SIGTERM /
SIGHUP when the program left those at their default.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from ..errors import BackendUnavailableError
from .protocol import ResponseReader, encode_request

__all__ = [
    "ReplCrashed",
    "ReplFailure",
    "ReplMemoryExceeded",
    "ReplProcess",
    "ReplTimeout",
    "group_rss_mb",
    "install_signal_cleanup",
    "kill_all_groups",
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

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


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
            f"was killed by signal {_signal_name(-returncode)}"
            if returncode is not None and returncode < 0
            else f"exited with status {returncode}"
        )
        super().__init__(f"the REPL {how}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# ---------------------------------------------------------------------------------------------
# Process groups alive in this interpreter, killed on exit whatever happens to the event loop.

_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.RLock()  # re-entrant: the SIGTERM handler may run while the main thread holds it


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_all_groups() -> None:
    """SIGKILL every REPL process group this interpreter started and has not reaped yet."""
    with _LIVE_LOCK:
        groups = list(_LIVE_GROUPS)
    for pgid in groups:
        _kill_group(pgid)


atexit.register(kill_all_groups)

_SIGNALS_ARMED: set[int] = set()


def _cleanup_and_redeliver(signum: int, frame: FrameType | None) -> None:
    kill_all_groups()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_cleanup() -> None:
    """Kill REPL groups on SIGTERM/SIGHUP before dying, where those signals still have default handling.

    Only from the main thread, and never over a handler the program installed itself.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in _SIGNALS_ARMED and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _cleanup_and_redeliver)
            _SIGNALS_ARMED.add(signum)


# ---------------------------------------------------------------------------------------------
# Memory of a process tree.


def _children(pid: int) -> list[int] | None:
    """Direct children of `pid` (None when the kernel does not expose them)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                children.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            if tid == str(pid) and os.path.exists(f"/proc/{pid}"):
                return None
        except OSError:
            continue
    return children


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        children = _children(current)
        if children is None:
            return _group_members(pid)
        todo.extend(children)
    return pids


def group_rss_mb(pid: int) -> float:
    """Resident memory, in MB, of `pid` and all its descendants (the REPL under `lake env`)."""
    pages = 0
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/statm", "rb") as f:
                pages += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return pages * _PAGE_MB


# ---------------------------------------------------------------------------------------------


def _stderr_file() -> IO[bytes]:
    file = tempfile.TemporaryFile(prefix="lean-mcp-repl-stderr-")  # noqa: SIM115 - lives as long as the REPL
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


class ReplProcess:
    """One running REPL. `request` is not re-entrant: one request at a time per process."""

    def __init__(self, process: Process, stderr: IO[bytes], command: Sequence[str]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin: ByteSendStream = process.stdin
        self._stdout: ByteReceiveStream = process.stdout
        self._stderr = stderr
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
        cls, command: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None
    ) -> ReplProcess:
        """Start the REPL in a new process group. Raises BackendUnavailableError if it cannot start."""
        stderr = _stderr_file()
        try:
            process = await anyio.open_process(
                list(command),
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
        with _LIVE_LOCK:
            _LIVE_GROUPS.add(process.pid)
        return cls(process, stderr, command)

    @property
    def alive(self) -> bool:
        """True until the process was killed or was seen to exit."""
        return not self._dead and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def rss_mb(self) -> float:
        """Resident memory of the REPL's process tree, in MB (0 once it is dead)."""
        return group_rss_mb(self.pid) if self.alive else 0.0

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
        raise ReplCrashed(self._process.returncode, self.stderr_tail(), reason)

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
            _kill_group(self.pid)

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
            with _LIVE_LOCK:
                _LIVE_GROUPS.discard(self.pid)
            self._stderr.close()
