"""Commands lean-mcp appends to a Lean text, and their answers read back by position.

Each probe is one command on a line of its own after the checked text. Lean answers a command
with messages positioned at that command, so the answer to a probe is the message on the probe's
line: nothing the text prints itself (an `#eval` printing "does not depend on any axioms") can
stand in for it, because the text ends before the first probe line. A probe with no answer (Lean
stopped reading early: an unterminated comment, an open command swallowing the probe...) has
`answer` None and counts as a failed check, never as a pass.

The last line of the block must be answered for the block to count as read (probes that answer
only with an error, `SAFE`, go first; an end marker closes a block that would end with one). Text the
proof leaves dangling (a trailing `set_option ... in`) wraps the first probe at most; it cannot turn
a failed check into a pass: the probes that compare texts set their own print options innermost.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from .._lean.lexer import render_name
from .._models import LeanOutput, Message, Severity

#: Options that make Lean print a term fully: full names, explicit arguments, universes, no notation,
#: no elided proofs or deep terms. Each is set explicitly (innermost, so nothing the proof set wins):
#: `pp.all` alone does not override an option the proof set itself (e.g. `pp.notation true`).
PP_EXPLICIT = "".join(
    f"set_option pp.{option} in "
    for option in (
        "all true", "notation false", "explicit true", "universes true", "fullNames true", "funBinderTypes true",
        "coercions false", "fieldNotation false", "proofs true", "deepTerms true", "maxSteps 100000000",
        "oneline false", "mvars true", "structureInstances false", "privateNames true", "natLit true",
        "piBinderTypes true", "letVarTypes true", "beta false", "instances true", "instanceTypes true",
        "motives.all true",
    )
)  # fmt: skip
#: The raw form: the term as stored, printed without any delaborator (so no notation, unexpander or
#: custom printer of the proof's can shape it). Its hygienic binder names are renumbered (`_hygiene`).
PP_RAW = "set_option pp.raw true in set_option pp.raw.maxDepth 100000000 in set_option pp.raw.showInfo false in "
_HYGIENIC = re.compile(r"[^\s(){}\[\]:,]*\._@\.[^\s(){}\[\]:,]*")
_END_MARKER = "#check (Sort 0)"
#: The audit's two commands, each followed by the theorem's name (`lexer.render_name`).
AXIOMS_COMMAND = "#print axioms _root_."
SAFE_COMMAND = "example := @_root_."
_ELIDED = "⋯"


class ProbeKind(enum.StrEnum):
    """What a probe asks Lean."""

    AXIOMS = "axioms"  # `#print axioms N`: the axioms N depends on
    SAFE = "safe"  # `example := @N`: Lean errors when N is `unsafe` (no answer when it is fine)
    TYPE = "type"  # `#check @N` under PP_EXPLICIT: N's type, fully explicit
    DEFINITION = "definition"  # `#print N` under PP_EXPLICIT: N's definition
    KNOWN = "known"  # `#check @N`: answered when N exists


#: The kinds, looked up once (an enum member looked up on its class costs a Python call in Python 3.11).
_AXIOMS, _SAFE, _TYPE, _DEFINITION = ProbeKind.AXIOMS, ProbeKind.SAFE, ProbeKind.TYPE, ProbeKind.DEFINITION
_ERROR = Severity.ERROR


@dataclasses.dataclass(slots=True)
class Probe:
    """One appended command, its line once laid out, and what Lean answered there."""

    kind: ProbeKind
    name: list[str]
    #: print the raw term (PP_RAW) instead of the delaborated one (PP_EXPLICIT); TYPE and DEFINITION only
    raw: bool = False
    line: int = 0
    answer: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def full_name(self) -> str:
        return ".".join(self.name)

    @property
    def key(self) -> str:
        """What the probe asks about, for comparing its answer with a reference's."""
        return self.full_name + ("  (raw)" if self.raw else "")

    def command(self) -> str:
        kind = self.kind
        if kind is _AXIOMS:
            return AXIOMS_COMMAND + render_name(self.name)
        if kind is _SAFE:
            return SAFE_COMMAND + render_name(self.name)
        ref = "_root_." + render_name(self.name)
        style = PP_RAW if self.raw else PP_EXPLICIT
        if kind is _TYPE:
            return f"{style}#check @{ref}"
        if kind is _DEFINITION:
            return f"{style}#print {ref}"
        return "#check @" + ref

    @property
    def complete(self) -> bool:
        """Answered with a full (not elided) print and no error."""
        return self.answer is not None and not self.errors and _ELIDED not in self.answer


def _block(probes: list[Probe], first_line: int) -> tuple[str, int]:
    """The probe lines, numbering each probe from `first_line`, and the line whose answer ends the block.

    Probes with no answer of their own (`SAFE`) go first; the last line must be answered, so when no
    probe would answer there, an end marker (`#check (Sort 0)`) closes the block.
    """
    safe = [p for p in probes if p.kind is _SAFE]
    ordered = safe + [p for p in probes if p.kind is not _SAFE] if safe else probes
    lines = []
    for line, probe in enumerate(ordered, first_line):
        probe.line = line
        lines.append(probe.command())
    if not ordered or ordered[-1].kind is _SAFE:
        lines.append(_END_MARKER)
    lines.append("")
    return "\n".join(lines), first_line + len(lines) - 2


@dataclasses.dataclass(slots=True)
class ProbeRun:
    """A text with probes laid into it; `read` fills in the answers from Lean's output."""

    text: str
    probes: list[Probe]
    end_line: int
    #: Lines that hold lean-mcp's own commands (their messages are not the proof's): one or two ranges.
    own_lines: tuple[range, ...]
    reached_end: bool = False

    def read(self, output: LeanOutput) -> list[Message]:
        """Fill in the answers; return the messages of `output` that are not on lean-mcp's own lines."""
        messages = output.messages
        if not messages:
            return []
        by_line = {probe.line: probe for probe in self.probes}
        own, end_line = self.own_lines, self.end_line
        kept: list[Message] = []
        for message in messages:
            line = message.pos.line
            for lines in own:
                if line in lines:
                    break
            else:
                kept.append(message)
                continue
            if line == end_line:  # any answer there, even an error, shows Lean read that far
                self.reached_end = True
            probe = by_line.get(line)
            if probe is None:
                continue
            if message.severity == _ERROR:
                probe.errors.append(message.data)
            elif probe.answer is None:
                probe.answer = _hygiene(message.data) if probe.raw else message.data
            else:  # two answers to one command: something else printed here; trust neither
                probe.errors.append("more than one answer")
        return kept


def layout(text: str, late: list[Probe], *, early: list[Probe] | None = None, header: str = "") -> ProbeRun:
    """`text` with `late` probes after it; `early` probes go right after `header` (its first part).

    Early probes run in the environment of the header alone (what the imports define).
    """
    own: list[range] = []
    if early:
        assert text.startswith(header)
        head = header if header.endswith("\n") or not header else header + "\n"
        start = head.count("\n") + 1
        block, last = _block(early, start)
        text = head + block + text[len(header) :]
        own.append(range(start, last + 1))
    if not text.endswith("\n"):
        text += "\n"
    start = text.count("\n") + 1
    block, end_line = _block(late, start)
    own.append(range(start, end_line + 1))
    return ProbeRun(text + block, [*early, *late] if early else late, end_line, tuple(own))


def _hygiene(text: str) -> str:
    """`text` with each distinct hygienic name (`x._@.Mod.123._hyg.7`) renamed `_hyg1`, `_hyg2`... in order
    of first appearance: the same term elaborated in another module prints the same."""
    names: dict[str, str] = {}
    return _HYGIENIC.sub(lambda m: names.setdefault(m.group(), f"_hyg{len(names) + 1}"), text)


#: Lean's two answers to `#print axioms N`: `'N' does not depend on any axioms` and
#: `'N' depends on axioms: [a, b]` (then maybe whitespace). N may hold anything, these words too; the
#: answer is read as `^'(.+)' does not depend on any axioms\s*$` (dot-all) or, failing that, as
#: `^'(.+)' depends on axioms: \[(.*)\]\s*$` would read it (the name as long as it can be), by string
#: methods (no backtracking over the name): `tests/test_audit_lean_path.py` compares the two.
_NO_AXIOMS = "' does not depend on any axioms"
_AXIOM_LIST = "' depends on axioms: ["


def axioms_of(answer: str) -> list[str] | None:
    """The axioms in Lean's answer to `#print axioms` (None when it is not such an answer)."""
    text = answer.rstrip()  # `str.isspace` is the regex's `\s`
    if text[:1] != "'":
        return None
    if text.endswith(_NO_AXIOMS) and len(text) > len(_NO_AXIOMS) + 1:
        return []
    if text.endswith("]"):
        at = text.rfind(_AXIOM_LIST)  # the last one: the name takes all it can
        if at >= 2:  # the name is not empty
            return [item.strip() for item in text[at + len(_AXIOM_LIST) : -1].split(",") if item.strip()]
    return None
