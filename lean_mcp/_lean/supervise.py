"""One supervised Lean process: the only place a Lean child (a REPL, `lean`, `lake env ...`) starts.

`spawn` builds every child's argv and environment (`child_argv`, `child_environment`), starts it
as the leader of a process group of its own, and registers the group with `lean_mcp._processes`,
whose exit handlers and guardian kill it when this server exits, even on kill -9. A
`LeanProcess` then gives the callers one set of rules:

* a deadline, a memory watchdog over the whole process tree and a stdout budget, all enforced
  by `supervised(...)`, which kills the group when any of them trips (or the caller is cancelled);
* stderr goes to an unlinked temporary file trimmed to its tail, so Lean never blocks on a full
  stderr pipe and a crash report can quote its end (`stderr_tail`, `exit_text`).

The environment is an allow-list (`child_environment`): what Lean, Lake and elan read, and the
locale. Nothing else passes, so `LEAN_MCP_*` settings, API keys and tokens never reach a proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from .._models import Verdict
from .._processes import (
    HAS_CHILDREN_FILES,
    TreeMemory,
    kill_group,
    register_group,
    signal_name,
    spawning,
    tree_rss_mb,
    unregister_group,
)
from .._sandbox import NO_SANDBOX, Sandbox

T = TypeVar("T")

#: What woke a `LeanProcess.watch` other than its output.
_DEADLINE = "deadline"
_MEMORY = "memory"

#: True where a memory sample is a few /proc reads, cheap enough to take inline (`settle_memory_now`).
SAMPLES_INLINE = HAS_CHILDREN_FILES
#: How often the memory watchdog samples the process tree's resident memory.
MEMORY_POLL_SECONDS = 0.05
#: How much of the stderr file a crash report quotes.
STDERR_TAIL_BYTES = 4096
#: Past this size the stderr file is cut back to its last `STDERR_KEEP_BYTES`.
STDERR_TRIM_BYTES = 1024 * 1024
STDERR_KEEP_BYTES = 64 * 1024
#: Bytes read from stdout at a time.
READ_CHUNK = 1 << 16

#: Variables a Lean child inherits by exact name.
ENV_ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TMP",
        "TEMP",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "XDG_CACHE_HOME",
    }
)
#: Variables a Lean child inherits by prefix (Lean's, Lake's, elan's, the locale), except `LEAN_MCP_*`.
ENV_ALLOWED_PREFIXES = ("LEAN_", "LAKE_", "ELAN_", "LC_")
_ENV_REFUSED_PREFIX = "LEAN_MCP_"


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Lean child: the allowed part of ours, then `extra` (filtered the same way)."""
    merged = {**os.environ, **(extra or {})}
    return {name: value for name, value in merged.items() if _env_allowed(name)}


def _env_allowed(name: str) -> bool:
    if name.startswith(_ENV_REFUSED_PREFIX):
        return False
    return name in ENV_ALLOWED or name.startswith(ENV_ALLOWED_PREFIXES)


def child_argv(
    command: Sequence[str], *, cwd: str | Path | None, env: Mapping[str, str], sandbox: Sandbox = NO_SANDBOX
) -> list[str]:
    """The argv a Lean child is started with: `command`, inside `sandbox` when it is active."""
    return sandbox.wrap(command, cwd=cwd, env=env)


class ProcessFailure(Exception):
    """A Lean process was stopped (or stopped by itself) before it gave its answer.

    `describe` words it for a user, the same way for every caller (the `lean` backend, the REPL
    pool, tactic mode), each adding what Lean was doing and what became of the process.
    """

    #: The result's verdict and `error_type` for this failure, and what to do about it (for a proof).
    verdict = Verdict.ERROR
    error_type = "error"
    advice = ""

    def describe(self, doing: str, aftermath: str) -> str:
        """One sentence: what went wrong while Lean was `doing` it, then `aftermath` (what became of it)."""
        return f"Lean stopped while {doing} ({self}); {aftermath}."


class ProcessTimeout(ProcessFailure):
    """It did not finish within its deadline; its group was killed."""

    verdict = Verdict.TIMEOUT
    error_type = "timeout"
    advice = "Simplify the proof, or raise the request's `timeout` (server default: --timeout)."

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds

    def describe(self, doing: str, aftermath: str) -> str:
        return f"Lean did not finish {doing} within the {self.seconds:g} s timeout; {aftermath}."


class ProcessStillRunning(ProcessFailure):
    """The caller stopped waiting before the process's own deadline; the process was left running."""

    verdict = Verdict.TIMEOUT
    error_type = "timeout"

    def __init__(self, waited: float) -> None:
        super().__init__(f"still working after {waited:g} s")
        self.waited = waited


class ProcessMemoryExceeded(ProcessFailure):
    """Its process tree's resident memory passed the cap; its group was killed."""

    verdict = Verdict.MEMORY_LIMIT
    error_type = "memory_limit"
    advice = "Simplify the proof, or raise `memory_limit_mb` / --memory-mb."

    def __init__(self, limit_mb: float, rss_mb: float) -> None:
        super().__init__(f"resident memory {rss_mb:.0f} MB passed the {limit_mb:g} MB limit")
        self.limit_mb = limit_mb
        self.rss_mb = rss_mb

    def describe(self, doing: str, aftermath: str) -> str:
        return (
            f"Lean went past the {self.limit_mb:g} MB memory limit while {doing} (resident "
            f"{math.ceil(self.rss_mb)} MB); {aftermath}."
        )


class ProcessOutputExceeded(ProcessFailure):
    """It wrote more than its stdout budget for one request; its group was killed."""

    error_type = "output_limit"
    advice = "Print less (e.g. fewer #eval / trace messages), or raise --max-output-bytes."

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"it wrote more than {limit_bytes:,} bytes of output for one request")
        self.limit_bytes = limit_bytes

    def describe(self, doing: str, aftermath: str) -> str:
        return f"Lean printed more than {self.limit_bytes:,} bytes while {doing}; {aftermath}."


def exit_text(returncode: int | None) -> str:
    """How a process ended, as words: `was killed by signal SIGKILL`, `exited with status 1`."""
    if returncode is not None and returncode < 0:
        return f"was killed by signal {signal_name(-returncode)}"
    return f"exited with status {returncode}"


def _stderr_file() -> IO[bytes]:
    file = tempfile.TemporaryFile(prefix="lean-mcp-stderr-")  # noqa: SIM115 - lives as long as the process
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


async def spawn(
    command: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox = NO_SANDBOX,
    raw_pipes: bool = False,
) -> LeanProcess:
    """Start `command` in a new process group with pipes for stdin/stdout. Raises OSError if it cannot start.

    `env` adds to (never replaces) the allow-listed environment. With `raw_pipes` the pipes are
    plain non-blocking file descriptors driven by `write` and `listen` (one syscall a request, no
    stream objects); otherwise they are anyio streams (`stdin`, `receive`).
    """
    environment = child_environment(env)
    argv = child_argv(command, cwd=cwd, env=environment, sandbox=sandbox)
    stderr = _stderr_file()
    ours: list[int] = []
    theirs: list[int] = []
    with spawning():  # a SIGTERM meanwhile waits for register_group, so the group is killed too
        try:
            if raw_pipes:
                stdin_read, stdin_write = os.pipe()
                stdout_read, stdout_write = os.pipe()
                ours, theirs = [stdin_write, stdout_read], [stdin_read, stdout_write]
                for fd in ours:
                    os.set_blocking(fd, False)
            process = await anyio.open_process(
                argv,
                stdin=theirs[0] if raw_pipes else subprocess.PIPE,
                stdout=theirs[1] if raw_pipes else subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env=environment,
                start_new_session=True,
            )
        except BaseException:
            stderr.close()
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        register_group(process.pid)
    return LeanProcess(process, stderr, sandbox, raw_fds=(ours[0], ours[1]) if raw_pipes else None)


def _returncode_getter(process: Process) -> Callable[[], int | None]:
    """A function giving `process.returncode` as it is now: the asyncio transport's own getter, which
    anyio's and asyncio's `returncode` properties call in the end (a chain of three calls; `alive` is
    asked a few times per proof), or, for any other kind of process, the property itself."""
    transport = getattr(getattr(process, "_process", None), "_transport", None)
    getter = getattr(transport, "get_returncode", None)
    return getter if callable(getter) else lambda: process.returncode


class LeanProcess:
    """A running Lean process group: its pipes, stderr tail, memory, and the one way to supervise it."""

    def __init__(
        self,
        process: Process,
        stderr: IO[bytes],
        sandbox: Sandbox = NO_SANDBOX,
        *,
        raw_fds: tuple[int, int] | None = None,
    ) -> None:
        self._process = process
        self._returncode_now = _returncode_getter(process)
        self._stdin: ByteSendStream | None = process.stdin
        self._stdout: ByteReceiveStream | None = process.stdout
        #: With raw pipes: our ends of the child's stdin and stdout (non-blocking).
        self._stdin_fd, self._stdout_fd = raw_fds if raw_fds is not None else (-1, -1)
        self._fds = list(raw_fds or ())
        #: True when stdin/stdout are plain descriptors (`write`, `listen`), not streams.
        self.raw_pipes = raw_fds is not None
        self._listening = False
        self._on_output: Callable[[bytes | None], None] | None = None
        self.loop = asyncio.get_running_loop()
        self._stderr = stderr
        self._sandbox = sandbox
        self.pid = process.pid
        self._killed = False
        self._closed = False
        #: stdout bytes counted against the budget since `reset_output_budget`.
        self.output_bytes = 0
        self.output_limit: int | None = None
        self.overflowed = False
        #: Resident memory of the tree, in MB, at the last sample; and the largest seen.
        self.last_rss_mb = 0.0
        self.peak_mb = 0.0
        self._memory = TreeMemory(self.pid, monitor=sandbox.active)  # the leader is bwrap's monitor
        #: The one timer of this process's watchdogs (`_Watchdog`), kept armed between two waits so
        #: a wait that starts soon after another one reuses it; when it fires, and for whom.
        self._clock: asyncio.TimerHandle | None = None
        self._clock_at = math.inf
        self._watchdog: _Watchdog | None = None

    @property
    def stdin(self) -> ByteSendStream:
        """The stdin stream (not with raw pipes: those are written with `write`)."""
        assert self._stdin is not None, "a raw-pipe process is written with `write`"
        return self._stdin

    @property
    def alive(self) -> bool:
        """True until the group was killed or the leader was seen to exit."""
        return not self._killed and self._returncode_now() is None

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal, also when it died inside the sandbox)."""
        return self._sandbox.returncode(self._process.returncode)

    async def wait(self) -> int:
        return await self._process.wait()

    # -- output ------------------------------------------------------------------------------

    def reset_output_budget(self, limit: int | None) -> None:
        """Count stdout from zero against `limit` bytes (None: unbounded)."""
        self.output_bytes, self.output_limit = 0, limit

    async def receive(self) -> bytes | None:
        """The next chunk of stdout; None at end of stream, or once the budget is spent (group killed)."""
        assert self._stdout is not None, "a raw-pipe process is read with `listen`"
        try:
            chunk = await self._stdout.receive(READ_CHUNK)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None
        return chunk if self._count_output(chunk) else None

    def _count_output(self, chunk: bytes) -> bool:
        """Count `chunk` against the budget; False (and the group killed) once it is spent."""
        self.output_bytes += len(chunk)
        if self.output_limit is not None and self.output_bytes > self.output_limit:
            self.overflowed = True
            self.kill()
            return False
        return True

    # -- raw pipes ---------------------------------------------------------------------------

    def listen(self, on_output: Callable[[bytes | None], None]) -> None:
        """Call `on_output(chunk)` from the event loop for each chunk of stdout as it arrives, then
        `on_output(None)` once: at end of stream, when the budget is spent (group killed), or at `aclose`."""
        if not self.raw_pipes:
            raise ValueError("only a process spawned with raw_pipes=True is read with `listen`")
        self._on_output = on_output
        self._listening = True
        self.loop.add_reader(self._stdout_fd, self._readable)

    def pause(self) -> None:
        """Stop reading stdout (what the process writes stays in the pipe, and then it blocks)."""
        if self._listening:
            self._listening = False
            self.loop.remove_reader(self._stdout_fd)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._stdout_fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk and self._count_output(chunk) and self._on_output is not None:
            self._on_output(chunk)
            return
        self._end_output()

    def _end_output(self) -> None:
        """Stop reading for good, and tell the listener (once) that stdout ended."""
        self.pause()
        on_output, self._on_output = self._on_output, None
        if on_output is not None:
            on_output(None)

    def write_now(self, data: bytes) -> bool:
        """Write all of `data` to stdin in one syscall, or nothing: False when the pipe has no room
        (an atomic write, so `data` must be at most `select.PIPE_BUF` bytes) or the process closed it."""
        if len(data) > select.PIPE_BUF:
            raise ValueError("only a write of at most PIPE_BUF bytes is all or nothing")
        try:
            return os.write(self._stdin_fd, data) == len(data)
        except OSError:  # BlockingIOError: no room; BrokenPipeError: `write` will report it
            return False

    async def write(self, data: bytes, *, seconds: float) -> None:
        """Write `data` to stdin: one syscall when the pipe has room, else wait for it at most `seconds`.

        Raises OSError (BrokenPipeError: the process closed its stdin), ProcessTimeout (the group killed).
        """
        view = memoryview(data)
        written = os.write(self._stdin_fd, view)
        if written == len(view):
            return
        with anyio.move_on_after(seconds):
            while written < len(view):
                await anyio.wait_writable(self._stdin_fd)
                try:
                    written += os.write(self._stdin_fd, view[written:])
                except BlockingIOError:
                    continue
            return
        self.kill()
        raise ProcessTimeout(seconds)

    # -- stderr ------------------------------------------------------------------------------

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The last `limit` bytes written to stderr, decoded."""
        with contextlib.suppress(OSError, ValueError):
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            return os.pread(fd, limit, max(0, size - limit)).decode("utf-8", errors="replace")
        return ""

    def trim_stderr(self) -> None:
        """Cut the stderr file back to its tail once it passed STDERR_TRIM_BYTES.

        Its size is read with `lseek` to its end, cheaper than `fstat` (this runs after every
        answer); moving the offset is harmless: the file is O_APPEND for every writer, and read
        only with `pread`.
        """
        try:  # runs after every answer: no context manager
            fd = self._stderr.fileno()
            size = os.lseek(fd, 0, os.SEEK_END)
            if size > STDERR_TRIM_BYTES:
                keep = os.pread(fd, STDERR_KEEP_BYTES, size - STDERR_KEEP_BYTES)
                os.ftruncate(fd, 0)
                os.write(fd, keep)
        except (OSError, ValueError):  # closed
            pass

    # -- memory ------------------------------------------------------------------------------

    async def sample_rss_mb(self) -> float:
        """Resident memory of the process tree now, in MB (0 once it is dead); kept in `last_rss_mb`."""
        if not self.alive:
            rss = 0.0
        elif HAS_CHILDREN_FILES:  # a few /proc reads: cheaper inline than a thread hop
            rss = self._memory.rss_mb()
        else:
            rss = await anyio.to_thread.run_sync(tree_rss_mb, self.pid)
        self._record_rss(rss)
        return rss

    # -- supervision -------------------------------------------------------------------------

    async def supervised(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        seconds: float,
        memory_mb: float | None,
        patience: float | None = None,
    ) -> T:
        """`await work()` while the process runs under a deadline, a memory cap and its stdout budget.

        Past `seconds`, over `memory_mb` (sampled every MEMORY_POLL_SECONDS and once more at the
        end), past the budget, on any error or on cancellation, the group is killed and
        ProcessTimeout / ProcessMemoryExceeded / ProcessOutputExceeded / the error is raised. With
        `patience` shorter than `seconds`, the caller gives up after `patience` seconds without
        killing anything: ProcessStillRunning.
        """
        failed: list[Exception] = []
        waited = seconds if patience is None else min(seconds, patience)
        started = time.monotonic()
        scope = anyio.CancelScope()
        watchdog = _Watchdog(self, waited, memory_mb, lambda reason: scope.cancel())
        try:
            with scope:
                try:
                    result = await work()
                except Exception as exc:
                    failed.append(exc)
        except BaseException:
            self.kill()
            raise
        finally:
            watchdog.stop()
        if watchdog.tripped == _MEMORY:  # first: its kill may have failed `work`
            raise ProcessMemoryExceeded(memory_mb or 0, watchdog.exceeded or 0)
        if failed:
            self.kill()
            if self.overflowed:
                raise ProcessOutputExceeded(self.output_limit or 0) from None
            raise failed[0]
        if scope.cancelled_caught and watchdog.tripped == _DEADLINE:
            self._expired(seconds, waited, started)
        await self.settle_memory(memory_mb)
        return result

    async def watch(
        self,
        wake: asyncio.Future[object],
        *,
        seconds: float,
        memory_mb: float | None,
        patience: float | None = None,
    ) -> None:
        """Wait until `wake` is set (by whoever reads the output: it arrived, or stdout ended) under
        the deadline and memory cap of `supervised`, with no task or cancel scope of its own.

        Raises ProcessMemoryExceeded / ProcessTimeout (the group killed), ProcessStillRunning when
        `patience` ran out first; on cancellation the group is killed. The caller then looks at
        what arrived, and calls `settle_memory` for the last sample.
        """
        watch = self.start_watch(wake, seconds=seconds, memory_mb=memory_mb, patience=patience)
        try:
            reason = await wake
        except BaseException:
            self.kill()
            raise
        finally:
            watch.stop()
        watch.judge(reason)

    def start_watch(
        self,
        wake: asyncio.Future[object],
        *,
        seconds: float,
        memory_mb: float | None,
        patience: float | None = None,
    ) -> Watch:
        """Arm the deadline and memory cap of `watch` now, for a wait on `wake` that may begin later.

        Whoever awaits `wake` then calls `Watch.stop` and `Watch.judge` (and kills the group if
        that wait is cancelled), exactly as `watch` does.
        """
        return Watch(self, wake, seconds, memory_mb, patience)

    def _expired(self, seconds: float, waited: float, started: float) -> None:
        """The wait ran out: ProcessStillRunning if only the caller's patience did, else kill and ProcessTimeout."""
        if waited < seconds:
            raise ProcessStillRunning(time.monotonic() - started)
        self.kill()
        raise ProcessTimeout(seconds)

    async def settle_memory(self, memory_mb: float | None) -> None:
        """Sample memory once more (the caller may recycle on it); over `memory_mb`: kill, ProcessMemoryExceeded."""
        self._settle(await self.sample_rss_mb(), memory_mb)

    def settle_memory_now(self, memory_mb: float | None) -> None:
        """`settle_memory` without awaiting (only where `SAMPLES_INLINE`: the sample is a few /proc reads)."""
        assert SAMPLES_INLINE, "without /proc children files a sample runs on a worker thread"
        rss = self._memory.rss_mb() if self.alive else 0.0
        self._record_rss(rss)
        self._settle(rss, memory_mb)

    def _settle(self, rss: float, memory_mb: float | None) -> None:
        if memory_mb is not None and rss > memory_mb:
            self.kill()
            raise ProcessMemoryExceeded(memory_mb, rss)

    def _on_clock(self) -> None:
        """The watchdogs' timer fired: wake the watchdog of the wait in progress, if any."""
        self._clock = None
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog._tick()

    def _record_rss(self, rss: float) -> None:
        self.last_rss_mb = rss
        self.peak_mb = max(self.peak_mb, rss)

    # -- ending ------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the whole process group now (reap it later with `aclose`)."""
        self._killed = True
        if not self._closed:
            kill_group(self.pid)

    async def aclose(self) -> None:
        """Kill the group, reap the leader, release its pipes and stderr file. Idempotent."""
        self.kill()
        if self._closed:
            return
        self._end_output()
        if self._clock is not None:
            self._clock.cancel()
            self._clock, self._watchdog = None, None
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await self._process.aclose()
            self._closed = True
            unregister_group(self.pid)
            self._stderr.close()
            self._memory.close()
            fds, self._fds = self._fds, []  # aclose may run twice at once (the pool and a check)
            for fd in fds:
                os.close(fd)


class _Watchdog:
    """One event-loop timer (asyncio) over one wait: the deadline, and the memory cap sampled every
    MEMORY_POLL_SECONDS (without /proc children files the sample, a scan of /proc, runs on a
    worker thread).

    When the deadline passes it calls `trip(_DEADLINE)`; over `limit_mb` it records the sample in
    `exceeded`, kills the group and calls `trip(_MEMORY)`. `tripped` says which, if any.
    """

    def __init__(
        self, process: LeanProcess, seconds: float, limit_mb: float | None, trip: Callable[[str], object]
    ) -> None:
        self.process, self.limit_mb, self.trip = process, limit_mb, trip
        self.loop = process.loop
        now = self.loop.time()
        self.deadline = now + seconds
        self.exceeded: float | None = None
        self.tripped: str | None = None
        self._arm(True, now)

    def stop(self) -> None:
        self._detach()
        self.limit_mb = None  # a threaded sample still running judges nothing

    def _detach(self) -> None:
        """Stop being woken by the process's clock; a clock set far ahead is cancelled (a near one
        is left for the next wait to reuse: it costs one empty call when it fires)."""
        process = self.process
        if process._watchdog is self:
            process._watchdog = None
            if process._clock is not None and process._clock_at > self.loop.time() + MEMORY_POLL_SECONDS:
                process._clock.cancel()
                process._clock = None

    def _arm(self, poll: bool = True, now: float | None = None) -> None:
        """Be woken (`_tick`) at the deadline, or at the next memory sample if that comes first;
        the process's clock is reused when it fires no later than that."""
        when = self.deadline
        if poll and self.limit_mb is not None:
            sample_at = (self.loop.time() if now is None else now) + MEMORY_POLL_SECONDS
            when = min(when, sample_at)
        process = self.process
        process._watchdog = self
        if process._clock is not None:
            if process._clock_at <= when:
                return
            process._clock.cancel()
        process._clock_at = when
        process._clock = self.loop.call_at(when, process._on_clock)

    def _tick(self) -> None:
        if self.loop.time() >= self.deadline:
            self._trip(_DEADLINE)
        elif self.limit_mb is None:
            self._arm()
        elif not self.process.alive:
            self._judge(0.0)
        elif HAS_CHILDREN_FILES:  # a few /proc reads: cheaper inline than a thread hop
            self._judge(self.process._memory.rss_mb())
        else:
            sample = self.loop.run_in_executor(None, tree_rss_mb, self.process.pid)
            sample.add_done_callback(lambda done: self._judge(None if done.exception() else done.result()))
            self._arm(poll=False)  # the deadline holds while the sample runs

    def _judge(self, rss: float | None) -> None:
        if self.limit_mb is None or self.tripped is not None:  # stopped while a threaded sample ran
            return
        if rss is not None:
            self.process._record_rss(rss)
            if rss > self.limit_mb:
                self.exceeded = rss
                self.process.kill()
                self._trip(_MEMORY)
                return
            self.process.trim_stderr()
        self._arm()

    def _trip(self, reason: str) -> None:
        if self.tripped is not None:
            return
        self.tripped = reason
        self._detach()
        self.trip(reason)


class Watch(_Watchdog):
    """The deadline and memory cap over one wait for a process's output (`LeanProcess.start_watch`):
    when either trips, `wake` is set to why (`_DEADLINE` / `_MEMORY`) unless something set it first."""

    def __init__(
        self,
        process: LeanProcess,
        wake: asyncio.Future[object],
        seconds: float,
        memory_mb: float | None,
        patience: float | None,
    ) -> None:
        self.wake, self.seconds, self.memory_mb = wake, seconds, memory_mb
        self.waited = seconds if patience is None or patience >= seconds else patience
        _Watchdog.__init__(self, process, self.waited, memory_mb, self._wake)  # (no `super()`: one per request)
        self.started = time.monotonic()

    def _wake(self, reason: str) -> None:
        if not self.wake.done():
            self.wake.set_result(reason)

    def judge(self, reason: object) -> None:
        """After the wait ended with `reason`, raise what tripped, if anything.

        ProcessMemoryExceeded (the watchdog killed the group), ProcessTimeout (the group killed
        now), or ProcessStillRunning when only the caller's patience ran out (nothing killed).
        """
        if self.tripped == _MEMORY:  # first: it killed the group, whatever woke the wait
            raise ProcessMemoryExceeded(self.memory_mb or 0, self.exceeded or 0)
        if reason == _DEADLINE:
            self.process._expired(self.seconds, self.waited, self.started)
