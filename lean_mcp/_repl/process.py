"""One Lean REPL subprocess: start it, send a request, read its answer, kill it.

The process itself (group, deadline, memory watchdog, stdout budget, stderr tail, environment)
is a `lean.supervise.LeanProcess`. This module adds the REPL's protocol and keeps every answer
tied to its request. The REPL protocol has no request ids, so the rules are:

* one request in flight at a time (`pending`); nothing may be unread when a request is sent,
  and nothing may follow an answer in the same read: a REPL that wrote more than one answer
  (or wrote anything outside an answer) is out of step;
* env ids are unique per process and handed out in order (repl-protocol §4.1): every Command /
  File request that reaches elaboration gets the next id, `{"message"}` replies allocate none.
  The process counts them (`next_env`), so the answer to a command must carry exactly the id it
  is owed; an answer to any other request of this process carries another id and is refused.

An out-of-step REPL is killed (`ReplOutOfStep`), so a stale answer never reaches a later request.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, NoReturn

import anyio

from .._errors import BackendUnavailableError
from .._lean.supervise import (
    SAMPLES_INLINE,
    STDERR_TAIL_BYTES,
    LeanProcess,
    ProcessFailure,
    ProcessOutputExceeded,
    ProcessTimeout,
    Watch,
    exit_text,
    spawn,
)
from .._sandbox import NO_SANDBOX, Sandbox
from .protocol import ResponseReader, encode_request

logger = logging.getLogger(__name__)

#: How long a REPL that closed its stdout may take to exit before it is killed.
EXIT_GRACE_SECONDS = 2.0
#: Request keys whose answer, when it is not a `{"message"}`, gets the next env id (repl-protocol §4.1).
_ALLOCATES_ENV = frozenset(("cmd", "path", "unpickleEnvFrom"))


class ReplCrashed(ProcessFailure):
    """The REPL exited (or closed its stdout) without answering."""

    def __init__(self, returncode: int | None, stderr_tail: str, reason: str = "") -> None:
        super().__init__(f"the REPL {reason or exit_text(returncode)}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ReplOutOfStep(ReplCrashed):
    """The REPL wrote something that is not the answer to the request in flight; it was killed."""


#: What a request came to: its answer, or why there is none (`send_now`'s `on_answer`).
Outcome = dict[str, Any] | ProcessFailure


class _Pending(NamedTuple):
    """The request in flight: its deadline and the env id its answer must carry (None: not checked)."""

    seconds: float
    deadline: float
    env: int | None


class ReplProcess:
    """One running REPL. Not re-entrant: one request at a time.

    Its stdout is read as it arrives, from the event loop (`LeanProcess.listen`): each chunk goes
    to the response reader, and a complete answer to the request in flight wakes the caller
    waiting in `answer`. Bytes nobody asked for (no request in flight, or after the answer) stop
    the reading; the next `send` finds them and the REPL is out of step.
    """

    #: False for a subclass that sends elsewhere (it overrides `send`): then `send_now` never writes.
    _LOCAL: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._LOCAL = cls.send is ReplProcess.send and cls.answer is ReplProcess.answer

    def __init__(self, lean: LeanProcess, command: Sequence[str]) -> None:
        self.lean = lean
        self.command = list(command)
        self.pid = lean.pid
        self.requests = 0
        #: The env id the next elaborated command will get.
        self.next_env = 0
        self.pending: _Pending | None = None
        self._reader = ResponseReader()
        #: The answer to the request in flight, once it arrived; bytes that came after it in its read.
        self._answer: dict[str, Any] | None = None
        self._trailing = 0
        #: Bytes that came while no answer was owed; True once stdout ended.
        self._unsolicited = 0
        self._ended = False
        self._wake: asyncio.Future[object] | None = None
        #: The watch armed by `send_now` over the request in flight (its wait began with the request),
        #: that request's memory cap, and who takes its answer from the reading callback (`send_now`).
        self._watch: Watch | None = None
        self._memory_mb: float | None = None
        self._on_answer: Callable[[Outcome], None] | None = None
        #: When the request in flight (or the last one) was written.
        self.sent_at = 0.0
        lean.listen(self._on_output)  # a process from `spawn(..., raw_pipes=True)`

    @classmethod
    async def start(
        cls,
        command: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        sandbox: Sandbox = NO_SANDBOX,
    ) -> ReplProcess:
        """Start the REPL inside `sandbox` (see `lean.supervise.spawn`); BackendUnavailableError if it cannot."""
        try:
            lean = await spawn(command, cwd=cwd, env=env, sandbox=sandbox, raw_pipes=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"Cannot start the REPL `{' '.join(command)}`: {exc}.",
                hint="Check --repl / LEAN_MCP_REPL and --project; `lean-mcp doctor` shows what was found.",
            ) from exc
        return cls(lean, command)

    @property
    def alive(self) -> bool:
        return self.lean.alive

    @property
    def returncode(self) -> int | None:
        return self.lean.returncode

    @property
    def last_rss_mb(self) -> float:
        """Resident memory of the process tree, in MB, when it last answered or was sampled."""
        return self.lean.last_rss_mb

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The last `limit` bytes the REPL wrote to stderr, decoded."""
        return self.lean.stderr_tail(limit)

    # -- reading, from the event loop --------------------------------------------------------

    def _on_output(self, chunk: bytes | None) -> None:
        if chunk is None:
            self._ended = True
        elif self.pending is None or self._answer is not None:
            self._unsolicited += len(chunk)  # nobody asked: stop reading, `send` refuses this REPL
            self.lean.pause()
            return
        else:
            answer = self._reader.read(chunk)
            if answer is None:
                return
            self._answer, self._trailing = answer, len(self._reader.buffer)
            if self._on_answer is not None and self._wake is not None and not self._wake.done():
                self._conclude_now()
                return
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _conclude_now(self) -> None:
        """The answer to a request `send_now` sent is in: settle it here, in the reading callback
        (the memory sample, the in-step checks of `answer`), set `wake`, and give the outcome to
        `on_answer`, which may send this REPL its next request at once."""
        watch, wake, on_answer, pending = self._watch, self._wake, self._on_answer, self.pending
        assert watch is not None and wake is not None and on_answer is not None and pending is not None
        self._watch = self._wake = self._on_answer = None
        watch.stop()
        outcome: Outcome
        try:
            self.lean.settle_memory_now(self._memory_mb)
            outcome = self._accept(pending, trim=False)
        except ProcessFailure as exc:
            outcome = exc
        try:
            on_answer(outcome)  # first: it may write this REPL's next request
        finally:
            wake.set_result(None)
            self.lean.trim_stderr()

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self,
        request: dict[str, Any],
        *,
        seconds: float,
        memory_mb: float | None = None,
        max_output_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Send `request` and return its answer, within `seconds` (see `send` and `answer`)."""
        await self.send(request, seconds=seconds, max_output_bytes=max_output_bytes)
        return await self.answer(memory_mb=memory_mb)

    async def send(
        self,
        request: dict[str, Any],
        *,
        seconds: float,
        max_output_bytes: int | None = None,
        data: bytes | None = None,
    ) -> None:
        """Send `request`; its answer is due within `seconds` and may be at most `max_output_bytes` long.
        `data`: `request` already encoded (`protocol.encode_command`), else it is encoded here.

        Raises ReplOutOfStep if the REPL wrote anything since its last answer, ReplCrashed if it is gone.
        """
        if not self.alive:
            raise ReplCrashed(self.returncode, self.stderr_tail(), "is not running")
        if self.pending is not None:
            raise RuntimeError("a REPL request is already in flight")
        if self._unsolicited or len(self._reader):
            await self._out_of_step(f"wrote {self._unsolicited + len(self._reader):,} bytes after its last answer")
        if self._ended:
            await self._crashed()
        if data is None:
            data = encode_request(request)
        self._sent(request, seconds, max_output_bytes)
        try:
            await self.lean.write(data, seconds=seconds)
        except ProcessTimeout:
            raise ProcessTimeout(seconds) from None
        except OSError:
            await self._crashed()
        except BaseException:
            self.kill()
            raise

    def send_now(
        self,
        request: dict[str, Any],
        wake: asyncio.Future[object],
        *,
        seconds: float,
        memory_mb: float | None = None,
        max_output_bytes: int | None = None,
        on_answer: Callable[[Outcome], None] | None = None,
        data: bytes | None = None,
    ) -> bool:
        """`send`, done now or not at all, with the watch of `answer` armed at once: the deadline and
        the memory cap run from this moment, and `wake` is set when the answer arrives, when stdout
        ends or when the watch trips.

        With `on_answer`, an answer is settled as it arrives (the checks of `answer`, memory
        sample included) and `on_answer` gets it, or the ProcessFailure it is, from the reading
        callback; otherwise, and whenever the watch tripped or stdout ended, whoever holds `wake`
        calls `answer`, which then waits no more. `data`: as for `send`.

        False (and nothing sent) unless the REPL is in step with nothing in flight and the whole
        request fits one atomic pipe write; then `send` says what is wrong, or waits for room.
        """
        if not self._LOCAL or self.pending is not None or not self.alive:
            return False
        if self._unsolicited or self._reader.buffer or self._ended:
            return False
        if data is None:
            data = encode_request(request)
        if len(data) > select.PIPE_BUF or not self.lean.write_now(data):
            return False
        self._sent(request, seconds, max_output_bytes)
        self._wake, self._memory_mb = wake, memory_mb
        self._on_answer = on_answer if SAMPLES_INLINE else None
        self._watch = self.lean.start_watch(wake, seconds=seconds, memory_mb=memory_mb)
        return True

    def _sent(self, request: dict[str, Any], seconds: float, max_output_bytes: int | None) -> None:
        """`request` goes out now: count it, reset the output budget, record what its answer owes."""
        self.requests += 1
        self.lean.reset_output_budget(max_output_bytes)
        allocates = not _ALLOCATES_ENV.isdisjoint(request)
        self.sent_at = time.monotonic()
        self.pending = _Pending(seconds, self.sent_at + seconds, self.next_env if allocates else None)

    async def answer(self, *, memory_mb: float | None = None, patience: float | None = None) -> dict[str, Any]:
        """The answer to the request in flight.

        Raises ProcessTimeout / ProcessMemoryExceeded / ProcessOutputExceeded (the group killed),
        ReplCrashed, ReplOutOfStep; or, when `patience` runs out before the request's own
        deadline, ProcessStillRunning with the request still in flight.
        """
        pending = self.pending
        if pending is None:
            raise RuntimeError("no REPL request is in flight")
        if self._watch is not None:  # armed by `send_now`: the wait began with the request
            await self._end_watch(self._watch)
        elif self._answer is None and not self._ended:
            remaining = max(0.0, pending.deadline - time.monotonic())
            if patience is not None and patience >= remaining:
                patience = None
            self._wake = self.lean.loop.create_future()
            try:
                await self.lean.watch(self._wake, seconds=remaining, memory_mb=memory_mb, patience=patience)
            except ProcessTimeout:
                raise ProcessTimeout(pending.seconds) from None
            finally:
                self._wake = None
        response = self._answer
        if response is None:  # stdout ended, or the output budget was spent
            self.kill()
            if self.lean.overflowed:
                raise ProcessOutputExceeded(self.lean.output_limit or 0)
            await self._crashed()
        await self.lean.settle_memory(memory_mb)
        return self._accept(pending)

    def _accept(self, pending: _Pending, *, trim: bool = True) -> dict[str, Any]:
        """The answer to `pending`, once its memory is settled: in step, or ReplOutOfStep (killed);
        then the stderr file is trimmed (`trim`; else the caller does it)."""
        response = self._answer
        assert response is not None
        self.pending, self._answer = None, None
        self._check_in_step(response, pending)
        if trim:
            self.lean.trim_stderr()
        return response

    async def _end_watch(self, watch: Watch) -> None:
        """Wait for `wake` under the watch `send_now` armed; judge it (see `LeanProcess.watch`)."""
        assert self._wake is not None
        try:
            reason = await self._wake
        except BaseException:
            self.kill()
            raise
        finally:
            watch.stop()
            self._watch = self._wake = self._on_answer = None
        watch.judge(reason)

    def _check_in_step(self, response: dict[str, Any], pending: _Pending) -> None:
        if self._trailing:
            self.kill()
            raise ReplOutOfStep(self.returncode, self.stderr_tail(), "wrote more than one answer to one request")
        if pending.env is None:
            return
        env = response.get("env")
        if type(env) is int:  # (JSON gives no subclass of int but bool)
            if env != pending.env:
                self.kill()
                raise ReplOutOfStep(
                    self.returncode,
                    self.stderr_tail(),
                    f"answered with env {env} where env {pending.env} was due: the answer of another request",
                )
            self.next_env += 1
        elif "message" not in response:
            self.kill()
            raise ReplOutOfStep(
                self.returncode, self.stderr_tail(), f"sent an answer of no known shape: {response!r:.200}"
            )

    async def _crashed(self, reason: str = "") -> NoReturn:
        """The REPL stopped answering: wait briefly for its exit status, kill its group, raise."""
        with anyio.move_on_after(EXIT_GRACE_SECONDS):
            await self.lean.wait()
        self.kill()
        raise ReplCrashed(self.returncode, self.stderr_tail(), reason)

    async def _out_of_step(self, reason: str) -> NoReturn:
        self.kill()
        raise ReplOutOfStep(self.returncode, self.stderr_tail(), reason)

    def kill(self) -> None:
        """SIGKILL the REPL's whole process group now (reap it later with `aclose`)."""
        self.lean.kill()
        if self._watch is not None:  # nobody will judge it now
            self._watch.stop()

    async def aclose(self) -> None:
        """Kill the group, reap the process, release its pipes and stderr file. Idempotent."""
        self.kill()
        await self.lean.aclose()
