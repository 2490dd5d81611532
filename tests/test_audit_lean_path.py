"""The unpinned audit's lean path (`trust.audit`) against the general path it stands in for.

The general path (`guard.probe_layout`, `ProbeRun.read`, `verdict.assess`, `verdict.apply`) is what
`TrustedBackend` ran for every proof before; it still runs for a pinned statement. For an unpinned
proof the lean path must give the very same text to Lean and the very same result back, whatever
Lean answers: probe answers missing, errors or extra messages on probe lines, Lean stopping early
(`#exit`, an unterminated comment), several theorems, namespaces, the proof printing what looks
like a probe's answer, messages past the last probe line. Compared on hand-made cases and on seeded
random outputs. The string reading of `axioms_of`, `code_only`'s early return and `name_parts`'
shortcut, and `split_header`'s return of a text without a header word, are compared with the regexes and
loops they replace.
"""

from __future__ import annotations

import inspect
import random
import re
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from lean_mcp._backends.base import Backend
from lean_mcp._lean.lexer import _blank_literals, code_only, name_parts
from lean_mcp._lean.source import _split_lines, split_header
from lean_mcp._models import LeanOutput, ProofConfig, ProofResult, Sorry
from lean_mcp._trust import audit
from lean_mcp._trust.declarations import Declarations, _read_tokens, read_declarations
from lean_mcp._trust.guard import TrustedBackend, probe_layout
from lean_mcp._trust.probes import axioms_of
from lean_mcp._trust.verdict import DEFAULT_PERMITTED_AXIOMS, apply, assess

PERMITTED = frozenset(DEFAULT_PERMITTED_AXIOMS)
CHECKS = ["lean", "sorry", "axioms"]

#: Theorem names as `read_declarations` gives them: dotted, escaped, odd characters, repeated.
NAMES: list[list[str]] = [
    ["t"],
    ["A", "t"],
    ["A", "B", "t'"],
    ["a b"],
    ["x»y"],
    ["«"],
    [""],
    ["α", "β₁"],
    ["t"],
    ["sorryAx"],
    ["declaration uses sorry"],
]

#: What Lean (or the proof) may say on a line.
DATA = [
    "'{n}' does not depend on any axioms",
    "'{n}' depends on axioms: [propext, Classical.choice, Quot.sound]",
    "'{n}' depends on axioms: [sorryAx]",
    "'{n}' depends on axioms: [cheat, propext]",
    "'{n}' depends on axioms: []",
    "'{n}' does not depend on any axioms\n",
    "'' does not depend on any axioms",
    "unknown constant '{n}'",
    "declaration uses 'sorry'",
    "(kernel) declaration has metavariables '{n}'",
    "Sort 0 : Type",
    "",
    "{n}",
]


def _message(line: int, severity: str, data: str, column: int = 0) -> dict[str, Any]:
    return {"severity": severity, "pos": {"line": line, "column": column}, "endPos": None, "data": data}


def _output(messages: list[dict[str, Any]], *, sorries: bool = False) -> LeanOutput:
    return LeanOutput.model_validate(
        {"env": 3, "messages": messages, "sorries": [Sorry(goal="⊢ False")] if sorries else []}
    )


def _owned(output: LeanOutput) -> ProofResult:
    """A fresh result holding a copy of `output`, as an inner backend returns it (`apply` judges it in place)."""
    return ProofResult.from_output(output.model_copy(deep=True), lean_time=0.25)


def _general(
    code: str, declared: Declarations, output: LeanOutput, permitted: frozenset[str]
) -> tuple[str, ProofResult]:
    """The text and result of the general path, as `TrustedBackend.check` built them for every proof."""
    probe_run = probe_layout(code, declared, None)
    kept = probe_run.read(output)
    found = assess(probe_run, declared, None, permitted)
    return probe_run.text, apply(_owned(output), kept, found, checks=CHECKS)


def _lean(code: str, declared: Declarations, output: LeanOutput, permitted: frozenset[str]) -> tuple[str, ProofResult]:
    text, start = audit.layout(code, declared.theorems)
    kept, found = audit.judge(output, declared, start, permitted)
    return text, apply(_owned(output), kept, found, checks=CHECKS)


def _assert_same(code: str, declared: Declarations, output: LeanOutput, permitted: frozenset[str] = PERMITTED) -> None:
    general_text, general = _general(code, declared, output, permitted)
    lean_text, lean = _lean(code, declared, output, permitted)
    assert lean_text == general_text
    assert lean == general, (code, output)
    assert lean.model_fields_set == general.model_fields_set
    assert lean.model_dump_json() == general.model_dump_json()


def _probe_lines(code: str, count: int) -> tuple[int, int]:
    """The first and the last probe line for `count` theorems after `code`."""
    start = code.count("\n") + (1 if code.endswith("\n") else 2)
    return start, start + 2 * count - 1


# --------------------------------------------------------------------------- hand-made cases

HONEST = "theorem t : True := trivial\n"
TWO = "namespace A\ntheorem t : True := trivial\nend A\nlemma «a b» : True := trivial"


def test_the_lean_layout_is_the_general_layout() -> None:
    for code in [HONEST, TWO, "theorem t : True := trivial", "x\r\n", "\n\n", "/- open", "theorem t := by\n  #exit\n"]:
        for count in range(1, 5):
            declared = Declarations(theorems=NAMES[:count], theorem_lines=[1] * count)
            text, start = audit.layout(code, declared.theorems)
            assert text == probe_layout(code, declared, None).text
            assert start == _probe_lines(code, count)[0]


def test_an_honest_answer_reads_the_same() -> None:
    declared = read_declarations(HONEST)
    _assert_same(HONEST, declared, _output([_message(3, "info", "'t' does not depend on any axioms")]))


def test_no_answer_at_all_is_the_same_rejection() -> None:
    """Lean stopped early (`#exit`, an unterminated comment): no probe answered."""
    for code in [HONEST, HONEST + "/- never closed\n", TWO]:
        declared = read_declarations(code)
        _assert_same(code, declared, _output([]))
        _assert_same(code, declared, _output([_message(1, "error", "unterminated comment")]))
        _, result = _lean(code, declared, _output([]), PERMITTED)
        assert result.verdict == "rejected"


def test_answers_on_every_probe_line_but_the_last_are_the_same() -> None:
    code = TWO
    declared = read_declarations(code)
    start, end = _probe_lines(code, 2)
    messages = [_message(line, "info", "'t' does not depend on any axioms") for line in range(start, end)]
    _assert_same(code, declared, _output(messages))


def test_extra_messages_on_probe_lines_are_the_same() -> None:
    code = TWO
    declared = read_declarations(code)
    start, end = _probe_lines(code, 2)
    answer = "'x' does not depend on any axioms"
    cases = [
        [_message(end, "info", answer), _message(end, "info", answer)],  # two answers to one command
        [_message(end, "error", "boom"), _message(end, "info", answer)],  # an error, then an answer
        [_message(end, "info", answer), _message(end, "warning", "declaration uses 'sorry'")],
        [_message(start, "error", "(kernel) unsafe"), _message(end - 1, "info", answer), _message(end, "info", answer)],
        [_message(start, "info", "hello"), _message(start, "info", "again"), _message(end, "info", answer)],
        [_message(start + 1, "error", "a"), _message(start + 1, "error", "b"), _message(end, "info", answer)],
    ]
    for messages in cases:
        _assert_same(code, declared, _output(messages))


def test_the_proof_printing_a_probe_answer_is_the_same() -> None:
    """An `#eval` on a proof line that prints what a probe would answer is the proof's, not the probe's."""
    code = 'theorem t : True := trivial\n#eval IO.println "x"\n'
    declared = read_declarations(code)
    _, end = _probe_lines(code, 1)
    for messages in [
        [_message(2, "info", "'t' does not depend on any axioms")],
        [_message(2, "info", "'t' does not depend on any axioms"), _message(end, "info", "'t' depends on axioms: [x]")],
        [_message(line, "info", "'t' does not depend on any axioms") for line in range(1, end + 3)],
        [_message(0, "info", "'t' does not depend on any axioms"), _message(end + 1, "error", "unexpected end")],
    ]:
        _assert_same(code, declared, _output(messages))


def test_declared_axioms_sorries_and_lean_sorries_are_the_same() -> None:
    code = "axiom cheat : False\naxiom sorryAx' : False\ntheorem t : False := by\n  sorry\n"
    declared = read_declarations(code)
    _, end = _probe_lines(code, 1)
    for answer in ["'t' depends on axioms: [sorryAx, cheat]", "'t' does not depend on any axioms", "nonsense"]:
        for sorries in (False, True):
            warning = [_message(4, "warning", "declaration uses 'sorry'")] if sorries else []
            _assert_same(code, declared, _output([*warning, _message(end, "info", answer)], sorries=sorries))
            _assert_same(code, declared, _output([_message(end, "info", answer)]), PERMITTED | {"cheat"})
    declared.axioms.append(None)  # an axiom whose name could not be read
    _assert_same(code, declared, _output([_message(end, "info", "'t' does not depend on any axioms")]))


# --------------------------------------------------------------------------- random outputs


def _random_case(rng: random.Random) -> tuple[str, Declarations, LeanOutput, frozenset[str]]:
    code = rng.choice([HONEST, TWO, "theorem t : True := trivial", "x\n" * rng.randint(1, 4), "/-"])
    count = rng.randint(1, 4)
    theorems = [rng.choice(NAMES) for _ in range(count)]
    declared = Declarations(
        theorems=theorems,
        theorem_lines=[rng.randint(1, 3) for _ in theorems],
        axioms=[
            rng.choice(["cheat", "sorryAx", "A.sorryAx", "propext", None]) for _ in range(rng.choice([0, 0, 1, 2]))
        ],
        sorry_lines=[rng.randint(1, 3) for _ in range(rng.choice([0, 0, 1]))],
    )
    start, end = _probe_lines(code, count)
    messages = []
    for _ in range(rng.choice([0, 1, 2, 3, 6])):
        line = rng.choice([end, end, start, rng.randint(0, end + 2)])
        name = ".".join(rng.choice(theorems))
        data = rng.choice(DATA).format(n=name)
        messages.append(_message(line, rng.choice(["info", "info", "warning", "error"]), data, rng.randint(0, 3)))
    if rng.random() < 0.5:  # most runs: every axioms probe answered, in order
        for index, parts in enumerate(theorems):
            answer = rng.choice(DATA[:6]).format(n=".".join(parts))
            messages.append(_message(start + count + index, "info", answer))
        rng.shuffle(messages) if rng.random() < 0.3 else None
    permitted = PERMITTED | ({"cheat"} if rng.random() < 0.3 else set())
    return code, declared, _output(messages, sorries=rng.random() < 0.1), permitted


def test_the_lean_path_equals_the_general_path_on_random_outputs() -> None:
    rng = random.Random(2026)
    verdicts = set()
    for _ in range(3_000):
        code, declared, output, permitted = _random_case(rng)
        _assert_same(code, declared, output, permitted)
        verdicts.add(_lean(code, declared, output, permitted)[1].verdict)
    assert verdicts == {"proved", "sorry", "rejected"}  # every outcome was compared


class _Scripted(Backend):
    """An inner backend that answers each text with messages drawn from a seed and the text itself."""

    name = "scripted"
    identity = "scripted"
    capacity = 1

    def __init__(self, seed: int) -> None:
        self.seed = seed

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {}

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        rng = random.Random(f"{self.seed}:{code}")
        lines = code.split("\n")
        messages = []
        for number, line in enumerate(lines, 1):
            probe = re.fullmatch(r"#print axioms _root_\.(.*)", line)
            if probe is not None and rng.random() < 0.9:
                names = name_parts(probe.group(1))
                messages.append(_message(number, "info", rng.choice(DATA[:6]).format(n=".".join(names))))
            elif rng.random() < 0.15:
                messages.append(_message(number, rng.choice(["info", "warning", "error"]), rng.choice(DATA)))
        return ProofResult.from_output(_output(messages), lean_time=0.5)

    async def run_tactic(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def try_tactics(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


PROOFS = [
    HONEST,
    TWO,
    "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim\n",
    "theorem t : 1 = 2 := by\n  sorry\n",
    "namespace N\nsection\ntheorem _root_.r : True := trivial\nend\nlemma m : True := trivial\nend N\n",
    "theorem t : True := trivial\n/- never closed",
    "def f := 1\n-- theorem hidden : False := sorry\n",
    "theorem «a b» : True := trivial\ntheorem t : True := trivial\ntheorem t : True := trivial\n",
]


def test_trusted_backend_on_the_lean_path_equals_the_general_path_end_to_end() -> None:
    """`TrustedBackend.check` (which takes the lean path unpinned) against the general path composed by hand,
    over an inner backend whose answers depend only on the text it gets (so both get the same answers)."""

    async def main() -> int:
        compared = 0
        for seed in range(60):
            inner = _Scripted(seed)
            guard = TrustedBackend(inner)
            config = ProofConfig(timeout=5, permitted_axioms=["cheat"] if seed % 4 == 0 else [])
            permitted = PERMITTED | set(config.permitted_axioms)
            for code in PROOFS:
                result = await guard.check(code, config)
                declared = read_declarations(code)
                probe_run = probe_layout(code, declared, None)
                expected = await inner.check(probe_run.text, config)
                assert expected.result is not None
                if declared.theorems:
                    kept = probe_run.read(expected.result)
                    found = assess(probe_run, declared, None, permitted)
                    want = apply(expected, kept, found, checks=CHECKS)
                    assert result == want and result.model_dump_json() == want.model_dump_json(), (seed, code)
                    compared += 1
        return compared

    assert anyio.run(main) == 60 * (len(PROOFS) - 1)


# --------------------------------------------------------------------------- the string readings

_OLD_NO_AXIOMS = re.compile(r"^'(?P<name>.+)' does not depend on any axioms\s*$", re.S)
_OLD_AXIOM_LIST = re.compile(r"^'(?P<name>.+)' depends on axioms: \[(?P<axioms>.*)\]\s*$", re.S)


def _old_axioms_of(answer: str) -> list[str] | None:
    if _OLD_NO_AXIOMS.match(answer):
        return []
    match = _OLD_AXIOM_LIST.match(answer)
    if match is None:
        return None
    return [item.strip() for item in match["axioms"].split(",") if item.strip()]


AXIOM_PIECES = [
    *("'", "''", "t", "a b", "' does not depend on any axioms", "' depends on axioms: [", "]", "[", ","),
    *(" ", "\n", "\t", "\u2003", "\x1c", "\u00a0", "propext", "sorryAx", ", ", "x]y", "«»"),
]


@pytest.mark.parametrize(
    "answer",
    [
        "'t' does not depend on any axioms",
        "'t' does not depend on any axioms \n\u2003",
        "' does not depend on any axioms",
        "'' does not depend on any axioms",
        "'t' does not depend on any axioms.",
        " 't' does not depend on any axioms",
        "'t' depends on axioms: [propext, Quot.sound]",
        "'t' depends on axioms: []",
        "'t' depends on axioms: [a, , b ]\n",
        "'a' depends on axioms: [b]' depends on axioms: [c]",
        "'a' depends on axioms: [b]' does not depend on any axioms",
        "'a' does not depend on any axioms' depends on axioms: [c]",
        "'' depends on axioms: [c]",
        "'x' depends on axioms: [c] x",
        "'x' depends on axioms: [c]]",
        "''' depends on axioms: [c]",
        "",
        "'",
    ],
)
def test_axioms_answers_read_by_string_methods_as_by_the_regexes(answer: str) -> None:
    assert axioms_of(answer) == _old_axioms_of(answer)


def test_axioms_answers_read_the_same_on_random_answers() -> None:
    rng = random.Random(7)
    for _ in range(30_000):
        answer = "".join(rng.choice(AXIOM_PIECES) for _ in range(rng.randint(0, 9)))
        assert axioms_of(answer) == _old_axioms_of(answer), answer


def test_code_only_returns_a_text_with_nothing_to_blank_as_the_scan_would() -> None:
    rng = random.Random(5)
    alphabet = [*"ab _1.#\n\t()«»\"-/'r", "--", "/-", "-/", 'r#"', "theorem", "\u2003"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert code_only(text) == _blank_literals(text), text


def test_name_parts_shortcut_matches_the_filtered_split() -> None:
    rng = random.Random(3)
    for _ in range(5_000):
        name = "".join(rng.choice([*"ab._x1'", "..", "«c»"]) for _ in range(rng.randint(0, 8)))
        if "«" not in name and "»" not in name:
            assert name_parts(name) == [part for part in name.split(".") if part], name


def test_the_reading_without_a_header_word_equals_the_token_reading() -> None:
    """The plain reading skips the header match when no header word occurs; leading odd spaces included."""
    rng = random.Random(13)
    spaces = [" ", "\n", "\t", "\u00a0", "\u2003", "\x1c", "\r\n", "\x85", ""]
    bodies = [HONEST, TWO, "theorem t' : True := trivial\ndef f := x.sorry + (sorry)\n", "axiom a : False\nlemma(d)"]
    for _ in range(3_000):
        text = "".join(rng.choice(spaces) for _ in range(rng.randint(0, 4))) + rng.choice(bodies)
        found, full = read_declarations(text), _read_tokens(text)
        assert (found.theorems, found.theorem_lines, found.axioms, found.imports, found.prelude, found.sorry_lines) == (
            full.theorems,
            full.theorem_lines,
            full.axioms,
            full.imports,
            full.prelude,
            full.sorry_lines,
        ), text


def test_a_text_without_a_header_word_splits_as_the_line_reading_splits_it() -> None:
    """`split_header` returns a text with no `import`/`prelude`/`module` whole; the line reading agrees."""
    rng = random.Random(17)
    pieces = [*"ab \n\t-/«»\"'", "--", "/-", "-/", "/--", "theorem t : True := trivial", "\r\n", "\u2003", "impor", "t"]
    for _ in range(10_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert split_header(text) == _split_lines(text), text


def test_the_models_built_without_validation_resolve_the_slots_whose_setters_are_bound() -> None:
    """`_models._assembled` sets BaseModel's four slots through their descriptors, bound once: every model it
    builds must resolve those very descriptors (no model of ours redefines one)."""
    for cls in (LeanOutput, ProofResult):
        for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
            assert inspect.getattr_static(cls, name) is BaseModel.__dict__[name]
    built = ProofResult.from_output(_output([_message(1, "info", "x")]), lean_time=1, checks=CHECKS, axioms={})
    assert built == ProofResult.model_validate(built.model_dump()) and built.__pydantic_private__ is None
