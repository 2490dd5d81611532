"""A pool of Lean REPLs that pays each import header once.

A proof is cut into its `import` header and its body (`header.split_header`). Each REPL runs one
header as a fresh command, which gives environment H, and then runs every proof body with that
header as `{"cmd": body, "env": H}`: the import is paid once per REPL, and every proof starts from
H itself, so no proof sees another's declarations.

At most `workers` REPLs live at once. A proof takes an idle REPL that already ran its header;
else an empty slot (a new REPL); else the least recently used idle REPL of another header is
evicted. When every REPL is busy the proof waits, first come first served (a waiter whose header
matches the REPL just freed may go first, a bounded number of times), at most `queue_timeout`
seconds, then gets a BusyError. A waiting proof is sent to the REPL that frees up on its behalf
(`_send_for`), and when that proof's answer arrives it is settled in the reading callback and the
REPL is handed the next waiting proof from there (`_answered`): the REPL never waits for a task
to run, and the waiting task wakes once, with its answer. Still one request in flight per REPL;
each proof's timeout and memory cap run from the moment it is sent.

A REPL is recycled after `max_uses` proofs or once its resident memory passes `recycle_mb`; it is
replaced lazily, when a proof next needs the slot. With `prestart` (off by default), a REPL nearing
`max_uses` gets its successor started ahead: a second REPL of the same header, imported while the
first finishes its last proofs (it starts when those are expected to take about twice as long as
a REPL takes to start and import), and put in the slot when the first is recycled, so the slot does
not wait for the restart. Until then it is one more REPL in memory than `workers` (with Mathlib,
several GB); it runs nothing but its import, under the import's own limits.

Failures become results: past the timeout or the memory cap the REPL's process group is killed
(verdict `timeout` / `memory_limit`); past `max_output_bytes` of output it is killed (verdict
`error`); a REPL that dies mid-proof, or goes out of step (an answer that is not the one owed,
see `process`), is replaced and the proof tried once more; a proof that kills two REPLs gets
verdict `error` quoting the REPL's stderr. A cancelled check kills its REPL and leaves the pool
healthy.

Proof states (tactic mode): each sorry of a result gets a `proof_state_id` from the pool's
`ProofStateRegistry`, naming that REPL. `reserve(process)` holds exactly that REPL for tactic
requests (waiting, first come first served, while it checks a proof). A REPL holding live proof
states is the last one evicted for another header, and its `max_uses` recycling waits until its
states are gone (at most `max_uses` more proofs); when it does go (recycled, evicted, crashed,
killed at a limit), its ids stop working with an error that says why.

Importing a header may take up to `import_timeout` (`--import-timeout`), but a proof waits for it
at most its own timeout: then it gets verdict `timeout`, and the import goes on in its slot, so
the next proof of that header finds it further along (a slow Mathlib import never fails forever,
and a REPL that wedges before its first answer holds no request longer than its timeout).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from .._errors import BackendUnavailableError, BusyError, ProofStateError
from .._lean.messages import to_lean_output
from .._lean.source import SplitProof, split_header
from .._lean.supervise import (
    ProcessFailure,
    ProcessMemoryExceeded,
    ProcessOutputExceeded,
    ProcessStillRunning,
    ProcessTimeout,
)
from .._models import LeanOutput, ProofConfig, ProofResult, Verdict
from .._processes import install_signal_cleanup
from .._sandbox import NO_SANDBOX, Sandbox
from .._settings import DEFAULT_LIMITS, LeanLimits
from .process import Outcome, ReplCrashed, ReplOutOfStep, ReplProcess
from .proof_states import ProofStateRegistry, sketch_taint
from .protocol import CommandResponse, ReplMessage, classify, command_request, encode_command, shift_positions

logger = logging.getLogger(__name__)

#: How many times the longest waiter may be passed over by waiters whose header matches a freed REPL.
MAX_SKIPS = 8


@dataclasses.dataclass(eq=False, slots=True)
class _Slot:
    """A place for one REPL: its process, the header its env ran, and its bookkeeping."""

    index: int
    process: ReplProcess | None = None
    key: str | None = None
    env: int | None = None
    busy: bool = False
    uses: int = 0
    last_used: float = 0.0
    #: The header its REPL imports (`key`'s text), and when that REPL was started and became ready.
    header: str = ""
    started_at: float = 0.0
    ready_at: float = 0.0
    #: (`prestart`) its REPL's successor, started ahead of recycling.
    successor: _Successor | None = None

    @property
    def live(self) -> bool:
        return self.process is not None and self.process.alive

    def ready_for(self, split: SplitProof) -> bool:
        """True when this REPL can run `split`'s body as it is (a whole text always gets a fresh REPL)."""
        return self.holds_header(split) and self.live

    def holds_header(self, split: SplitProof) -> bool:
        """True when this REPL's environment is `split`'s imported header (`ready_for`, alive or not)."""
        return split.key is not None and self.env is not None and self.key == split.key

    def importing(self, split: SplitProof) -> bool:
        """True when this REPL is still importing `split`'s header (a proof gave up waiting for it)."""
        return (
            self.live
            and not split.whole
            and self.env is None
            and self.key == split.key
            and self.process is not None
            and self.process.pending is not None
        )


@dataclasses.dataclass(eq=False, slots=True)
class _Successor:
    """(`prestart`) A REPL started ahead for a slot: the task that starts it and imports `header`;
    once that is done, the REPL and its env (both None when it failed)."""

    header: str
    task: asyncio.Task[None] | None = None
    process: ReplProcess | None = None
    env: int | None = None
    #: Set when it is no longer wanted: the task stops at its next step and closes the REPL.
    dropped: bool = False


class _Waiter:
    """A proof (or a tactic) waiting in the queue. Every field but those given starts at its class
    default (one is made per queued proof: setting only those costs about half a dataclass's init)."""

    split: SplitProof | None
    #: The one slot this waiter can use (a tactic on that REPL's proof state); None: any slot.
    want: _Slot | None = None
    #: A proof's settings (None: a tactic), so the REPL that frees up can be sent the proof at once.
    config: ProofConfig | None = None
    memory_mb: int = 0
    #: Set when the waiter leaves the queue (with `slot`, or empty-handed: timeout, shutdown), or,
    #: once its proof was sent on its behalf (`sent`), when the answer is in (see `_send_for`).
    handed: asyncio.Future[object] | None = None
    #: When it gives up waiting (event-loop time).
    deadline: float = math.inf
    slot: _Slot | None = None
    skipped: int = 0
    #: Its proof was sent on its behalf (`_send_for`), when; and, from the reading callback, what
    #: the answer came to and when (`_answered`).
    sent: bool = False
    sent_at: float = 0.0
    outcome: Outcome | None = None
    answered_at: float = 0.0
    #: Its answer is in and its REPL was handed to the next proof: nothing of the slot is its own now.
    passed_on: bool = False

    def __init__(
        self,
        split: SplitProof | None,
        *,
        want: _Slot | None = None,
        config: ProofConfig | None = None,
        memory_mb: int = 0,
    ) -> None:
        self.split, self.want, self.config, self.memory_mb = split, want, config, memory_mb


def _hand(waiter: _Waiter) -> None:
    if waiter.handed is not None and not waiter.handed.done():
        waiter.handed.set_result(None)


class _HeaderRejected(Exception):
    """The header's own command had Lean errors: the proof's answer is that result."""

    def __init__(self, result: ProofResult) -> None:
        super().__init__("header rejected")
        self.result = result


class ReplPool:
    """Header-keyed REPL processes behind one `check(code, config)` call. Use `async with`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        limits: LeanLimits = DEFAULT_LIMITS,
        max_uses: int = 500,
        recycle_mb: float = 0.0,
        queue_timeout: float = 600.0,
        prewarm: Sequence[str] = (),
        proof_states: ProofStateRegistry | None = None,
        sandbox: Sandbox = NO_SANDBOX,
        prestart: bool = False,
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.env = env
        self.workers = max(1, workers)
        self.limits = limits
        self.memory_mb = limits.memory_mb
        self.max_uses = max_uses
        self.recycle_mb = recycle_mb or limits.memory_mb * 0.8
        self.queue_timeout = queue_timeout
        self.prewarm = list(prewarm)
        self.proof_states = proof_states if proof_states is not None else ProofStateRegistry()
        self.sandbox = sandbox
        self.prestart = prestart
        #: How long the last REPL took from its start to its header's env (what `prestart` plans by).
        self._start_seconds = 0.0
        self._slots = [_Slot(i) for i in range(self.workers)]
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._queue_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "proofs",
                "repl_starts",
                "header_runs",
                "restarts",
                "timeouts",
                "memory_kills",
                "crashes",
                "out_of_step",
                "output_kills",
                "retries",
                "recycled",
                "evictions",
                "busy_errors",
                "tactics",
                "handoffs",
                "prestarts",
            ),
            0,
        )

    async def __aenter__(self) -> ReplPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Arm the exit-time cleanup and import the prewarm headers (in parallel, one REPL each)."""
        self._closed = False
        install_signal_cleanup()
        headers = []
        for text in self.prewarm:
            split = split_header(text if text.endswith("\n") else text + "\n")
            if split.whole or split.body.strip():
                logger.warning("Prewarm entry %r is not only import lines; only its imports are prewarmed.", text)
            if not split.whole and split.key:
                headers.append(split)
        headers = headers[: self.workers]
        if not headers:
            return
        unavailable: list[BackendUnavailableError] = []
        async with anyio.create_task_group() as group:
            for slot, split in zip(self._slots, headers, strict=False):
                slot.busy = True
                group.start_soon(self._prewarm, slot, split, unavailable)
        if unavailable:
            raise unavailable[0]

    async def _prewarm(self, slot: _Slot, split: SplitProof, unavailable: list[BackendUnavailableError]) -> None:
        """Import one header on `slot`; a REPL that cannot start at all is reported in `unavailable`."""
        try:
            await self._prepare(slot, split, self.limits.import_timeout, self.memory_mb)
        except (ProcessFailure, _HeaderRejected) as exc:
            logger.warning("Prewarming %r failed: %s", split.key, exc)
            await self._retire(slot)
        except BackendUnavailableError as exc:
            unavailable.append(exc)
        finally:
            self._release(slot)

    async def aclose(self) -> None:
        """Kill every REPL's process group and reap it; waiting proofs get BackendUnavailableError."""
        self._closed = True
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        while self._waiters:
            _hand(self._waiters.popleft())
        processes = [slot.process for slot in self._slots if slot.process is not None]
        for process in processes:
            process.kill()
        with anyio.CancelScope(shield=True):
            for process in processes:
                await process.aclose()
            for slot in self._slots:
                await self._drop_successor(slot)

    # -- checking ----------------------------------------------------------------------------

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Check `code`: Lean's answer, or a timeout / memory_limit / error result."""
        if self._closed:
            raise BackendUnavailableError("The REPL pool is shut down.")
        split = split_header(code)
        memory_mb = min(config.memory_limit_mb, self.memory_mb)
        ticket = None
        slot = None if self._waiters else self._pick(split)
        if slot is None:  # all busy, or proofs wait already: wait in turn
            ticket = _Waiter(split, config=config, memory_mb=memory_mb)
            slot = await self._queue(ticket)
            if ticket.passed_on:  # its answer is in, counted, and its REPL went on to the next proof (`_answered`)
                outcome = ticket.outcome
                assert isinstance(outcome, dict)
                return self._command_result(slot.process, split, outcome, round(ticket.answered_at - ticket.sent_at, 6))
        try:
            return await self._check_on(slot, split, config, memory_mb, ticket)
        finally:
            if ticket is None or not ticket.passed_on:
                await self._give_back(slot)

    async def _give_back(self, slot: _Slot) -> None:
        """Release `slot` after a check; a REPL that died in it is retired first."""
        if slot.process is not None and (self._closed or not slot.process.alive):
            self.counts["restarts"] += not self._closed
            await self._retire(slot)  # a REPL started while the pool was closing dies here too
        self._release(slot)

    async def _check_on(
        self, slot: _Slot, split: SplitProof, config: ProofConfig, memory_mb: int, ticket: _Waiter | None
    ) -> ProofResult:
        """The proof's result on `slot` (`ticket`: how it waited; its body may be sent already, `_send_for`)."""
        crash: ReplCrashed | None = None
        sent = ticket if ticket is not None and ticket.sent else None
        for attempt in range(2):
            stage, started = "import", time.monotonic() if sent is None else sent.sent_at
            try:
                if sent is None:
                    await self._prepare(slot, split, config.timeout, memory_mb)
                stage, started = "proof", time.monotonic() if sent is None else sent.sent_at
                result = await self._run_body(slot, split, config, memory_mb, sent)
            except _HeaderRejected as rejected:
                return rejected.result
            except (ProcessTimeout, ProcessStillRunning) as exc:
                self.counts["timeouts"] += 1
                return _timeout_result(exc, stage, time.monotonic() - started, self.limits.import_timeout)
            except ProcessMemoryExceeded as exc:
                self.counts["memory_kills"] += 1
                return _killed(exc, stage, time.monotonic() - started)
            except ProcessOutputExceeded as exc:
                self.counts["output_kills"] += 1
                return _killed(exc, stage, time.monotonic() - started)
            except ReplCrashed as exc:
                self.counts["out_of_step" if isinstance(exc, ReplOutOfStep) else "crashes"] += 1
                self.counts["restarts"] += 1
                crash, sent = exc, None
                await self._retire(slot)
                if self._closed:
                    return ProofResult.failure(
                        Verdict.ERROR, "The REPL pool was shut down while checking this proof.", error_type="shutdown"
                    )
                if attempt == 0:
                    self.counts["retries"] += 1
                    logger.warning("During the %s %s; retrying the proof once on a new REPL.", stage, exc)
                continue
            if sent is not None and sent.passed_on:  # counted, and its REPL sent on (`_answered`)
                return result
            await self._after_proof(slot, split)
            if not slot.live:  # recycled at once: its proof states are gone already
                for sorry in result.sorries:
                    sorry.proof_state_id = None
            return result
        assert crash is not None
        return _crash_result(crash)

    async def _run_body(
        self, slot: _Slot, split: SplitProof, config: ProofConfig, memory_mb: int, sent: _Waiter | None
    ) -> ProofResult:
        """Check the body on `slot`'s REPL (`sent`: the waiter whose body `_send_for` sent already)."""
        process = slot.process
        assert process is not None
        if sent is None:
            started = time.monotonic()
            request, data = _body_request(slot, split, config)
            await process.send(
                request, seconds=config.timeout, max_output_bytes=self.limits.max_output_bytes, data=data
            )
        else:
            started = sent.sent_at
        if sent is not None and sent.outcome is not None:  # settled in the reading callback
            if isinstance(sent.outcome, ProcessFailure):
                raise sent.outcome
            raw, lean_time = sent.outcome, round(sent.answered_at - started, 6)
        else:
            raw = await process.answer(memory_mb=memory_mb)
            lean_time = round(time.monotonic() - started, 6)
        if isinstance(raw.get("env"), int):  # a command's answer (as `classify` tells it)
            return self._command_result(process, split, raw, lean_time)
        response = classify_or_none(raw)
        await self._retire(slot)  # a REPL that did not check a command is not trusted with another
        text = response.message if isinstance(response, ReplMessage) else f"unexpected reply {raw!r:.300}"
        return ProofResult.failure(
            Verdict.ERROR, f"The REPL did not check the proof: {text}", lean_time=lean_time, error_type="repl_error"
        )

    def _command_result(
        self, process: ReplProcess | None, split: SplitProof, raw: dict[str, Any], lean_time: float
    ) -> ProofResult:
        """The result of `raw`, the answer of `process` to the command that checked `split`'s body."""
        output = to_lean_output(shift_positions(raw, split.line_offset))
        result = ProofResult.from_output(output, lean_time=lean_time)
        if split.key is None or not output.sorries:  # (a whole text's REPL is retired: no handles)
            return result
        assert process is not None
        return self._with_handles(process, split, result)

    def _with_handles(self, process: ReplProcess, split: SplitProof, result: ProofResult) -> ProofResult:
        """`result` with a proof_state_id on each sorry that has a proof state (never served from the cache)."""
        held = [sorry for sorry in result.sorries if sorry.proof_state is not None]
        if not held:
            return result
        taint = sketch_taint(split.body)
        for sorry in held:
            assert sorry.proof_state is not None
            sorry.proof_state_id = self.proof_states.register(process, sorry.proof_state, taint)
        return result.model_copy(update={"reusable": False})

    async def _prepare(self, slot: _Slot, split: SplitProof, patience: float, memory_mb: int) -> None:
        """Give `slot` a live REPL whose env ran `split`'s header, waiting for it at most `patience` s.

        Raises ProcessStillRunning (the import goes on in the slot), another ProcessFailure, or
        _HeaderRejected.
        """
        if slot.ready_for(split):
            return
        if slot.successor is not None:
            if split.whole or split.key != slot.key:
                await self._drop_successor(slot)
            elif await self._adopt_successor(slot, patience):
                return
        if not slot.importing(split):
            if slot.live:
                self.counts["evictions"] += 1
            await self._retire(
                slot, "its REPL was given to a proof with other imports (all --workers REPLs were in use)"
            )
            slot.started_at = time.monotonic()
            with anyio.CancelScope(shield=True):
                process = slot.process = await self.start_repl()
            self.counts["repl_starts"] += 1
            slot.key, slot.env, slot.uses, slot.header = split.key, None, 0, split.header
            if split.whole:
                return
            await process.send(
                command_request(split.header),
                seconds=self.limits.import_timeout,
                max_output_bytes=self.limits.max_output_bytes,
            )
        assert slot.process is not None
        process = slot.process
        raw = await process.answer(memory_mb=memory_mb, patience=patience)
        self.counts["header_runs"] += 1
        response = classify_or_none(raw)
        if isinstance(response, CommandResponse):
            output = to_lean_output(raw)
            if not output.errors:
                slot.env, slot.ready_at = response.env, time.monotonic()
                self._start_seconds = slot.ready_at - slot.started_at
                return
            # an import error may be the project's state (not built yet), not the proof's: never cached
            result = ProofResult.from_output(LeanOutput(messages=output.errors)).model_copy(update={"reusable": False})
        else:
            text = response.message if isinstance(response, ReplMessage) else f"unexpected reply {raw!r:.300}"
            result = ProofResult.failure(
                Verdict.ERROR, f"The REPL could not run the import header: {text}", error_type="repl_error"
            )
        await self._retire(slot)
        raise _HeaderRejected(result)

    async def start_repl(self) -> ReplProcess:
        """Start one REPL for a slot (a subclass may start it elsewhere: the ray backend uses a Ray actor)."""
        return await ReplProcess.start(self.command, cwd=self.cwd, env=self.env, sandbox=self.sandbox)

    async def _after_proof(self, slot: _Slot, split: SplitProof) -> None:
        self.counts["proofs"] += 1
        slot.uses += 1
        if self.prestart:
            self._plan_successor(slot)
        assert slot.process is not None
        if split.whole:  # its imports were loaded into this REPL outside any shared env: do not reuse it
            await self._retire(slot)
        elif self._spent(slot, slot.uses):
            logger.debug(
                "Recycling REPL %d after %d proofs, %.0f MB", slot.process.pid, slot.uses, slot.process.last_rss_mb
            )
            self.counts["recycled"] += 1
            await self._retire(
                slot,
                f"its REPL was recycled (after {slot.uses} proofs, {math.ceil(slot.process.last_rss_mb)} MB resident)",
            )

    def _spent(self, slot: _Slot, uses: int) -> bool:
        """True when `slot`'s REPL is to be recycled after `uses` proofs: worn out or too big."""
        assert slot.process is not None
        return self._worn_out(slot, uses) or slot.process.last_rss_mb > self.recycle_mb

    def _worn_out(self, slot: _Slot, uses: int) -> bool:
        """Past `max_uses` (up to twice that while the REPL holds live proof states)."""
        if uses < self.max_uses:
            return False
        return uses >= 2 * self.max_uses or not self._holds_states(slot)

    def _holds_states(self, slot: _Slot) -> bool:
        return slot.process is not None and self.proof_states.live_on(slot.process) > 0

    async def _retire(self, slot: _Slot, reason: str = "its REPL stopped (crashed or was killed)") -> None:
        """Kill and reap the slot's REPL (the slot keeps its header key as a preference); its proof
        states stop working, answering with `reason`."""
        process, slot.process, slot.env = slot.process, None, None
        if process is not None:
            self.proof_states.release_owner(process, reason)
            await process.aclose()

    # -- successors (`prestart`) -------------------------------------------------------------

    def _plan_successor(self, slot: _Slot) -> None:
        """Start the successor of `slot`'s REPL once its proofs left before `max_uses` are expected to
        take at most twice as long as a REPL takes to start and import (measured on the last one)."""
        left = self.max_uses - slot.uses
        if slot.successor is not None or slot.env is None or slot.key is None or left <= 0 or slot.uses <= 0:
            return
        if left * (time.monotonic() - slot.ready_at) / slot.uses > 2 * self._start_seconds:
            return
        if self._holds_states(slot):  # its recycling may wait for those: no REPL idles beside it meanwhile
            return
        successor = slot.successor = _Successor(slot.header)
        successor.task = asyncio.get_running_loop().create_task(self._start_successor(successor))

    async def _start_successor(self, successor: _Successor) -> None:
        """Start `successor`'s REPL and import its header under the import's limits; on any failure it
        is closed and left without a process (the slot then starts a REPL as it would without `prestart`)."""
        started = time.monotonic()
        try:
            with anyio.CancelScope(shield=True):
                process = successor.process = await self.start_repl()
        except Exception as exc:
            logger.warning("Could not start a REPL ahead of recycling: %s", exc)
            return
        self.counts["repl_starts"] += 1
        try:
            if not successor.dropped:
                raw = await process.request(
                    command_request(successor.header),
                    seconds=self.limits.import_timeout,
                    memory_mb=self.memory_mb,
                    max_output_bytes=self.limits.max_output_bytes,
                )
                self.counts["header_runs"] += 1
                env = raw.get("env")
                if type(env) is int and not to_lean_output(raw).errors:
                    successor.env, self._start_seconds = env, time.monotonic() - started
                    return
                logger.warning("A REPL started ahead of recycling could not import its header: %.300r", raw)
        except Exception as exc:
            if not successor.dropped:
                logger.warning("A REPL started ahead of recycling failed while importing its header: %s", exc)
        successor.process = None
        with anyio.CancelScope(shield=True):
            await process.aclose()

    async def _adopt_successor(self, slot: _Slot, patience: float) -> bool:
        """Put `slot`'s successor REPL in its place, waiting for its import at most `patience` s (then
        ProcessStillRunning: the import goes on). False when it failed: the slot starts a REPL as before."""
        successor = slot.successor
        assert successor is not None and successor.task is not None
        if not successor.task.done():
            await asyncio.wait((successor.task,), timeout=patience)  # (never cancels it)
            if not successor.task.done():
                raise ProcessStillRunning(patience)
        slot.successor = None
        process, env = successor.process, successor.env
        if process is None or env is None or not process.alive:
            if process is not None:
                await process.aclose()
            return False
        await self._retire(slot, "its REPL was recycled (a successor started ahead took its place)")
        slot.process, slot.env, slot.uses, slot.ready_at = process, env, 0, time.monotonic()
        self.counts["prestarts"] += 1
        return True

    async def _drop_successor(self, slot: _Slot) -> None:
        """Stop and reap `slot`'s successor, if any (its header is no longer the slot's, or the pool closes)."""
        successor, slot.successor = slot.successor, None
        if successor is None or successor.task is None:
            return
        successor.dropped = True
        if successor.process is not None:
            successor.process.kill()  # an import in progress fails at once
        with anyio.CancelScope(shield=True):
            await asyncio.wait((successor.task,))
            if successor.process is not None:
                await successor.process.aclose()

    # -- slots -------------------------------------------------------------------------------

    def _pick(self, split: SplitProof) -> _Slot | None:
        """The best idle slot for `split` (marked busy), or None when all are busy."""
        idle = [slot for slot in self._slots if not slot.busy]
        if not idle:
            return None
        ready = [slot for slot in idle if slot.ready_for(split) or slot.importing(split)]
        empty = [slot for slot in idle if not slot.live]
        if ready:
            chosen = max(ready, key=lambda s: s.last_used)
        elif empty:
            chosen = max(empty, key=lambda s: s.key == split.key)
        else:  # evict: a REPL whose proof states are in use goes last
            chosen = min(idle, key=lambda s: (self._holds_states(s), s.last_used))
        chosen.busy = True
        return chosen

    async def _queue(self, waiter: _Waiter) -> _Slot:
        """Wait (at most `queue_timeout`) until `_release` hands `waiter` a slot.

        A future per waiter and one timer for the whole queue (`_expire_waiters`): no cancel
        scope or timer per proof.
        """
        loop = asyncio.get_running_loop()
        waiter.handed = loop.create_future()
        waiter.deadline = loop.time() + self.queue_timeout
        self._waiters.append(waiter)
        if self._queue_timer is None:
            self._queue_timer = loop.call_at(waiter.deadline, self._expire_waiters)
        try:
            await waiter.handed
        except BaseException:
            if waiter.passed_on:  # its answer was in: nothing is owed, and the slot is another's
                raise
            if waiter.sent and waiter.slot is not None and waiter.slot.process is not None:
                waiter.slot.process.kill()  # its answer is owed: as a check cancelled in `answer`
                await self._give_back(waiter.slot)
            elif waiter.slot is not None:
                self._release(waiter.slot)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        if waiter.slot is not None:
            return waiter.slot
        if self._closed:
            raise BackendUnavailableError("The REPL pool was shut down before a REPL was free.")
        self.counts["busy_errors"] += 1
        raise BusyError(
            f"All {self.workers} REPLs stayed busy for {self.queue_timeout:g} s; the proof was not checked."
        )

    def _expire_waiters(self) -> None:
        """The queue's timer: waiters past their `queue_timeout` leave empty-handed; re-armed for the next."""
        self._queue_timer = None
        if not self._waiters:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for waiter in [w for w in self._waiters if w.deadline <= now]:
            self._waiters.remove(waiter)
            _hand(waiter)
        if self._waiters:
            self._queue_timer = loop.call_at(min(w.deadline for w in self._waiters), self._expire_waiters)

    def _release(self, slot: _Slot) -> None:
        slot.busy = False
        slot.last_used = time.monotonic()
        if self._closed or not self._waiters:
            return
        chosen, ready = self._waiters[0], False
        if chosen.want is None and chosen.split is not None and slot.holds_header(chosen.split):
            self._waiters.popleft()  # the longest waiter, of this REPL's header: the common case, first
            ready = True
        else:
            eligible = (w for w in self._waiters if w.want is None or w.want is slot)
            head = next(eligible, None)
            if head is None:
                return
            chosen = head
            if head.want is None and head.skipped < MAX_SKIPS and not _suits(slot, head):
                chosen = next((w for w in eligible if _suits(slot, w)), head)
            if chosen is not head:
                head.skipped += 1
            self._waiters.remove(chosen)
            ready = chosen.split is not None and slot.holds_header(chosen.split)
        slot.busy = True
        chosen.slot = slot
        if not (ready and self._send_for(chosen, slot)):
            _hand(chosen)

    def _send_for(self, waiter: _Waiter, slot: _Slot) -> bool:
        """Send `waiter`'s proof to `slot`'s REPL, which holds its header, now, on its behalf, if it can.

        The REPL then starts on the proof the moment it is free, without waiting for the waiter's
        task to run; the waiter wakes once, when the answer is in (or the proof's deadline or
        memory cap tripped: `ReplProcess.send_now`), and collects it in `answer`. Still one
        request in flight per REPL, and the proof's limits run from the moment it is sent.
        """
        split, config, process = waiter.split, waiter.config, slot.process
        if split is None or config is None or waiter.handed is None or process is None:
            return False  # (that the REPL is alive, `send_now` checks)
        request, data = _body_request(slot, split, config)
        if not process.send_now(
            request,
            waiter.handed,
            seconds=config.timeout,
            memory_mb=waiter.memory_mb,
            max_output_bytes=self.limits.max_output_bytes,
            on_answer=lambda outcome: self._answered(waiter, outcome),
            data=data,
        ):
            return False
        waiter.sent, waiter.sent_at = True, process.sent_at
        self.counts["handoffs"] += 1
        return True

    def _answered(self, waiter: _Waiter, outcome: Outcome) -> None:
        """The answer to `waiter`'s proof is in, settled in the reading callback (`send_now`).

        When that leaves the REPL as it was (a plain command answer, no proof states, no
        recycling due) and a proof waits, the slot goes to it now, from this callback: the REPL
        gets its next proof without waiting for any task to run. The answer's own proof counts
        here (`_after_proof`'s bookkeeping) and keeps nothing of the slot.
        """
        waiter.outcome, waiter.answered_at = outcome, time.monotonic()
        slot, split = waiter.slot, waiter.split
        if self._closed or not self._waiters or slot is None or split is None or split.key is None:
            return
        if isinstance(outcome, ProcessFailure) or not isinstance(outcome.get("env"), int) or outcome.get("sorries"):
            return  # the task decides: a REPL message, or proof states to register first
        if not slot.live or self._spent(slot, slot.uses + 1):
            return
        self.counts["proofs"] += 1
        slot.uses += 1
        if self.prestart:
            self._plan_successor(slot)
        waiter.passed_on = True
        self._release(slot)

    # -- proof states ------------------------------------------------------------------------

    @asynccontextmanager
    async def reserve(self, process: object) -> AsyncIterator[ReplProcess]:
        """Hold the REPL `process` (the one a proof state lives in) for tactic requests.

        Waits while it checks a proof. Raises ProofStateError once that REPL is gone. A REPL that
        dies while held (timeout, memory cap, crash, cancellation) is retired on the way out.
        """
        if self._closed:
            raise BackendUnavailableError("The REPL pool is shut down.")
        slot = next((s for s in self._slots if s.process is process and s.live), None)
        if slot is None:
            raise ProofStateError("The REPL holding this proof state is gone (recycled, crashed or shut down).")
        if slot.busy:
            slot = await self._queue(_Waiter(None, want=slot))
        else:
            slot.busy = True
        try:
            held = slot.process
            if held is not process or held is None or not held.alive:
                raise ProofStateError("The REPL holding this proof state stopped while the tactic waited for it.")
            self.counts["tactics"] += 1
            yield held
        finally:
            if slot.process is process and not slot.live:
                self.counts["restarts"] += 1
                await self._retire(slot, "its REPL was killed while running a tactic (timeout, memory limit or crash)")
            self._release(slot)

    # -- state -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Live REPLs, busy/idle, headers held, waiting proofs, successors started ahead, totals since start."""
        live = [slot for slot in self._slots if slot.live]
        successors = [slot.successor for slot in self._slots if slot.successor is not None]
        headers: dict[str, int] = collections.Counter(_header_label(s.key) for s in live)
        return {
            "workers": self.workers,
            "live": len(live),
            "busy": sum(1 for slot in self._slots if slot.busy),
            "idle": sum(1 for slot in live if not slot.busy),
            "waiting": len(self._waiters),
            "headers": dict(headers),
            "pids": [slot.process.pid for slot in live if slot.process is not None],
            "rss_mb": [math.ceil(slot.process.last_rss_mb) for slot in live if slot.process is not None],
            "successor_pids": [s.process.pid for s in successors if s.process is not None],
            "proof_states": len(self.proof_states),
            **self.counts,
        }


def _body_request(slot: _Slot, split: SplitProof, config: ProofConfig) -> tuple[dict[str, Any], bytes]:
    """The command that checks `split`'s body on `slot`'s REPL (a whole text: as a fresh command), and its bytes."""
    env, all_tactics = None if split.key is None else slot.env, config.all_tactics
    return command_request(split.body, env, all_tactics=all_tactics), encode_command(
        split.body, env, all_tactics=all_tactics
    )


def _suits(slot: _Slot, waiter: _Waiter) -> bool:
    """True when `slot` is just what `waiter` needs: its one REPL, or a REPL of its header (one that
    died is restarted with that header: still the waiter's best slot; so liveness is not asked here)."""
    return waiter.want is slot or (waiter.split is not None and slot.holds_header(waiter.split))


def _header_label(key: str | None) -> str:
    if key is None:
        return "(whole text)"
    return key or "(no imports)"


def classify_or_none(raw: dict[str, Any]) -> CommandResponse | ReplMessage | None:
    """`classify`, with anything but a command reply or a REPL message as None."""
    try:
        response = classify(raw)
    except ValueError:
        return None
    return response if isinstance(response, CommandResponse | ReplMessage) else None


def _doing(stage: str) -> str:
    return "importing the proof's header" if stage == "import" else "checking the proof"


def _timeout_result(
    exc: ProcessTimeout | ProcessStillRunning, stage: str, elapsed: float, import_timeout: float
) -> ProofResult:
    if isinstance(exc, ProcessStillRunning):
        message = (
            f"Lean was still importing the proof's header after the proof's {exc.waited:.3g} s timeout. The "
            f"import goes on (up to --import-timeout, {import_timeout:g} s), so sending the proof again will "
            "find it further along; or raise the request's `timeout`, or prewarm the header (--prewarm)."
        )
        return ProofResult.failure(Verdict.TIMEOUT, message, lean_time=round(elapsed, 6), error_type="timeout")
    return _killed(exc, stage, elapsed)


def _killed(exc: ProcessFailure, stage: str, elapsed: float) -> ProofResult:
    """The result of a proof whose REPL was killed for `exc`: what happened, then what to do."""
    imports = " Imports have their own server default, --import-timeout." if exc.error_type == "timeout" else ""
    advice = exc.advice + (imports if stage == "import" else "")
    return ProofResult.failure(
        exc.verdict,
        f"{exc.describe(_doing(stage), 'the REPL was killed and will be replaced')} {advice}",
        lean_time=round(elapsed, 6),
        return_code=-signal.SIGKILL,
        error_type=exc.error_type,
    )


def _crash_result(exc: ReplCrashed) -> ProofResult:
    tail = exc.stderr_tail.strip()
    return ProofResult.failure(
        Verdict.ERROR,
        f"This proof broke the Lean REPL twice ({exc}); it was retried once on a fresh REPL."
        + (f" The REPL's stderr ended with:\n{tail}" if tail else " The REPL wrote nothing to stderr."),
        return_code=exc.returncode,
        error_type="crash",
    )
