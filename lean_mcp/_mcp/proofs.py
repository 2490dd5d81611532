"""The proof tools: `verify_proof` (check and wait), `submit_proof` (queue), `get_proof_result` (read or long-poll).

Every result is a `ProofResult` (a `Proof` for `submit_proof`) in the structured content and a
readable summary in the text content: a one-line verdict, Lean's messages as
`line:col severity: text`, the goals left at each `sorry`. A proof Lean rejects is a normal result;
`isError` means the tool itself could not serve the call, with a message saying what to do.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from .._jobs.service import ProofService
from .._models import ProofConfig, ProofResult
from .._render import describe_proof, describe_result
from .arguments import MAX_WAIT_SECONDS, MemoryLimit, ProofId, ProofPath, ProofText, Statement, Timeout, WaitSeconds
from .output import Tool, tool_errors, tool_result
from .slot import ServiceSlot
from .sources import ProofSources

logger = logging.getLogger(__name__)

#: Seconds between progress notifications while a call waits for Lean.
PROGRESS_INTERVAL = 2.0
#: Where the SDK's dispatch contexts keep a request's progress token.
_PROGRESS_TOKEN_FIELDS = ("_progress_token", "progress_token")
#: How long a cancelled call may spend cancelling its job.
_CANCEL_GRACE = 10.0

VERIFY_DESCRIPTION = """\
Check a Lean 4 proof with Lean and wait for the answer.

`proof` is the full Lean source text, e.g.
    theorem two_eq : 1 + 1 = 2 := by decide
(add `import Mathlib` etc. at the top when the proof needs it). To check a `.lean` file of the
server's project instead, pass its path as `path` (and no `proof`). With `statement` (the
challenge: Lean text whose theorems are proved by `sorry`), `proved` also requires every theorem
of the statement, with exactly the statement's type and definitions. The result's `verdict` is:
- proved: Lean accepted the proof with no error and no `sorry`, and every theorem depends only on
  permitted axioms (and matches the statement when one is given). Only this is a success.
- sorry: no errors, but a `sorry` remains; the text lists the goal left at each sorry.
- rejected: Lean reported errors; each is listed as `line:col error: message`.
- timeout / memory_limit / error: Lean could not finish checking; simplify or retry.
A rejected proof is a normal answer, not a tool failure. For many proofs or very long
checks, use submit_proof and get_proof_result instead."""

SUBMIT_DESCRIPTION = """\
Queue a Lean 4 proof for checking and return its id at once, without waiting.

Use this to check many proofs in parallel or when a check may take minutes; then call
get_proof_result(proof_id=..., wait_seconds=60) to wait for each answer. `config` may set
`timeout` (seconds of Lean time), `memory_limit_mb`, `statement` (the challenge the proof must
prove) and `permitted_axioms`. Pass `path` instead of `proof` to check a `.lean` file of the
server's project. For a single quick check, use
verify_proof instead."""

GET_RESULT_DESCRIPTION = f"""\
Get the result of a proof queued with submit_proof.

With wait_seconds > 0 (at most {MAX_WAIT_SECONDS:.0f}), wait up to that long for the answer
(long-poll) and return as soon as it is ready; with 0, return the current state at once.
`status` pending or running means Lean has not answered yet: call again. Once finished,
`verdict` is proved, sorry, rejected, timeout, memory_limit or error (as for verify_proof)."""


def verify_tool(slot: ServiceSlot, sources: ProofSources) -> Tool:
    """`verify_proof`: check a proof and wait for its result."""

    async def verify_proof(  # noqa: PLR0917 - MCP tools take their arguments by name
        ctx: Context,
        proof: ProofText = None,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for the proof, not this call's
        memory_limit_mb: MemoryLimit = None,
        statement: Statement = None,
        path: ProofPath = None,
    ) -> CallToolResult:
        options: dict[str, Any] = {"timeout": timeout, "memory_limit_mb": memory_limit_mb, "statement": statement}
        config = ProofConfig(**{k: v for k, v in options.items() if v is not None})
        async with tool_errors():
            text = await sources.text_of(proof, path)
            service = await slot.get()
            submitted = await service.submit(text, config)
            try:
                result = await _await_result(service, submitted.id, ctx, wait_seconds=None)
            except anyio.get_cancelled_exc_class():
                await _cancel_quietly(service, submitted.id)
                raise
        return tool_result(describe_result(result), result)

    return verify_proof


def submit_tool(slot: ServiceSlot, sources: ProofSources) -> Tool:
    """`submit_proof`: queue a proof and answer with its id at once."""

    async def submit_proof(
        proof: ProofText = None, config: ProofConfig | None = None, path: ProofPath = None
    ) -> CallToolResult:
        async with tool_errors():
            text = await sources.text_of(proof, path)
            service = await slot.get()
            submitted = await service.submit(text, config)
        return tool_result(describe_proof(submitted), submitted)

    return submit_proof


def get_result_tool(slot: ServiceSlot) -> Tool:
    """`get_proof_result`: a queued proof's result, at once or after a long-poll."""

    async def get_proof_result(proof_id: ProofId, ctx: Context, wait_seconds: WaitSeconds = 0) -> CallToolResult:
        async with tool_errors():
            service = await slot.get()
            if wait_seconds <= 0:
                result = await service.get_result(proof_id)
            else:
                result = await _await_result(service, proof_id, ctx, wait_seconds=wait_seconds)
        return tool_result(describe_result(result), result)

    return get_proof_result


async def _await_result(
    service: ProofService, proof_id: str, ctx: Context, *, wait_seconds: float | None
) -> ProofResult:
    """Wait for the proof's result (at most `wait_seconds`), reporting progress every few seconds.

    A call whose client asked for no progress waits in one step: no timer per call, and no
    wake-up every few seconds while its proof is queued behind hundreds of others.
    """
    if not _reports_progress(ctx):
        return await service.wait(proof_id, timeout=wait_seconds)
    started = anyio.current_time()
    deadline = None if wait_seconds is None else started + wait_seconds
    while True:
        step = (
            PROGRESS_INTERVAL if deadline is None else max(0.0, min(PROGRESS_INTERVAL, deadline - anyio.current_time()))
        )
        result = await service.wait(proof_id, timeout=step)
        now = anyio.current_time()
        if result.done or (deadline is not None and now >= deadline):
            return result
        elapsed = now - started
        message = f"Proof {proof_id} is {result.status.value}; waited {elapsed:.0f} s so far."
        await ctx.report_progress(elapsed, wait_seconds, message)


def _reports_progress(ctx: Context) -> bool:
    """False when the call came over JSON-RPC without a progress token: its progress reports go nowhere.

    The SDK keeps the token on the request's dispatch context (`_progress_token` on stdio and
    session HTTP, `progress_token` on stateless HTTP); a dispatcher with neither (the SDK's
    in-process one calls a progress callback instead) is assumed to want progress.
    """
    try:
        outbound = getattr(ctx.request_context.session, "_request_outbound", None)
    except ValueError:  # a Context outside a request
        return True
    for field in _PROGRESS_TOKEN_FIELDS:
        if hasattr(outbound, field):
            return getattr(outbound, field) is not None
    return True


async def _cancel_quietly(service: ProofService, proof_id: str) -> None:
    """Cancel the job of a call the client abandoned (shielded: the caller is being cancelled)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_GRACE):
        try:
            await service.cancel(proof_id)
            logger.info("Cancelled proof %s: its call was cancelled (by the client, or at shutdown).", proof_id)
        except Exception:
            logger.exception("Could not cancel proof %s", proof_id)
