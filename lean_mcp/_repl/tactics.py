"""Tactic mode: run tactics on the proof states a pool's REPLs hold (`run_tactic`, `try_tactics`).

A tactic runs only in the REPL that made its proof state (`ReplPool.reserve`), as the request
`{"tactic": ..., "proofState": n}`. Each answer becomes a `TacticResult`:

* `completed`: the REPL says "Completed" and every `completion_checks` check passed;
* `incomplete`: goals remain, or the proof still holds a sorry / metavariable, or a check failed;
* `error`: the tactic failed (parse or elaboration error, kernel rejection), or Lean could not
  answer (timeout, memory cap, crash: `failure` says which; the REPL and all its states are gone).

`try_tactics` runs its tactics from the same start state one after the other in that one REPL
(a REPL answers one request at a time, and a proof state cannot leave its REPL without pickling
it to disk and re-importing its header elsewhere, which costs more than the tactics themselves).
The REPL's proof states are immutable, so every tactic sees exactly the start state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .._lean.messages import to_lean_output
from .._lean.supervise import ProcessFailure, ProcessMemoryExceeded, ProcessOutputExceeded, ProcessTimeout
from .._models import Message, ProofStatus, Severity, TacticResult, TryTacticsResult
from .._settings import DEFAULT_MAX_PROOF_BYTES
from .pool import ReplPool
from .process import ReplCrashed, ReplProcess
from .proof_states import ProofStateHandle, completion_checks, untrusted_words, validate_tactic, validate_tactics
from .protocol import ProofStepResponse, ReplMessage, classify

#: What a tactic that killed its REPL leaves behind.
_KILLED = "the REPL was killed and every proof state it held is gone: verify the proof again for new proof_state_ids"
_GONE = f"{_KILLED[0].upper()}{_KILLED[1:]}."


class TacticRunner:
    """Runs tactics for one pool: `timeout` is each tactic's default limit in seconds; a tactic may be
    at most `max_bytes` long (the proof-size limit, --max-proof-bytes)."""

    def __init__(self, pool: ReplPool, *, timeout: float, max_bytes: int = DEFAULT_MAX_PROOF_BYTES) -> None:
        self.pool = pool
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def run_tactic(
        self,
        proof_state_id: str,
        tactic: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for the tactic, not this call's
    ) -> TacticResult:
        """Run `tactic` on the proof state `proof_state_id` names."""
        tactic = validate_tactic(tactic, self.max_bytes)
        handle = self.pool.proof_states.get(proof_state_id)
        async with self.pool.reserve(handle.owner) as process:
            return await self._step(process, handle, tactic, timeout or self.timeout)

    async def try_tactics(
        self,
        proof_state_id: str,
        tactics: Sequence[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for each tactic
    ) -> TryTacticsResult:
        """Run each of `tactics` from the proof state `proof_state_id` names, in order, in its REPL."""
        texts = validate_tactics(tactics, self.max_bytes)
        handle = self.pool.proof_states.get(proof_state_id)
        results: list[TacticResult] = []
        async with self.pool.reserve(handle.owner) as process:
            for text in texts:
                if not process.alive:  # an earlier tactic killed the REPL: these never ran
                    results.append(_failed(text, "not_run", f"Not run: an earlier tactic stopped the REPL. {_GONE}"))
                    continue
                results.append(await self._step(process, handle, text, timeout or self.timeout))
        return TryTacticsResult(proof_state_id=proof_state_id, results=results)

    async def _step(self, process: ReplProcess, handle: ProofStateHandle, tactic: str, seconds: float) -> TacticResult:
        request = {"tactic": tactic, "proofState": handle.state}
        started = time.monotonic()
        try:
            raw = await process.request(
                request,
                seconds=seconds,
                memory_mb=self.pool.memory_mb,
                max_output_bytes=self.pool.limits.max_output_bytes,
            )
        except ProcessFailure as exc:
            return _failure_result(tactic, exc)
        lean_time = round(time.monotonic() - started, 6)
        try:
            response = classify(raw)
        except ValueError:
            response = ReplMessage(f"unexpected reply {raw!r:.300}")
        if isinstance(response, ProofStepResponse):
            taint = handle.taint + tuple(w for w in untrusted_words(tactic) if w not in handle.taint)
            return self._stepped(process, handle, (tactic, taint), response, lean_time)
        text = response.message if isinstance(response, ReplMessage) else f"unexpected reply {raw!r:.300}"
        return _failed(tactic, None, text, lean_time=lean_time)

    def _stepped(
        self,
        process: ReplProcess,
        handle: ProofStateHandle,
        step: tuple[str, tuple[str, ...]],
        response: ProofStepResponse,
        lean_time: float,
    ) -> TacticResult:
        """A proof-step reply as a TacticResult; new proof states (the step's and its sorries') get ids.

        `step` is the tactic and the taint of the state it leads to."""
        tactic, taint = step
        output = to_lean_output(response.raw)
        status, repl_status = _status_of(response, output.messages)
        checks = completion_checks(repl_status, output.messages, output.sorries, taint)
        if status == ProofStatus.COMPLETED and not all(check.passed for check in checks):
            status = ProofStatus.INCOMPLETE
        registry = self.pool.proof_states
        for sorry in output.sorries:  # a goal a tactic left as sorry: proving it is real progress
            if sorry.proof_state is not None:
                sorry.proof_state_id = registry.register(process, sorry.proof_state, handle.taint)
        new_id = None if status == ProofStatus.ERROR else registry.register(process, response.proof_state, taint)
        messages = list(output.messages)
        if status == ProofStatus.ERROR and not output.errors:
            messages.append(Message.error(f"The REPL could not verify the proof: {repl_status}", line=0))
        return TacticResult(
            tactic=tactic,
            proof_state_id=new_id,
            goals=response.goals,
            messages=messages,
            sorries=output.sorries,
            proof_status=status,
            repl_status=repl_status,
            checks=checks,
            lean_time=lean_time,
        )


def _status_of(response: ProofStepResponse, messages: Sequence[Message]) -> tuple[ProofStatus, str | None]:
    """Our status for a proof-step reply, and the REPL's own text for it."""
    repl_status = response.proof_status
    if any(m.severity == Severity.ERROR for m in messages):
        return ProofStatus.ERROR, repl_status
    if repl_status == "Completed":
        return ProofStatus.COMPLETED, repl_status
    if response.goals or (repl_status or "").startswith("Incomplete"):
        return ProofStatus.INCOMPLETE, repl_status
    # "Error: ...", "Not verified: ...", or a REPL older than v4.19 that reports no proofStatus
    return ProofStatus.ERROR, repl_status or "no proofStatus in the REPL's answer (a REPL older than v4.19?)"


def _failed(tactic: str, failure: str | None, text: str, *, lean_time: float | None = None) -> TacticResult:
    """A tactic that produced no new proof state."""
    return TacticResult(
        tactic=tactic,
        messages=[Message.error(text, line=0)],
        proof_status=ProofStatus.ERROR,
        failure=failure,
        lean_time=lean_time,
    )


def _failure_result(tactic: str, exc: ProcessFailure) -> TacticResult:
    """Lean could not answer the tactic: the REPL is dead, and so are its proof states."""
    if isinstance(exc, ProcessTimeout | ProcessOutputExceeded | ProcessMemoryExceeded):
        advice = " Try a cheaper tactic, or raise `timeout`." if isinstance(exc, ProcessTimeout) else ""
        return _failed(
            tactic,
            exc.error_type,
            exc.describe("running the tactic", _KILLED) + advice,
            lean_time=exc.seconds if isinstance(exc, ProcessTimeout) else None,
        )
    assert isinstance(exc, ReplCrashed)
    tail = exc.stderr_tail.strip()
    quoted = f" The REPL's stderr ended with:\n{tail}" if tail else ""
    return _failed(tactic, "crash", f"The tactic crashed the Lean REPL ({exc}). {_GONE}{quoted}")
