"""Turning Lean's output plus the probes' answers into the final verdict, with reasons.

Every reason a proof is not `proved` becomes an error message (or, for a hidden `sorry`, Lean's own
sorry warning) in the result's messages, so a client that re-derives the verdict from messages
alone (lean-runner's, ours over HTTP) reaches the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._models import DEFAULT_PERMITTED_AXIOMS, Message, Pos, ProofResult, Severity
from .declarations import Declarations
from .probes import Probe, ProbeKind, ProbeRun, axioms_of
from .statement import Reference

__all__ = ["DEFAULT_PERMITTED_AXIOMS", "Assessment", "assess"]

SORRY_AXIOM = "sorryAx"
#: Why a run whose last probe line has no answer cannot be `proved`.
STOPPED_EARLY = "Lean stopped reading before the end of lean-mcp's audit (an unterminated comment or command?)."


class Assessment:
    """What the probes found about a proof (`declared`, its declarations): reasons to reject, hidden sorries,
    and each audited theorem's axioms. Its methods are the judgements both readings of the answers share
    (`assess` here, `audit.judge` on the unpinned lean path)."""

    __slots__ = ("axioms", "declared", "permitted", "rejections", "sorries")

    def __init__(self, declared: Declarations, permitted: frozenset[str]) -> None:
        # (by hand: a dataclass's default factories cost a call each, on every proof)
        self.declared, self.permitted = declared, permitted
        self.rejections: list[tuple[int, str]] = []
        self.sorries: list[tuple[int, str]] = []
        self.axioms: dict[str, list[str]] = {}

    def reject(self, text: str, line: int = 1) -> None:
        self.rejections.append((line, text))

    def audit(self, name: str, answer: str | None, errors: Sequence[str]) -> None:
        """Judge the answer to `#print axioms name` (`answer`: Lean's first non-error message on its line;
        `errors`: the probe's errors): the axioms, or why the audit failed, a sorry, an axiom not permitted."""
        axioms = axioms_of(answer) if answer is not None and not errors else None
        if axioms is None:
            why = "; ".join(errors) or "Lean gave no answer (it stopped reading before the audit)"
            self.reject(
                f"lean-mcp could not audit the axioms of `{name}`: {why}. The verdict cannot be `proved`.",
                self._line_of(name),
            )
            return
        self.axioms[name] = axioms
        if not axioms:
            return
        if SORRY_AXIOM in axioms:
            self.sorries.append((self._line_of(name), f"`{name}` depends on `sorryAx`: declaration uses `sorry`"))
        for axiom in axioms:
            if axiom != SORRY_AXIOM and axiom not in self.permitted:
                self.reject(
                    f"`{name}` depends on the axiom `{axiom}`, which is not permitted (permitted: "
                    f"{', '.join(sorted(self.permitted))}; a request may add more with `permitted_axioms`).",
                    self._line_of(name),
                )

    def unsafe(self, name: str, errors: Sequence[str]) -> None:
        """`example := @name` failed (`errors`, not empty): `name` is not a safe, kernel-checked constant."""
        self.reject(
            f"`{name}` is not a kernel-checked, safe constant (lean-mcp's `example := @{name}` failed: {errors[0]}).",
            self._line_of(name),
        )

    def judge_declared(self) -> None:
        """What the text declares itself: axioms (only permitted ones pass) and `sorry` tokens."""
        declared, permitted = self.declared, self.permitted
        for axiom in declared.axioms:
            if axiom is None:
                self.reject("The proof declares an axiom whose name lean-mcp cannot read (made by a macro?).")
            elif axiom != SORRY_AXIOM and axiom.split(".")[-1] != SORRY_AXIOM and axiom not in permitted:
                self.reject(f"The proof declares the axiom `{axiom}`, which is not permitted.")
        if declared.sorry_lines:
            self.sorries += [(line, "declaration uses `sorry`") for line in declared.sorry_lines]

    def _line_of(self, name: str) -> int:
        """The line of the theorem `name` in the proof (its last declaration; 1 for a theorem only the
        statement names)."""
        found = 1
        declared = self.declared
        for parts, line in zip(declared.theorems, declared.theorem_lines, strict=True):
            if ".".join(parts) == name:
                found = line
        return found


#: The kinds, looked up once (an enum member looked up on its class costs a Python call in Python 3.11).
_AXIOMS, _SAFE, _TYPE, _DEFINITION = ProbeKind.AXIOMS, ProbeKind.SAFE, ProbeKind.TYPE, ProbeKind.DEFINITION


def _compare(probe: Probe, expected: str, found: Assessment, differing: set[str]) -> None:
    """Compare a statement probe's answer with the challenge's; `differing`: the names already found to differ
    (each reported once, not once per print style)."""
    name = probe.full_name
    if name in differing or (probe.complete and probe.answer == expected):
        return
    differing.add(name)
    if probe.kind is _TYPE:
        if probe.answer is None or probe.errors:
            found.reject(f"The proof does not declare `{name}`, a theorem of the statement (under that full name).")
        elif not probe.complete or probe.answer != expected:
            found.reject(
                f"The statement of `{name}` differs from the challenge's."
                f"\nexpected: {expected}\ngot:      {probe.answer}"
            )
    elif probe.answer is None or probe.errors:
        found.reject(f"`{name}`, which the statement uses, is not defined in the proof as in the challenge.")
    elif not probe.complete or probe.answer != expected:
        found.reject(f"`{name}` is defined differently in the proof.\nexpected: {expected}\ngot:      {probe.answer}")


def assess(
    probe_run: ProbeRun,
    declared: Declarations,
    reference: Reference | None,
    permitted: frozenset[str],
) -> Assessment:
    """Judge the answers in `probe_run` (already `read`)."""
    found = Assessment(declared, permitted)
    if not probe_run.reached_end:
        found.reject(STOPPED_EARLY)
    if reference is None and not declared.theorems:
        found.reject("The proof declares no theorem or lemma, so nothing is proved (lean-mcp audits named theorems).")
    differing: set[str] = set()
    for probe in probe_run.probes:
        kind = probe.kind
        if kind is _AXIOMS:
            found.audit(probe.full_name, probe.answer, probe.errors)
        elif kind is _SAFE:
            if probe.errors:
                found.unsafe(probe.full_name, probe.errors)
        elif reference is not None and kind is _TYPE:
            _compare(probe, reference.types[probe.key], found, differing)
        elif reference is not None and kind is _DEFINITION:
            _compare(probe, reference.definitions[probe.key], found, differing)
    found.judge_declared()
    return found


def apply(result: ProofResult, kept: list[Message], found: Assessment, *, checks: list[str]) -> ProofResult:
    """The final result: `result` (the inner backend's, Lean checked to the end) with its messages replaced by
    `kept` (Lean's own, from `ProofRun.read`) plus one message per finding, judged again. In place: a backend's
    result is its caller's (`Backend.check`)."""
    output = result.result
    assert output is not None
    messages = kept
    if found.rejections:
        messages = kept + [Message.error(text, line=line) for line, text in found.rejections]
    if found.sorries and not output.sorries and not any(_is_sorry_warning(m) for m in kept):
        messages = messages + [
            Message(severity=Severity.WARNING, pos=Pos(line=line, column=0), data=text) for line, text in found.sorries
        ]
    return result.rejudge(messages, checks=checks, axioms=found.axioms)


def _is_sorry_warning(message: Message) -> bool:
    return "declaration uses" in message.data and "sorry" in message.data
