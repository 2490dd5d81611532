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
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

from .._errors import BackendUnavailableError
from .._lean.supervise import (
    STDERR_TAIL_BYTES,
    LeanProcess,
    ProcessFailure,
    ProcessOutputExceeded,
    ProcessTimeout,
    exit_text,
    spawn,
)
from .._sandbox import NO_SANDBOX, Sandbox
from .protocol import ResponseReader, encode_request

logger = logging.getLogger(__name__)

#: How long a REPL that closed its stdout may take to exit before it is killed.
EXIT_GRACE_SECONDS = 2.0
#: Request keys whose answer, when it is not a `{"message"}`, gets the next env id (repl-protocol §4.1).
_ALLOCATES_ENV = ("cmd", "path", "unpickleEnvFrom")


class ReplCrashed(ProcessFailure):
    """The REPL exited (or closed its stdout) without answering."""

    def __init__(self, returncode: int | None, stderr_tail: str, reason: str = "") -> None:
        super().__init__(f"the REPL {reason or exit_text(returncode)}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ReplOutOfStep(ReplCrashed):
    """The REPL wrote something that is not the answer to the request in flight; it was killed."""


@dataclasses.dataclass
class _Pending:
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
            self._reader.feed(chunk)
            answer = self._reader.next_response()
            if answer is None:
                return
            self._answer, self._trailing = answer, len(self._reader)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

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

    async def send(self, request: dict[str, Any], *, seconds: float, max_output_bytes: int | None = None) -> None:
        """Send `request`; its answer is due within `seconds` and may be at most `max_output_bytes` long.

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
        self.requests += 1
        self.lean.reset_output_budget(max_output_bytes)
        allocates = any(key in request for key in _ALLOCATES_ENV)
        self.pending = _Pending(seconds, time.monotonic() + seconds, self.next_env if allocates else None)
        try:
            await self.lean.write(encode_request(request), seconds=seconds)
        except ProcessTimeout:
            raise ProcessTimeout(seconds) from None
        except OSError:
            await self._crashed()
        except BaseException:
            self.kill()
            raise

    async def answer(self, *, memory_mb: float | None = None, patience: float | None = None) -> dict[str, Any]:
        """The answer to the request in flight.

        Raises ProcessTimeout / ProcessMemoryExceeded / ProcessOutputExceeded (the group killed),
        ReplCrashed, ReplOutOfStep; or, when `patience` runs out before the request's own
        deadline, ProcessStillRunning with the request still in flight.
        """
        pending = self.pending
        if pending is None:
            raise RuntimeError("no REPL request is in flight")
        if self._answer is None and not self._ended:
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
        self.pending, self._answer = None, None
        self._check_in_step(response, pending)
        self.lean.trim_stderr()
        return response

    def _check_in_step(self, response: dict[str, Any], pending: _Pending) -> None:
        if self._trailing:
            self.kill()
            raise ReplOutOfStep(self.returncode, self.stderr_tail(), "wrote more than one answer to one request")
        if pending.env is None:
            return
        env = response.get("env")
        if isinstance(env, int) and not isinstance(env, bool):
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

    async def aclose(self) -> None:
        """Kill the group, reap the process, release its pipes and stderr file. Idempotent."""
        await self.lean.aclose()
