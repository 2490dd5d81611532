"""Pinned statements: the challenge's theorems, elaborated by lean-mcp in a clean environment.

A statement (challenge) is Lean text whose theorems are proved by `sorry`. lean-mcp runs it alone,
with probes, and keeps for each of its theorems the type Lean prints under `PP_EXPLICIT` (full
names, explicit arguments, universes, no notation), and for every constant that type mentions
*which the challenge itself defines* (not its imports), the definition Lean prints the same way,
following those definitions in turn. Which constants the challenge defines is asked of Lean too:
a probe placed right after the header, where only the imports exist, answers for imported names.

A proof then passes when the same probes, run after the proof, print the same texts, and its
imports include the challenge's (so the imported constants are the very same ones).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable

from .._errors import InvalidProofError
from .._lean.lexer import name_parts
from .._lean.source import split_header
from .._models import ProofResult, Severity
from .declarations import read_declarations
from .probes import Probe, ProbeKind, ProbeRun, layout

#: How many rounds of "which constants does this definition use" are followed at most.
MAX_ROUNDS = 12
#: Most constants compared for one statement.
MAX_CONSTANTS = 400

_PART = r"(?:«[^»]*»|[^\W\d][\w'!?]*)"
_NAME = re.compile(rf"{_PART}(?:\.(?:{_PART}|\d+))*")

Runner = Callable[[str], Awaitable[ProofResult]]


@dataclasses.dataclass
class Reference:
    """What a proof of the statement must match."""

    theorems: list[list[str]]
    #: probe key (full theorem name, plus "(raw)" for the raw form) → its type, printed explicitly
    types: dict[str, str]
    #: probe key of a constant the challenge defines and a statement uses → its definition, printed explicitly
    definitions: dict[str, str]
    #: the same constants' names as components
    constants: dict[str, list[str]]
    imports: list[str]
    prelude: bool


def _names_in(text: str) -> set[str]:
    return {m.group() for m in _NAME.finditer(text)}


async def build_reference(statement: str, run: Runner) -> Reference:
    """Elaborate `statement` (probing it with `run`) into a Reference.

    Raises InvalidProofError when the statement declares no theorem or does not elaborate.
    """
    declared = read_declarations(statement)
    if not declared.theorems:
        raise InvalidProofError(
            "The statement declares no theorem.",
            hint="A statement is Lean text like `theorem name : <claim> := sorry`.",
        )
    split = split_header(statement)
    header = split.header if split.key is not None else ""
    types: dict[str, str] = {}
    printed: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    seen: set[str] = {".".join(t) for t in declared.theorems}
    frontier: set[str] = set()
    for round_no in range(MAX_ROUNDS):
        names = sorted(frontier)
        early = [Probe(ProbeKind.KNOWN, name_parts(n)) for n in names] if header or split.key == "" else []
        late = [Probe(ProbeKind.TYPE, list(t), raw) for t in declared.theorems for raw in (False, True)]
        theorem_probes = len(late)
        late += [Probe(ProbeKind.DEFINITION, name_parts(n), raw) for n in names for raw in (False, True)]
        probe_run = layout(statement, late, early=early, header=header)
        await _run_checked(probe_run, run, round_no)
        if round_no == 0:
            for probe in late[:theorem_probes]:
                if not probe.complete or probe.answer is None:
                    raise InvalidProofError(
                        f"lean-mcp could not read the statement of `{probe.full_name}` from the statement text "
                        f"({'; '.join(probe.errors) or 'no answer'})."
                    )
                types[probe.key] = probe.answer
                frontier |= _names_in(probe.answer)
        imported = {".".join(p.name) for p in early if p.answer is not None}
        seen |= set(names)
        for probe in late[theorem_probes:]:
            if probe.full_name in imported or probe.answer is None:
                continue
            printed[probe.key], parts[probe.full_name] = probe.answer, probe.name
            frontier |= _names_in(probe.answer)
        frontier -= seen
        if not frontier:
            break
        if len(seen) > MAX_CONSTANTS:
            raise InvalidProofError(f"The statement uses more than {MAX_CONSTANTS} constants of its own.")
    else:
        raise InvalidProofError(f"The statement's definitions nest deeper than {MAX_ROUNDS} levels.")
    return Reference(
        theorems=[list(t) for t in declared.theorems],
        types=types,
        definitions=printed,
        constants=parts,
        imports=declared.imports,
        prelude=declared.prelude,
    )


async def _run_checked(probe_run: ProbeRun, run: Runner, round_no: int) -> None:
    """Run the probed statement; raise InvalidProofError when the statement itself has Lean errors."""
    result = await run(probe_run.text)
    if result.result is None or result.verdict is None or not result.verdict.lean_finished:
        raise InvalidProofError(
            f"lean-mcp could not elaborate the statement: {result.error_message or 'no answer from Lean'}"
        )
    errors = [m for m in probe_run.read(result.result) if m.severity == Severity.ERROR]
    if errors:
        first = errors[0]
        raise InvalidProofError(
            f"The statement does not elaborate: line {first.pos.line}: {first.data}",
            hint="Send the challenge's Lean text: its imports, definitions, and theorems proved by `sorry`.",
        )
    if not probe_run.reached_end:
        raise InvalidProofError("Lean stopped reading the statement before its end (an unterminated comment?).")
