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

from .mcp_server import ServiceSlot, Timeout, _indent, _plural, _structured, _tool_errors
from .models import MAX_TACTICS_PER_TRY, ProofStatus, TacticResult, TryTacticsResult

__all__ = ["add_tactic_tools", "describe_tactic", "describe_tries"]

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


def describe_tactic(result: TacticResult) -> str:
    """A summary a model can read on its own: status line, new id, goals, messages, failed checks."""
    lines = [_tactic_headline(result)]
    if result.proof_state_id:
        lines.append(f"proof_state_id: {result.proof_state_id}")
    lines.extend(f"Goal {i}:\n  {_indent(goal)}" for i, goal in enumerate(result.goals, 1))
    lines.extend(f"{m.severity.value}: {_indent(m.data)}" for m in result.messages)
    for sorry in result.sorries:
        lines.append(f"Goal left at a sorry (proof_state_id {sorry.proof_state_id}):\n  {_indent(sorry.goal)}")
    failed = [c for c in result.checks if not c.passed and c.name != "repl_completed"]
    lines.extend(f"Check {c.name} failed: {c.detail}" for c in failed)
    return "\n".join(lines)


def describe_tries(result: TryTacticsResult) -> str:
    """One block per tactic, in order."""
    blocks = [f"{len(result.results)} tactics tried from {result.proof_state_id}:"]
    for index, item in enumerate(result.results, 1):
        blocks.append(f"[{index}] {item.tactic}\n{describe_tactic(item)}")
    return "\n\n".join(blocks)


def _tactic_headline(result: TacticResult) -> str:
    if result.proof_status == ProofStatus.COMPLETED:
        return (
            "COMPLETED: no goals left; Lean's kernel check and every lean-mcp check passed. "
            "Put the tactics into the proof and call verify_proof for the final verdict."
        )
    if result.proof_status == ProofStatus.ERROR:
        if result.failure:
            return f"ERROR ({result.failure}): Lean could not run the tactic."
        return "ERROR: the tactic failed; the proof state you started from is unchanged: try another tactic."
    if result.goals:
        return f"INCOMPLETE: {_plural(len(result.goals), 'goal')} left."
    return f"INCOMPLETE: no goals left, but the proof is not complete ({result.repl_status})."
