"""The axiom audit of an unpinned proof on a lean data path: no object per probe.

Without a statement the probes are always the same two per theorem, laid out as `probes.layout`
lays them: every theorem's `example := @N` (first, as it answers only with an error), then every
theorem's `#print axioms N`, one command per line after the proof, the last line answered. So the
block is built by one join and the answers are read back by line number in one pass over Lean's
messages, straight into the judgement (`verdict`). It gives exactly the answer of the general path
(`probes.layout`, `ProbeRun.read`, `verdict.assess`), which a pinned check still takes;
`tests/test_audit_lean_path.py` compares the two on adversarial and random outputs.
"""

from __future__ import annotations

from .._lean.lexer import render_name
from .._models import LeanOutput, Message, Severity
from .declarations import Declarations
from .probes import AXIOMS_COMMAND, SAFE_COMMAND
from .verdict import STOPPED_EARLY, Assessment

_ERROR = Severity.ERROR
_SAFE_LINE = "\n" + SAFE_COMMAND
_AXIOMS_LINE = "\n" + AXIOMS_COMMAND
_NO_ERRORS: tuple[str, ...] = ()


def layout(code: str, theorems: list[list[str]]) -> tuple[str, int]:
    """`code` with the audit's probes of `theorems` (at least one) after it, and the first probe's line."""
    if not code.endswith("\n"):
        code += "\n"
    start = code.count("\n") + 1
    if len(theorems) == 1:  # the usual proof: no list of names to join
        name = render_name(theorems[0])
        return f"{code}{SAFE_COMMAND}{name}{_AXIOMS_LINE}{name}\n", start
    names = [render_name(parts) for parts in theorems]
    return f"{code}{SAFE_COMMAND}{_SAFE_LINE.join(names)}{_AXIOMS_LINE}{_AXIOMS_LINE.join(names)}\n", start


def judge(
    output: LeanOutput, declared: Declarations, start: int, permitted: frozenset[str]
) -> tuple[list[Message], Assessment]:
    """The messages of `output` that are the proof's own, and what the answers on the probe lines (laid
    out by `layout` from line `start`) and the declarations say."""
    theorems = declared.theorems
    count = len(theorems)
    end = start + 2 * count - 1
    kept: list[Message] = []
    answers: dict[int, str] = {}  # line → Lean's first non-error message there
    errors: dict[int, list[str]] = {}  # line → the errors there ("more than one answer" for a second one)
    for message in output.messages:
        line = message.pos.line
        if line < start or line > end:
            kept.append(message)
        elif message.severity == _ERROR:
            errors.setdefault(line, []).append(message.data)
        elif line in answers:  # two answers to one command: something else printed here; trust neither
            errors.setdefault(line, []).append("more than one answer")
        else:
            answers[line] = message.data
    found = Assessment(declared, permitted)
    if end not in answers and end not in errors:  # any answer there, even an error, shows Lean read that far
        found.reject(STOPPED_EARLY)
    line = start + count  # the line of the first theorem's `#print axioms`
    for parts in theorems:
        name = ".".join(parts)
        found.audit(name, answers.get(line), errors.get(line, _NO_ERRORS))
        if errors:
            unsafe = errors.get(line - count)  # its `example := @name`
            if unsafe:
                found.unsafe(name, unsafe)
        line += 1
    if declared.axioms or declared.sorry_lines:
        found.judge_declared()
    return kept, found
