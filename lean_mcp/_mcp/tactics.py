"""The tactic tools: `run_tactic` and `try_tactics` on the proof states behind a result's sorries.

A `verify_proof` answer on the `repl` backend gives each sorry a `proof_state_id`. These tools run
tactics on it in the REPL that holds it, and answer with the new goals, Lean's messages and a
`proof_status` (completed / incomplete / error). A bad, expired or dead id is a tool error that
says to verify the proof again; other backends answer with an error naming the `repl` backend.
"""

from __future__ import annotations

from mcp_types import CallToolResult

from .._models import MAX_TACTICS_PER_TRY
from .._render import describe_tactic, describe_tries
from .arguments import ProofStateId, TacticList, TacticText, Timeout
from .output import Tool, tool_errors, tool_result
from .slot import ServiceSlot

RUN_TACTIC_DESCRIPTION = """\
Run one Lean tactic on a proof state and get the goals it leaves.

`proof_state_id` comes from a sorry in a verify_proof result (the `repl` backend gives each sorry
one) or from an earlier run_tactic. `tactic` is tactic text, e.g. `intro h`, `simp`, or several
lines (`constructor\\n· exact h.2\\n· exact h.1`). The result has a new `proof_state_id` (the old
one stays usable, so you can backtrack), `goals`, Lean's `messages` and `proof_status`:
- completed: no goal left; the REPL's kernel check and lean-mcp's `checks` passed.
- incomplete: goals remain (or a sorry / unchecked tactic such as native_decide was used).
- error: the tactic failed; try another one from the same proof_state_id.
Once completed, put the tactics into the proof and call verify_proof for the final verdict."""

TRY_TACTICS_DESCRIPTION = f"""\
Try several tactics, each from the same proof state, and get one result per tactic.

Use it to explore: e.g. tactics=["simp", "omega", "exact Nat.le_refl _"]. Each result is what
run_tactic would answer (its own new proof_state_id, goals, messages, proof_status). They run
one after another in the Lean REPL that holds the proof state (a REPL is single-threaded).
At most {MAX_TACTICS_PER_TRY} tactics per call."""


def run_tactic_tool(slot: ServiceSlot) -> Tool:
    """`run_tactic`: one tactic on one proof state."""

    async def run_tactic(
        proof_state_id: ProofStateId,
        tactic: TacticText,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for the tactic
    ) -> CallToolResult:
        async with tool_errors():
            service = await slot.get()
            result = await service.backend.run_tactic(proof_state_id, tactic, timeout=timeout)
        return tool_result(describe_tactic(result), result)

    return run_tactic


def try_tactics_tool(slot: ServiceSlot) -> Tool:
    """`try_tactics`: several tactics, each from the same proof state."""

    async def try_tactics(
        proof_state_id: ProofStateId,
        tactics: TacticList,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for each tactic
    ) -> CallToolResult:
        async with tool_errors():
            service = await slot.get()
            result = await service.backend.try_tactics(proof_state_id, tactics, timeout=timeout)
        return tool_result(describe_tries(result), result)

    return try_tactics
