"""The MCP tactic tools: `run_tactic` and `try_tactics` on the proof states behind a result's sorries.

A `verify_proof` answer on the `repl` backend gives each sorry a `proof_state_id`. These tools run
tactics on it in the REPL that holds it, and answer with the new goals, Lean's messages and a
`proof_status` (completed / incomplete / error). A bad, expired or dead id is a tool error that
says to verify the proof again; other backends answer with an error naming the `repl` backend.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from .mcp_server import ServiceSlot, Timeout, _structured, _tool_errors
from .models import MAX_TACTICS_PER_TRY, TacticResult, TryTacticsResult
from .render import describe_tactic, describe_tries

__all__ = ["add_tactic_tools"]

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

ProofStateId = Annotated[str, Field(description="A proof_state_id from a sorry of a result, or from run_tactic.")]
TacticText = Annotated[str, Field(description="Lean tactic text, e.g. `intro h` or `simp [h]`.")]
TacticList = Annotated[
    list[str],
    Field(min_length=1, max_length=MAX_TACTICS_PER_TRY, description="Tactics to try, each from the same state."),
]
TacticOutput = Annotated[CallToolResult, TacticResult]
TriesOutput = Annotated[CallToolResult, TryTacticsResult]


def add_tactic_tools(server: MCPServer[Any], slot: ServiceSlot) -> None:
    """Register `run_tactic` and `try_tactics` on `server`."""
    annotations = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    async def run_tactic(
        proof_state_id: ProofStateId,
        tactic: TacticText,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for the tactic
    ) -> TacticOutput:
        async with _tool_errors():
            service = await slot.get()
            result = await service.backend.run_tactic(proof_state_id, tactic, timeout=timeout)
        return _structured(describe_tactic(result), result)

    async def try_tactics(
        proof_state_id: ProofStateId,
        tactics: TacticList,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for each tactic
    ) -> TriesOutput:
        async with _tool_errors():
            service = await slot.get()
            result = await service.backend.try_tactics(proof_state_id, tactics, timeout=timeout)
        return _structured(describe_tries(result), result)

    server.add_tool(run_tactic, name="run_tactic", description=RUN_TACTIC_DESCRIPTION, annotations=annotations)
    server.add_tool(try_tactics, name="try_tactics", description=TRY_TACTICS_DESCRIPTION, annotations=annotations)
