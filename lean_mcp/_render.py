"""How results read as text, in one place for every front end.

`describe_result` / `describe_proof` / `describe_tactic` / `describe_tries`: the summaries an MCP
tool answers with (a model reads them on their own). `format_result`: `lean-mcp check`'s
compiler-style report, one `path:line:col: severity: text` line per message.
"""

from __future__ import annotations

from ._models import Proof, ProofResult, ProofStatus, TacticResult, TryTacticsResult, Verdict

_HEADLINES = {
    Verdict.PROVED: "PROVED: Lean accepted the proof (no errors, no sorry).",
    Verdict.TIMEOUT: "TIMEOUT: Lean did not finish checking within the time limit. Not proved.",
    Verdict.MEMORY_LIMIT: "MEMORY LIMIT: Lean exceeded its memory limit. Not proved.",
    Verdict.ERROR: "ERROR: the proof could not be checked (Lean failed). Not proved.",
}


def describe_result(result: ProofResult) -> str:
    """A summary a model can read on its own: verdict line, Lean's messages, goals left at sorries."""
    lines = [_headline(result)]
    # A failure's synthesised message has no real position: say it plainly.
    if result.error_message:
        lines.append(result.error_message)
    lines.extend(
        f"{m.pos} {m.severity.value}: {_indent(m.data)}" for m in result.messages if m.data != result.error_message
    )
    for sorry in result.sorries:
        where = f" at {sorry.pos}" if sorry.pos else ""
        handle = f" (proof_state_id {sorry.proof_state_id})" if sorry.proof_state_id else ""
        lines.append(f"Goal left at the sorry{where}{handle}:\n  {_indent(sorry.goal)}")
    footer = _footer(result)
    if footer:
        lines.append(footer)
    return "\n".join(lines)


def describe_proof(proof: Proof) -> str:
    """The text answer of submit_proof: the id and what to call next."""
    return (
        f"SUBMITTED: proof_id {proof.id} ({proof.status.value}). "
        f'Call get_proof_result(proof_id="{proof.id}", wait_seconds=60) for the answer.'
    )


def _headline(result: ProofResult) -> str:
    if not result.done or result.verdict is None:
        return (
            f"{result.status.value.upper()}: Lean has not answered yet. "
            f'Call get_proof_result(proof_id="{result.proof_id}", wait_seconds=60) to wait for it.'
        )
    if result.verdict == Verdict.REJECTED:
        count = len(result.result.errors) if result.result else 0
        return f"REJECTED: Lean reported {_plural(count, 'error')}."
    if result.verdict == Verdict.SORRY:
        count = len(result.sorries) or 1
        return f"SORRY: no errors, but the proof uses sorry ({_plural(count, 'place')}). Not proved."
    return _HEADLINES[result.verdict]


def _footer(result: ProofResult) -> str:
    parts = [f"proof_id {result.proof_id}"] if result.proof_id else []
    if result.lean_time is not None:
        parts.append(f"Lean time {result.lean_time:.2f} s")
    if result.cached:
        parts.append("cached")
    if result.done:
        parts.append("checks: " + (", ".join(result.checks) or "none"))
    return f"({', '.join(parts)})" if parts else ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _indent(text: str) -> str:
    return text.rstrip("\n").replace("\n", "\n  ")


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


def format_result(path: str, result: ProofResult) -> str:
    """The readable report for one file: a verdict line, then messages and sorry goals."""
    verdict = result.verdict.value if result.verdict else result.status.value
    detail = ""
    if result.cached:
        detail = "cached"
    elif result.verdict == Verdict.PROVED and result.lean_time is not None:
        detail = f"{result.lean_time:.2f} s"
    lines = [f"{path}: {verdict}" + (f" ({detail})" if detail else "")]
    if result.done and result.verdict is not None and result.verdict.lean_finished:
        lines.append(f"{path}: checks: {', '.join(result.checks) or 'none'}")
    for message in result.messages:
        lines.append(f"{path}:{message.pos.line}:{message.pos.column}: {message.severity.value}: {message.data}")
    for sorry in result.sorries:
        where = f"{path}:{sorry.pos.line}:{sorry.pos.column}" if sorry.pos else path
        lines.append(f"{where}: goal:\n" + _indent_lines(sorry.goal))
    if result.error_message and not result.messages:
        lines.append(f"{path}: error: {result.error_message}")
    return "\n".join(lines)


def _indent_lines(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
